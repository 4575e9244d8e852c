"""One bit changed the way `plan` + `apply` change it (``set_bit``), with its apply record,
and the refusal to change without a signed plan when the inventory sets a signing key."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from mml_tool._io import write_text_atomic
from mml_tool.audit import AuditRecord, AuditTrail, default_audit_path, operator_name
from mml_tool.automation.reads import SessionFactory, _check_parameter
from mml_tool.change import (
    ChangeContext,
    apply_plan,
    build_plan,
    plan_sha256,
)
from mml_tool.change.lock import default_lock_dir
from mml_tool.change.outcome import StepResult
from mml_tool.change.record import RecordJournal, default_fallback_dirs, fresh_path
from mml_tool.change_id import validate_change_id
from mml_tool.compliance import check_host
from mml_tool.errors import (
    ChangeError,
    ConfigError,
    PlanError,
    RecordError,
)
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.session import MmlSession
from mml_tool.policy import (
    MAX_BIT,
    Control,
    Policy,
    SfpBitRule,
    load_policy,
)
from mml_tool.secret import Secret

# -- one bit, changed like apply changes it ---------------------------------------------------


@dataclass
class BitChange:
    """The outcome of ``set_bit``: ``before``/``after`` are the bit, ``*_state`` the whole
    parameter; ``status`` is the change runner's step status (or ``check-mode``)."""

    host: str
    parameter: str
    bit: int
    value: int
    changed: bool
    before: int
    after: int | None
    before_state: str
    after_state: str
    status: str  # already-compliant | check-mode | changed | drifted | failed | unknown | ...
    error: str | None = None
    commands: list[dict[str, Any]] = field(default_factory=list)
    rollback: list[str] = field(default_factory=list)
    # The apply record written (None: none asked for, or nothing was to be sent) and, when the
    # bit is in no policy, the one-control policy file `mml-tool rollback -p` needs with it.
    record: str | None = None
    record_policy: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. the record went to a fallback
    # Sent although the inventory sets plan_signing_key (allow_unsigned): audited as such.
    unsigned: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("already-compliant", "check-mode", "changed")

    def diff_text(self, which: str) -> str:
        """``before`` or ``after`` as text for a diff (Ansible ``--diff``, Nornir ``diff``)."""
        bit = self.before if which == "before" else self.after
        state = self.before_state if which == "before" else self.after_state
        lines = [f"{self.parameter} bit {self.bit} = {'?' if bit is None else bit}"]
        if state:
            lines.append(f"{self.parameter} {state}")
        return "\n".join(lines) + "\n"


def _with_bit(state: str, bit: int, value: int) -> str:
    """``parameter_state`` text as it would read with ``bit`` set to ``value`` (check mode)."""
    if state.startswith("value="):
        whole = int(state[len("value=") :])
        return f"value={(whole & ~(1 << bit)) | (value << bit)}"
    parts = dict(part.split("=", 1) for part in state.split(",") if "=" in part)
    parts[str(bit)] = str(value)
    return ",".join(f"{k}={v}" for k, v in parts.items())


def _bit_policy(parameter: str, bit: int, value: int) -> Policy:
    """A one-control policy for this bit: what the change runner checks every step against."""
    rule = SfpBitRule(parameter=parameter, bit=bit, value=value)
    control = Control(
        id=f"{parameter}-B{bit}-{value}",
        title=f"{parameter} bit {bit} = {value}",
        severity="medium",
        description="set by an automation task",
        refs=(),
        rule=rule,
    )
    body = json.dumps({"parameter": parameter, "bit": bit, "value": value}, sort_keys=True)
    return Policy(
        name=f"task {control.id}",
        version="1",
        path=Path(f"<task {control.id}>"),
        sha256=hashlib.sha256(body.encode()).hexdigest(),
        controls=(control,),
    )


def _change_policy(
    host: HostConfig, parameter: str, bit: int, value: int, policy: Policy | Path | str | None
) -> tuple[Policy, bool]:
    """The one-control policy the change is made by, and whether it is the task's own.

    The control of ``policy`` (default: the built-in one) that sets this bit on this host, so
    that the apply record's step derives from that policy and ``mml-tool rollback RECORD``
    (with ``-p`` that policy, none for the built-in) accepts it. A bit no control sets: the
    task's own control when no policy was named; with a policy named, ``ConfigError``."""
    base = (
        policy
        if isinstance(policy, Policy)
        else load_policy(None if policy is None else Path(policy))
    )
    for control in base.controls_for(host):
        rule = control.rule
        if isinstance(rule, SfpBitRule) and (rule.parameter, rule.bit, rule.value) == (
            parameter,
            bit,
            value,
        ):
            return replace(base, controls=(control,), waivers=()), False
    if policy is not None:
        raise ConfigError(
            f"policy {base.name!r} ({base.path}) has no control that sets {parameter} bit {bit} "
            f"to {value} on {host.name}: name the policy that has one, or none. Nothing was sent."
        )
    return _bit_policy(parameter, bit, value), True


def _policy_yaml(policy: Policy) -> str:
    """A policy file of the task's one control, as ``load_policy`` reads it back."""
    control = policy.controls[0]
    rule = control.rule
    if not isinstance(rule, SfpBitRule):
        raise TypeError(f"control {control.id} is not a bit rule")
    doc = {
        "policy": {"name": policy.name, "version": policy.version},
        "controls": [
            {
                "id": control.id,
                "title": control.title,
                "severity": control.severity,
                "description": control.description,
                "rule": {
                    "software_parameter": {
                        "id": rule.parameter,
                        "bit": rule.bit,
                        "value": rule.value,
                    }
                },
            }
        ],
        "waivers": [],
    }
    header = (
        "# The control an automation task changed a bit by (mml-tool, written with its apply\n"
        "# record): `mml-tool rollback RECORD -i INVENTORY -p THIS_FILE` undoes that change.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False)


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def default_record_path(
    audit_path: Path | str | None,
    host: str,
    parameter: str,
    bit: int,
    change_id: str = "",
    *,
    folder: Path | str | None = None,
) -> Path:
    """Where a change's apply record goes when the caller names no file: ``folder``, else
    ``records/`` beside the audit trail (the user's state folder by default); a name of its
    own for every change (change ID, host, parameter, bit, time), never an earlier record's."""
    trail = Path(audit_path) if audit_path else default_audit_path()
    where = Path(folder) if folder is not None else trail.parent / "records"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    parts = [change_id, host, f"{parameter}-b{bit}", stamp]
    name = "-".join(_file_part(p) for p in parts if p)
    return fresh_path(where / f"{name}.record.json")


def set_bit(
    host: HostConfig,
    parameter: str,
    bit: int,
    value: int,
    *,
    check_mode: bool = False,
    change_id: str = "",
    audit_path: Path | str | None = None,
    lock_dir: Path | str | None = None,
    operator: str | None = None,
    template_dirs: Sequence[Path] = (),
    session_factory: SessionFactory = MmlSession,
    record: Path | str | None = None,
    policy: Policy | Path | str | None = None,
    signing_key: Secret | None = None,
    allow_unsigned: bool = False,
) -> BitChange:
    """Set ``parameter`` bit ``bit`` to ``value``, the way ``plan`` + ``apply`` do.

    Reads the bit; already there: nothing more. Check mode: reports the change, sends nothing.
    Otherwise a one-step plan goes through ``apply_plan``: under the host's lock it re-reads,
    refuses drift (the whole parameter moved since the read), writes the audit line before the
    command, confirms by a re-read, and after a lost reply settles by a fresh read, never a
    resend. Bad arguments raise ``ConfigError``; an unreadable host the library's error.

    The step is the control of ``policy`` (default: the built-in one) that sets this bit, else
    the task's own. ``record``: the apply record ``mml-tool apply`` writes (ahead of the
    command: ``RecordError`` and nothing sent when it cannot be; an existing file is refused),
    for ``mml-tool rollback``; a bit in no policy also gets its one-control policy file beside
    it (``BitChange.record_policy``, for ``rollback -p``).

    ``signing_key``: the inventory's ``plan_signing_key``. With one, only a signed plan may
    change a host: ``PlanError`` before anything is sent (a host whose bit is already right is
    reported ``already-compliant``, as without a key), unless ``allow_unsigned``
    (then every audit line of the change says so, and the record is signed with the key so
    that ``mml-tool rollback`` with that inventory takes it). Check mode is not concerned."""
    parameter = _check_parameter(parameter)
    _check_bit_args(bit, value, change_id)
    unsigned = signing_key is not None and not check_mode
    policy, own_control = _change_policy(host, parameter, bit, value, policy)
    findings = check_host(
        host, policy, template_dirs=template_dirs, session_factory=session_factory
    )
    finding = findings[0]
    if finding.status == "error" or finding.before_bit_value is None:
        raise ChangeError(f"{host.name}: cannot read {parameter} bit {bit}: {finding.error}")
    before, state = finding.before_bit_value, finding.parameter_state or ""
    result = BitChange(
        host.name, parameter, bit, value, False, before, before, state, state, "already-compliant"
    )
    if before == value:
        return result
    rollback = [policy.controls[0].rollback(before).render()]
    if check_mode:
        result.changed, result.after = True, value
        result.after_state = _with_bit(state, bit, value)
        result.status, result.rollback = "check-mode", rollback
        return result
    if unsigned and not allow_unsigned:  # read only so far: a host already right is left alone
        raise PlanError(unsigned_refusal(host.name), host=host.name)
    operator = operator or operator_name()
    inventory = Inventory(
        Path(f"<task on {host.name}>"), {host.name: host}, {}, signing_key=signing_key
    )
    plan = build_plan(
        findings, policy, change_id=change_id, inventory=inventory.path, operator=operator
    )
    trail = Path(audit_path) if audit_path else default_audit_path()
    audit = _UnsignedAuditTrail(trail) if unsigned else AuditTrail(trail)
    if unsigned:
        result.unsigned = True
        result.warnings.append(UNSIGNED_NOTE)
    journal = None
    if record is not None:
        journal = _record_journal(
            Path(record), plan_sha256(plan), trail, result.warnings, signing_key
        )
        if own_control:  # written before anything is sent, as the record is
            policy_file = journal.path.with_name(f"{journal.path.stem}.policy.yaml")
            try:
                write_text_atomic(policy_file, _policy_yaml(policy))
            except OSError as exc:
                raise RecordError(
                    f"cannot write {policy_file} ({exc.strerror or exc}), the policy the "
                    "record's rollback needs: nothing was sent"
                ) from None
            result.record_policy = str(policy_file)
    ctx = ChangeContext(
        inventory=inventory,
        audit=audit,
        operator=operator,
        change_id=change_id,
        lock_dir=Path(lock_dir) if lock_dir else default_lock_dir(),
        template_dirs=template_dirs,
        session_factory=session_factory,
        policy=policy,
        journal=journal,
    )
    _take_step(result, apply_plan(plan, ctx, workers=1).results[0], before)
    if journal is not None:
        result.record = str(journal.written_to)
    return result


def _record_journal(
    path: Path, digest: str, trail: Path, said: list[str], signing_key: Secret | None = None
) -> RecordJournal:
    """The apply record's journal, checked (``RecordError``) before anything is sent; what it
    has to tell (a fallback file) goes to ``said``."""
    journal = RecordJournal(
        path,
        plan_sha256=digest,
        action="apply",
        accumulate=False,  # every task run is a plan of its own: an existing file is another's
        fallback_dirs=default_fallback_dirs(trail),
        say=said.append,
        hint="nothing was sent; name another record file, or none for a fresh name",
        signing_key=signing_key,
    )
    journal.check()
    return journal


# -- plan signing -----------------------------------------------------------------------------

UNSIGNED_NOTE = (
    "changed without a signed plan (allow_unsigned) although the inventory sets plan_signing_key"
)


def unsigned_refusal(host: str) -> str:
    """Why a change without a plan is refused when the inventory signs plans, and what to do."""
    return (
        f"{host}: the inventory sets plan_signing_key, so a host is changed only from a signed "
        "plan: make one with `mml-tool plan` (it is signed with the key), have it reviewed, "
        "and apply it with the mml_tool.uap9600.apply module or `mml-tool apply PLAN`. Nothing "
        "was sent. To change this bit without a signed plan anyway, the task must say so by "
        "setting allow_unsigned to true (every audit line of the change then says so)."
    )


class _UnsignedAuditTrail(AuditTrail):
    """The audit trail of a change made without a signed plan although the inventory signs
    plans: each of its lines says so in ``message``, so a reviewer finds them."""

    def append(self, record: AuditRecord) -> None:
        message = f"{UNSIGNED_NOTE}; {record.message}" if record.message else UNSIGNED_NOTE
        super().append(replace(record, message=message))


def _check_bit_args(bit: int, value: int, change_id: str) -> None:
    if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit <= MAX_BIT:
        raise ConfigError(f"bit {bit!r}: give a bit number 0..{MAX_BIT}")
    if value not in (0, 1) or isinstance(value, bool):
        raise ConfigError(f"value {value!r}: a bit is set to 0 or 1")
    if change_id:
        validate_change_id(change_id)


def _take_step(result: BitChange, step: StepResult, before: int) -> None:
    """Fill ``result`` from the applied step's result."""
    result.status, result.error = step.status, step.error
    result.before = step.before if step.before is not None else before
    result.after, result.after_state = step.after, step.after_state
    result.changed = step.may_have_changed  # also a command whose outcome is unknown
    result.commands = [
        {"command": c.command, "retcode": c.retcode, "message": c.message, "outcome": c.outcome}
        for c in step.commands
    ]
    result.rollback = list(step.step.undo_commands)
