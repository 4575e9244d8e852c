"""A plan: the steps ``apply`` may take, as the operator reviewed them, sealed (and signed)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mml_tool import __version__
from mml_tool._io import now_iso, write_text_atomic, write_text_new
from mml_tool.change.ages import CLOCK_SKEW as CLOCK_SKEW
from mml_tool.change.ages import DEFAULT_MAX_AGE as DEFAULT_MAX_AGE
from mml_tool.change.approval import (
    SIGNATURE_FIELD,
    canonical,
    check_signature,
    sign,
)
from mml_tool.errors import (
    CommandError,
    ParseError,
    PlanError,
)
from mml_tool.mml.command import MmlCommand
from mml_tool.policy import Finding, Policy, SfpBitRule
from mml_tool.policy.rules import SfpMaskRule
from mml_tool.secret import Secret

PLAN_KIND = "mml-tool-plan"
RECORD_KIND = "mml-tool-apply-record"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Step:
    """Move one parameter bit of one host from ``start_value`` to ``target_value``."""

    host: str
    control_id: str
    parameter: str
    bit: int
    start_value: int
    target_value: int
    check_command: str
    commands: tuple[str, ...]
    undo_commands: tuple[str, ...]
    evidence: str = ""
    # The whole parameter as read when the step was made ("" = not known): any change in it,
    # not only in this bit, means someone else touched the parameter and the step is refused.
    start_state: str = ""
    before_records: tuple[dict[str, str], ...] = ()  # the parsed reply the plan was made from
    # The rule kind (bit, mask, value, command): what start_value and target_value count. A
    # bit step moves one bit; a mask step the bits of ``mask`` (values are ``value & mask``);
    # a value step the whole parameter; a command step a command rule from 0 (its records
    # are not as expected) to 1. Steps of kinds other than bit have ``bit`` -1.
    kind: str = "bit"
    mask: int = 0

    def describe(self) -> str:
        """What the step judges, e.g. ``P978 bit 0``, ``P917 & 0x0005``, ``P100``."""
        if self.kind == "bit":
            return f"{self.parameter} bit {self.bit}"
        if self.kind == "mask":
            return f"{self.parameter} & 0x{self.mask:04X}"
        if self.kind == "value":
            return self.parameter
        return f"control {self.control_id} ({self.check_command} as expected: 1, not: 0)"

    @functools.cached_property
    def as_dict(self) -> dict[str, Any]:
        """``asdict(self)``, made once: the record is written many times while a change runs."""
        return asdict(self)

    def reversed(self, start_state: str = "") -> Step:
        """The step that undoes this one, from the parameter state this one left."""
        return replace(
            self,
            start_value=self.target_value,
            target_value=self.start_value,
            commands=self.undo_commands,
            undo_commands=self.commands,
            evidence="",
            start_state=start_state,
            # A command step's commands are filled from these: approval re-derives them.
            before_records=self.before_records if self.kind == "command" else (),
        )


@dataclass(frozen=True)
class Plan:
    """What `apply` may do, exactly as the operator reviewed it."""

    change_id: str
    created: str
    created_by: str
    inventory: str
    policy_name: str
    policy_sha256: str
    steps: tuple[Step, ...]
    tool_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["steps"] = [asdict(s) for s in self.steps]
        return {"kind": PLAN_KIND, "schema_version": SCHEMA_VERSION, **body}

    @property
    def hosts(self) -> list[str]:
        return sorted({s.host for s in self.steps})

    def save(
        self, path: Path | str, *, signing_key: Secret | None = None, overwrite: bool = True
    ) -> str:
        """Write the plan, sealed (and signed, given a key); returns its sha256."""
        return save_plan(self, Path(path), signing_key=signing_key, overwrite=overwrite)


def build_plan(
    findings: Sequence[Finding],
    policy: Policy,
    *,
    change_id: str,
    inventory: Path,
    operator: str,
) -> Plan:
    """A step for every failing (host, control); passing, waived and errored ones get none."""
    controls = {c.id: c for c in policy.controls}
    steps = []
    for finding in findings:
        if finding.status != "fail" or finding.before_bit_value is None:
            continue
        control = controls[finding.control_id]
        rule = control.rule
        try:
            commands, undo = rule.derive(finding.before_bit_value, finding.records)
        except ParseError:
            continue  # the finding says why (its notes): nothing derived, nothing planned
        if not commands:
            continue  # check-only: the policy names no remediation
        steps.append(
            Step(
                host=finding.host,
                control_id=control.id,
                parameter=rule.parameter,
                bit=rule.bit if isinstance(rule, SfpBitRule) else -1,
                start_value=finding.before_bit_value,
                target_value=rule.target,
                check_command=control.check_command.render(),
                commands=commands,
                undo_commands=undo,
                evidence=finding.evidence,
                start_state=finding.parameter_state or "",
                before_records=tuple(finding.records),
                kind=rule.kind,
                mask=rule.mask if isinstance(rule, SfpMaskRule) else 0,
            )
        )
    return Plan(
        change_id=change_id,
        created=now_iso(),
        created_by=operator,
        inventory=str(inventory),
        policy_name=policy.name,
        policy_sha256=policy.sha256,
        steps=tuple(steps),
    )


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def write_json_atomic(path: Path, body: dict[str, Any]) -> None:
    """Write a JSON file so that a reader never sees half of it."""
    write_text_atomic(path, json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def _sealed(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "sha256": _digest(body)}


def _read_sealed(path: Path, kind: str) -> dict[str, Any]:
    """The file's content, seal checked; a plan's signature (over the same content as the
    seal) is kept in the body for ``load_plan`` to check."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"{path}: cannot read ({exc.strerror}).") from None
    except ValueError as exc:
        raise PlanError(f"{path}: not valid JSON ({exc}); was it edited by hand?") from None
    except RecursionError:
        raise PlanError(
            f"{path}: nested too deeply to be a {kind} file; it was not written by mml-tool."
        ) from None
    if not isinstance(body, dict) or body.get("kind") != kind:
        raise PlanError(f"{path}: not a {kind} file.")
    claimed = body.pop("sha256", None)
    signature = body.pop(SIGNATURE_FIELD, None)
    if claimed != _digest(body):
        raise PlanError(
            f"{path}: sha256 does not match its content: the file was changed after it was "
            "written. Create a new one; never edit it by hand."
        )
    if body.get("schema_version") != SCHEMA_VERSION:
        raise PlanError(f"{path}: schema_version {body.get('schema_version')} is not supported.")
    if signature is not None:
        body[SIGNATURE_FIELD] = signature
    return body


def _step_from(data: dict[str, Any]) -> Step:
    return Step(
        **{
            **data,
            "commands": tuple(data["commands"]),
            "undo_commands": tuple(data["undo_commands"]),
            "before_records": tuple(data.get("before_records", ())),
        }
    )


def save_plan(
    plan: Plan, path: Path, *, signing_key: Secret | None = None, overwrite: bool = True
) -> str:
    """Write the plan with its hash (and, given a key, its HMAC-SHA256); returns the hash.
    ``overwrite=False``: ``FileExistsError`` rather than replace an existing file."""
    body = plan.to_dict()
    sealed = _sealed(body)
    if signing_key is not None:
        sealed[SIGNATURE_FIELD] = sign(body, signing_key)
    if overwrite:
        write_json_atomic(path, sealed)
    else:
        write_text_new(path, json.dumps(sealed, indent=2, ensure_ascii=False) + "\n")
    return str(sealed["sha256"])


def plan_sha256(plan: Plan) -> str:
    return _digest(plan.to_dict())


def load_plan(
    path: Path,
    *,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    signing_key: Secret | None = None,
) -> Plan:
    """Read a plan, refusing one that was tampered with or is older than ``max_age``, and,
    given ``signing_key``, one that is not signed with it.

    The seal and signature say the file is what was written; that its commands are what the
    policy derives is checked by ``apply_plan`` (``approval.check_steps``)."""
    body = _read_sealed(path, PLAN_KIND)
    check_signature(path, body, body.pop(SIGNATURE_FIELD, None), signing_key)
    try:
        steps = tuple(_step_from(s) for s in body["steps"])
        plan = Plan(
            change_id=body["change_id"],
            created=body["created"],
            created_by=body["created_by"],
            inventory=body["inventory"],
            policy_name=body["policy_name"],
            policy_sha256=body["policy_sha256"],
            steps=steps,
            tool_version=body["tool_version"],
        )
        created = datetime.fromisoformat(plan.created)
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path}: malformed plan ({exc}).") from None
    if created.tzinfo is None:
        raise PlanError(
            f"{path}: created {plan.created!r} has no time zone, so its age cannot be told; "
            "mml-tool writes UTC with +00:00. Make a new plan with `mml-tool plan`."
        )
    if created - datetime.now(timezone.utc) > CLOCK_SKEW:  # would never grow old
        raise PlanError(
            f"{path}: created {plan.created} is in the future; check this machine's clock and "
            "the plan maker's, then make a new plan with `mml-tool plan`."
        )
    if max_age is not None and datetime.now(timezone.utc) - created > max_age:
        raise PlanError(
            f"{path}: plan created {plan.created} is older than {max_age}; the device state may "
            "have moved on. Run `mml-tool plan` again (or raise --max-age)."
        )
    for step in steps:  # a hand-made plan must not smuggle a command past validation
        for text in (step.check_command, *step.commands, *step.undo_commands):
            if not isinstance(text, str):
                raise PlanError(f"{path}: step for {step.host}: a command is not text.")
            try:
                MmlCommand.parse(text)
            except CommandError as exc:
                raise PlanError(f"{path}: step for {step.host}: {exc}") from None
    return plan
