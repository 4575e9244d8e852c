"""A plan sends only what was approved: commands derived from the rule, optional HMAC signature.

The sha256 seal of a plan file only catches accidents: anyone who can edit the file can
recompute it. So before anything is sent, every step is checked against the policy the operator
names (default: the built-in one), not against the file: its control must exist and target the
host, its parameter, bit and values must be the control's rule, and its check, remediation and
rollback commands must be exactly the ones derived from that rule (bit and mask rules: one
``MOD SFP ... MODTYPE=P1`` a bit; whole-value and command rules: the policy's own command
templates, filled from the value or the records read). Nothing else (another verb, another
parameter, a second command) can pass.

For teams that need to prove who approved a plan, ``plan_signing_key`` in the inventory makes
``plan`` add an HMAC-SHA256 over the plan's canonical content, and ``apply`` refuse a plan that
is unsigned or signed with another key. See docs/threat-model.md for what each check does and
does not protect against.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mml_tool.errors import CommandError, ParseError, PlanError, RecordError
from mml_tool.inventory import HostConfig
from mml_tool.mml.command import MmlCommand, mask_text
from mml_tool.policy import Control, Policy, SfpBitRule
from mml_tool.policy.models import Rule
from mml_tool.policy.rules import MAX_VALUE, CommandRule, SfpMaskRule, SfpValueRule
from mml_tool.secret import Secret

logger = logging.getLogger(__name__)
SIGNATURE_FIELD = "hmac_sha256"
SEAL_FIELD = "sha256"


class StepLike(Protocol):
    """What the check reads of a plan step (change.Step fits)."""

    @property
    def host(self) -> str: ...
    @property
    def control_id(self) -> str: ...
    @property
    def parameter(self) -> str: ...
    @property
    def bit(self) -> int: ...
    @property
    def start_value(self) -> int: ...
    @property
    def target_value(self) -> int: ...
    @property
    def check_command(self) -> str: ...
    @property
    def commands(self) -> tuple[str, ...]: ...
    @property
    def undo_commands(self) -> tuple[str, ...]: ...


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes the seal and the signature are computed over: sorted keys, no spaces, UTF-8."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def sign(body: Mapping[str, Any], key: Secret) -> str:
    """HMAC-SHA256 (hex) of ``body`` without its seal and signature fields."""
    content = {k: v for k, v in body.items() if k not in (SEAL_FIELD, SIGNATURE_FIELD)}
    return sign_canonical(canonical(content), key)


def sign_canonical(data: bytes, key: Secret) -> str:
    """HMAC-SHA256 (hex) of ``data``, the canonical text of a body (``canonical``)."""
    return hmac.new(key.reveal().encode("utf-8"), data, hashlib.sha256).hexdigest()


def check_signature(
    path: Path, body: Mapping[str, Any], claimed: object, key: Secret | None
) -> None:
    """Refuse an unsigned or wrongly signed plan when a key is configured."""
    if key is None:
        if claimed is not None:  # the team signs plans, but this inventory cannot check
            logger.warning(
                "%s: the plan is signed, but the inventory sets no plan_signing_key: the "
                "signature was not checked (use the inventory the plan was made with)",
                path,
            )
        return
    if claimed is None:
        raise PlanError(
            f"{path}: the plan is not signed, and the inventory sets plan_signing_key: only a "
            "plan made with that key is applied. Make the plan again with `mml-tool plan` and "
            "the same inventory (after review)."
        )
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, sign(body, key)):
        raise PlanError(
            f"{path}: the plan's signature does not match: it was changed after it was signed, "
            "or signed with another plan_signing_key. Nothing was sent. Make a new plan."
        )


def check_record_signature(
    path: Path, body: Mapping[str, Any], claimed: object, key: Secret | None
) -> None:
    """Refuse (``RecordError``) an unsigned or wrongly signed apply/rollback record when a key
    is configured: anyone who can edit a record can re-hash it, and ``rollback`` obeys it."""
    if key is None:
        if claimed is not None:
            logger.warning(
                "%s: the record is signed, but the inventory sets no plan_signing_key: the "
                "signature was not checked (use the inventory the record was written with)",
                path,
            )
        return
    what_to_do = (
        "Nothing was sent. Do not roll back from it: check the hosts with `mml-tool check` "
        "and, where they must change, make and review a new plan."
    )
    if claimed is None:
        raise RecordError(
            f"{path}: the record is not signed, and the inventory sets plan_signing_key: "
            "mml-tool signs every record it writes with that key, so this one was written "
            f"without it (another inventory, an older mml-tool) or was replaced. {what_to_do}"
        )
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed, sign(body, key)):
        raise RecordError(
            f"{path}: the record's signature does not match: it was changed after mml-tool "
            f"wrote it, or signed with another plan_signing_key. {what_to_do}"
        )


def derived_commands(
    control: Control, start_value: int, records: Sequence[dict[str, str]] = ()
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(check command, remediation commands, rollback commands) the rule gives for a step
    from ``start_value`` (a command rule: from the ``records`` read before the change)."""
    commands, undo = control.rule.derive(start_value, records)
    return control.check_command.render(), commands, undo


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clip(text: str) -> str:
    """Text from the file for a message: masked, and short (the file may be hostile)."""
    text = mask_text(text)
    return text if len(text) <= 80 else text[:77] + "..."


def _short(value: object) -> str:
    return _clip(repr(value))


def _writes_problem(step: StepLike, kind: object) -> str | None:
    """Why the step's commands are not text, or not a plan's remediation (None: they are)."""
    writes: list[object] = [*step.commands, *step.undo_commands]
    if not all(isinstance(t, str) for t in [step.check_command, *writes]):
        return "its commands must be text"
    for text in writes:
        try:
            command = MmlCommand.parse(str(text))
        except CommandError as exc:
            return f"command {_short(text)} is malformed ({exc})"
        if kind in ("bit", "mask") and (command.verb, command.obj) != ("MOD", "SFP"):
            return (
                f"it would send {command.verb} {command.obj}: a plan sends only the control's "
                "remediation, MOD SFP"
            )
    return None


def _rule_fields(step: StepLike, rule: Rule) -> tuple[dict[str, object], dict[str, object]]:
    """(the step's fields, the values ``rule`` wants in them)."""
    if isinstance(rule, SfpBitRule):
        fields: dict[str, object] = {
            "parameter": step.parameter,
            "bit": step.bit,
            "target_value": step.target_value,
        }
        wanted: dict[str, object] = {
            "parameter": rule.parameter,
            "bit": rule.bit,
            "target_value": rule.value,
        }
    else:
        fields = {
            "parameter": step.parameter,
            "bit": step.bit,
            "mask": getattr(step, "mask", 0),
            "target_value": step.target_value,
        }
        wanted = {
            "parameter": rule.parameter,
            "bit": -1,
            "mask": rule.mask if isinstance(rule, SfpMaskRule) else 0,
            "target_value": rule.target,
        }
    return fields, wanted


def _fields_problem(step: StepLike, control: Control, kind: object) -> str | None:
    """Why the step's kind, parameter, bit, mask or target are not the rule's (None: they are)."""
    rule = control.rule
    if kind != rule.kind:
        return f"kind is {_short(kind)}, but control {control.id}'s rule is a {rule.kind} rule"
    if not (_is_int(step.bit) and _is_int(step.target_value) and _is_int(step.start_value)):
        return "bit, start_value and target_value must be whole numbers"
    fields, wanted = _rule_fields(step, rule)
    for name, value in fields.items():
        if value != wanted[name]:
            return (
                f"{name} is {_short(value)}, but control {control.id}'s rule is {rule.describe()}"
            )
    return None


def _start_problem(step: StepLike, rule: Rule) -> str | None:
    """Why ``start_value`` is not one the rule moves from (None: it is)."""
    if isinstance(rule, SfpBitRule) and step.start_value != 1 - rule.value:
        return f"start_value is {step.start_value}: a step moves the bit from {1 - rule.value}"
    if step.start_value == rule.target:
        return f"start_value is {step.start_value}: the rule holds there, nothing to change"
    if isinstance(rule, SfpMaskRule) and step.start_value & ~rule.mask:
        return f"start_value is {step.start_value}: it has bits outside the rule's mask"
    if isinstance(rule, SfpValueRule) and not 0 <= step.start_value <= MAX_VALUE:
        return f"start_value is {step.start_value}: not a 16-bit value"
    return None


def _records_problem(step: StepLike, rule: CommandRule, records: list[Any]) -> str | None:
    """Why a command step's ``before_records`` do not give its start (None: they do)."""
    if step.start_value != 0:
        return "start_value of a command step is 0 (its records are not as expected)"
    if not all(
        isinstance(r, dict) and all(isinstance(v, str) for v in r.values()) for r in records
    ):
        return "before_records must be records of text"
    try:
        state = rule.judge(records).state
    except ParseError as exc:
        return f"its before_records cannot be judged ({exc})"
    # The commands are filled from before_records; the runner refuses the step unless
    # the host reads exactly the start_state, so the records are the host's.
    start_state = getattr(step, "start_state", "")
    if start_state and start_state != state:
        return "start_state is not the state of its before_records"
    return None


def _derived_problem(step: StepLike, control: Control, records: list[Any]) -> str | None:
    """Why the step's commands are not the ones derived from the rule (None: they are)."""
    try:
        check, commands, undo = derived_commands(control, step.start_value, records)
    except ParseError as exc:
        return f"no commands derive from it ({exc})"
    if not commands:
        return f"control {control.id} names no remediation for this state (check-only)"
    for name, got, want in (
        ("check_command", (step.check_command,), (check,)),
        ("commands", tuple(step.commands), commands),
        ("undo_commands", tuple(step.undo_commands), undo),
    ):
        if got != want:
            return (
                f"{name} {_short(list(got))} differ from the ones derived from control "
                f"{control.id}'s rule {list(want)}"
            )
    return None


def _step_problem(step: StepLike, policy: Policy, host: HostConfig | None) -> str | None:
    """Why ``step`` is not what ``policy`` derives (None: it is)."""
    kind = getattr(step, "kind", "bit")
    if (problem := _writes_problem(step, kind)) is not None:
        return problem
    control = next((c for c in policy.controls if c.id == step.control_id), None)
    if control is None:
        return (
            f"control {_short(step.control_id)} is not in policy {policy.name!r} ({policy.path}); "
            "pass the policy the plan was made with (-p FILE)"
        )
    if host is not None and not control.applies_to(host):
        return f"control {control.id} does not apply to {host.name} (see its targets)"
    rule = control.rule
    records = list(getattr(step, "before_records", ()))
    return (
        _fields_problem(step, control, kind)
        or _start_problem(step, rule)
        or (_records_problem(step, rule, records) if isinstance(rule, CommandRule) else None)
        or _derived_problem(step, control, records)
    )


def check_steps(
    steps: Sequence[StepLike],
    policy: Policy,
    hosts: Mapping[str, HostConfig],
    source: str,
) -> None:
    """Refuse (``PlanError``, nothing sent) unless every step is exactly what ``policy`` derives.

    ``hosts``: the inventory's hosts (a step for a host not in it is refused later, by name).
    """
    problems = []
    for number, step in enumerate(steps, 1):
        problem = _step_problem(step, policy, hosts.get(str(step.host)))
        if problem is not None:
            where = _clip(f"{step.host} {step.control_id}")
            problems.append(f"step {number} ({where}): {problem}")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise PlanError(
            f"{source}: {shown}. A plan sends only the commands derived from the policy's "
            "rules; this one was edited after it was made (or made with another policy). "
            "Nothing was sent. Make a new plan with `mml-tool plan`."
        )


def check_policy(
    plan_policy_name: str, plan_policy_sha256: str, policy: Policy, source: str
) -> None:
    """The plan must have been made with ``policy`` (same sha256)."""
    if plan_policy_sha256 != policy.sha256:
        raise PlanError(
            f"{source}: the plan was made with policy {plan_policy_name!r} (sha256 "
            f"{str(plan_policy_sha256)[:16]}...), not with {policy.path} (sha256 "
            f"{policy.sha256[:16]}...): pass the policy file the plan was made with, -p FILE. "
            "Nothing was sent."
        )
