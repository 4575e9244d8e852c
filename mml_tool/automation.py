"""What the integrations (the Ansible collection, the Nornir plugin) call: one thin adapter.

Each function here is a use of the library's own layers, not a second implementation of them:
a host's fields go through the inventory loader's checks, reads through ``check.read_bit`` and
the TextFSM templates, a bit change through ``change.apply_plan`` (the host's lock, the re-read
under it, the refusal of drift, the write-ahead audit line, the fresh re-read instead of a
resend after a lost reply) and verification through ``gateway.verify``. When the library grows
a public API (``import mml_tool as mt``) only this module needs re-pointing.

    host = host_from_fields("uap-1", {"hostname": "127.0.0.1", "port": 2222, ...})
    info = read_parameter(host, "P978")                  # ParameterInfo: records, value, bits
    change = set_bit(host, "P978", 0, 0, check_mode=True) # BitChange: changed, before, after
    done = apply_plan_file(inventory, "plan.json")        # PlanApply: as `mml-tool apply`

When the inventory sets ``plan_signing_key`` a change is made from a signed plan only
(``apply_plan_file``); ``set_bit`` refuses to send anything (``PlanError``) unless its caller
opts out with ``allow_unsigned=True``, and then every audit line of the change says so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

import mml_tool as mt
from mml_tool._io import write_text_atomic
from mml_tool.audit import AuditRecord, AuditTrail, default_audit_path, operator_name
from mml_tool.change import (
    ChangeContext,
    apply_plan,
    build_plan,
    check_plan,
    load_plan,
    plan_sha256,
)
from mml_tool.change.lock import default_lock_dir
from mml_tool.change.outcome import StepResult
from mml_tool.change.record import RecordJournal, default_fallback_dirs, fresh_path
from mml_tool.change_id import validate_change_id
from mml_tool.compliance import check_host
from mml_tool.errors import (
    AnswerError,
    ChangeError,
    CommandError,
    ConfigError,
    ParseError,
    PlanError,
    RecordError,
)
from mml_tool.fleet import DEFAULT_WORKERS
from mml_tool.gateway.pick import pick_gateway
from mml_tool.gateway.verify import VerifyResult, verify_gateway
from mml_tool.inventory import HostConfig, Inventory, host_from_fields, load_inventory
from mml_tool.inventory.fields import SIGNING_KEY_FIELDS, signing_key_from_fields
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.response import MmlResponse
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output
from mml_tool.policy import (
    MAX_BIT,
    Control,
    Finding,
    Policy,
    SfpBitRule,
    bit_from_records,
    load_policy,
    parameter_state,
)
from mml_tool.secret import Secret

__all__ = [
    "SIGNING_KEY_FIELDS",
    "BitChange",
    "CommandResult",
    "ParameterInfo",
    "PlanApply",
    "apply_plan_file",
    "check_one_host",
    "default_record_path",
    "host_from_fields",
    "host_from_inventory",
    "load_inventory",
    "read_parameter",
    "run_read_only",
    "set_bit",
    "signing_key_from_fields",
    "verify",
]

SessionFactory = Callable[[HostConfig], MmlSession]


# -- hosts ------------------------------------------------------------------------------------


def host_from_inventory(path: Path | str, name: str) -> tuple[Inventory, HostConfig]:
    """The inventory at ``path`` and its host ``name`` with its secrets read (only that
    host's: another host's unset variable does not matter); ``ConfigError`` naming both if
    the host is absent."""
    inventory = load_inventory(path, resolve_secrets=False)
    if name not in inventory.hosts:
        raise ConfigError(
            f"{path}: no host {name!r}; hosts: {', '.join(sorted(inventory.hosts)) or '(none)'}"
        )
    inventory = inventory.with_secrets(hosts=[name])
    return inventory, inventory.hosts[name]


# -- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterInfo:
    """A software parameter as read: the parsed records, the whole value when the reply gives
    it, and every bit the reply tells (bit index -> 0/1)."""

    parameter: str
    records: list[dict[str, str]]
    value: int | None
    bits: dict[int, int]
    state: str  # parameter_state(): "value=5" or "0=1,1=0,..."
    raw: str  # the masked reply


def _check_parameter(parameter: str) -> str:
    try:
        return str(MmlCommand.create("LST", "SFP", ID=parameter).param("ID"))
    except CommandError as exc:
        raise ConfigError(f"parameter {parameter!r}: {exc}") from None


def read_parameter(
    host: HostConfig,
    parameter: str,
    *,
    template_dirs: Sequence[Path] = (),
    session_factory: SessionFactory = MmlSession,
) -> ParameterInfo:
    """``LST SFP: ID=<parameter>;`` parsed by the templates; errors are the library's own."""
    command = MmlCommand.create("LST", "SFP", ID=_check_parameter(parameter))
    with session_factory(host) as session:
        response = session.run(command)
        response.raise_for_retcode()
    _refuse_late_answer(session)
    records = parse_output(command.render(), response.text, host.platform, template_dirs)
    state = parameter_state(records, parameter)  # ParseError for a value that is no number
    if not state:
        raise ParseError(f"{host.name}: {parameter} is not in the reply to {command.render()}")
    # The bits the reply tells: all of them from a whole value, else those listed one by one;
    # each read by the library's own rule, which refuses records that disagree.
    parts = state.split(",")
    wholes = [int(part[len("value=") :]) for part in parts if part.startswith("value=")]
    listed = list(range(MAX_BIT + 1)) if wholes else [int(part.split("=", 1)[0]) for part in parts]
    bits = {bit: bit_from_records(records, parameter, bit) for bit in listed}
    value = wholes[0] if len(set(wholes)) == 1 else None
    if value is None and len(bits) == MAX_BIT + 1:
        value = sum(v << b for b, v in bits.items())
    return ParameterInfo(parameter, records, value, bits, state, response.raw)


@dataclass(frozen=True)
class CommandResult:
    command: str  # masked
    retcode: int | None
    message: str
    records: list[dict[str, str]]
    raw: str  # masked
    ok: bool


def run_read_only(
    host: HostConfig, text: str, *, session_factory: SessionFactory = MmlSession
) -> CommandResult:
    """One read-only command (LST, DSP, ...); a write verb is refused before connecting."""
    command = read_only_command(text)
    with session_factory(host) as session:
        response = session.run(command)
    _refuse_late_answer(session)
    return command_result(response)


def _refuse_late_answer(session: MmlSession) -> None:
    """A second answer seen at logout means this session's answers cannot be trusted (as
    ``check`` treats it)."""
    if isinstance(session.refused, AnswerError):
        raise session.refused


def read_only_command(text: str) -> MmlCommand:
    """``text`` parsed; ``CommandError`` for a malformed one or a write verb (nothing is sent)."""
    command = MmlCommand.parse(text)
    if not command.is_read_only:
        raise CommandError(
            f"{command.verb} changes the element: only read-only commands (LST, DSP, ...) are "
            "run here; change a bit with the sfp module / mml_set_bit task (locked, re-read, "
            "audited). Nothing was sent."
        )
    return command


def command_result(response: MmlResponse) -> CommandResult:
    return CommandResult(
        response.command,
        response.retcode,
        response.message,
        response.records,
        response.raw,
        response.ok,
    )


def check_one_host(
    host: HostConfig,
    policy: Policy | Path | str | None = None,
    *,
    template_dirs: Sequence[Path] = (),
    session_factory: SessionFactory = MmlSession,
) -> list[Finding]:
    """The findings of ``policy`` (a Policy, a file, or None: the built-in one) for ``host``."""
    if not isinstance(policy, Policy):
        policy = load_policy(None if policy is None else Path(policy))
    return check_host(host, policy, template_dirs=template_dirs, session_factory=session_factory)


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
    change a host: ``PlanError`` before anything is connected to, unless ``allow_unsigned``
    (then every audit line of the change says so, and the record is signed with the key so
    that ``mml-tool rollback`` with that inventory takes it). Check mode is not concerned."""
    parameter = _check_parameter(parameter)
    _check_bit_args(bit, value, change_id)
    unsigned = signing_key is not None and not check_mode
    if unsigned and not allow_unsigned:
        raise PlanError(unsigned_refusal(host.name), host=host.name)
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


# -- a reviewed plan, applied like `mml-tool apply` ---------------------------------------------


@dataclass
class PlanApply:
    """The outcome of ``apply_plan_file``: ``steps`` one dict per step of the plan (in check
    mode what would be sent; else the apply record's: status, before, after, commands with
    their outcome), ``changed`` when this run (in check mode: would) changed a host."""

    plan: str
    change_id: str
    hosts: list[str]
    check_mode: bool
    changed: bool
    ok: bool
    record: str | None  # the apply record written (None in check mode or for an empty plan)
    steps: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def failed_hosts(self) -> list[str]:
        return list(dict.fromkeys(s["host"] for s in self.steps if not s["ok"]))


def apply_plan_file(
    inventory: Inventory,
    plan_path: Path | str,
    *,
    check_mode: bool = False,
    policy: Policy | Path | str | None = None,
    max_age_hours: float | None = 24.0,
    audit_path: Path | str | None = None,
    record: Path | str | None = None,
    lock_dir: Path | str | None = None,
    operator: str | None = None,
    workers: int = DEFAULT_WORKERS,
    template_dirs: Sequence[Path] = (),
) -> PlanApply:
    """Apply the reviewed plan at ``plan_path`` exactly as ``mml-tool apply PLAN`` does.

    Before anything is connected to: the plan's seal and age (``max_age_hours``), its signature
    when ``inventory`` sets ``plan_signing_key`` (unsigned or not matching: ``PlanError``), and
    its commands re-derived from ``policy`` (default the built-in one); then the record's
    journal (default ``PLAN.record.json``; earlier runs of the same plan merged, another plan's
    file refused: ``RecordError``). Then per host: lock, re-read, skip or refuse drift, audit
    ahead, send, confirm (``mml_tool.apply``). Check mode stops after the checks and tells what
    would be sent; nothing is connected to."""
    path = Path(plan_path)
    if not isinstance(policy, Policy):
        policy = load_policy(None if policy is None else Path(policy))
    max_age = None if max_age_hours is None else timedelta(hours=max_age_hours)
    the_plan = load_plan(path, max_age=max_age, signing_key=inventory.plan_signing_key)
    check_plan(the_plan, policy, inventory, str(path))
    done = PlanApply(
        str(path), the_plan.change_id, list(the_plan.hosts), check_mode, False, True, None, []
    )
    if not the_plan.steps:
        return done
    if check_mode:
        done.changed = True
        done.steps = [
            {
                "host": step.host,
                "control": step.control_id,
                "what": step.describe(),
                "status": "check-mode",
                "ok": True,
                "before": step.start_value,
                "after": step.target_value,
                "commands": list(step.commands),
                "rollback": list(step.undo_commands),
            }
            for step in the_plan.steps
        ]
        return done
    trail = inventory.audit_file(None if audit_path is None else Path(audit_path))
    journal = RecordJournal(
        Path(record) if record is not None else path.with_suffix(".record.json"),
        plan_sha256=plan_sha256(the_plan),
        action="apply",
        accumulate=True,  # as the CLI: re-applying the plan adds to its record
        fallback_dirs=default_fallback_dirs(trail),
        say=done.warnings.append,
        hint="nothing was sent; name another record file",
        signing_key=inventory.plan_signing_key,
    )
    journal.check()
    applied = mt.apply(
        the_plan,
        inventory,
        audit=trail,
        record=journal,
        policy=policy,
        lock_dir=lock_dir,
        operator=operator or operator_name(),
        workers=workers,
        template_dirs=template_dirs,
    )
    done.record, done.ok = str(journal.written_to), applied.ok
    for result in applied.results:
        # The record holds every run of the plan; this run's word is the last of its history.
        latest = result.history[-1] if result.history else None
        sent = latest["commands"] if latest else [c.as_dict() for c in result.commands]
        done.changed = done.changed or any(c["outcome"] in ("ok", "unknown") for c in sent)
        step = result.to_dict()
        step["ok"] = result.ok
        del step["step"], step["history"]
        done.steps.append(step)
    return done


# -- end-to-end verification ------------------------------------------------------------------


def verify(
    inventory: Inventory,
    *,
    gateway: str | None = None,
    host: str | None = None,
    directions: Sequence[int] = (1, 2),
) -> VerifyResult:
    """The video-direction verification through ``gateway`` (or the one ``host`` names, or the
    inventory's only gateway), as ``mml-tool verify`` runs it; reads that gateway's secret
    when ``inventory`` was loaded without secrets."""
    gateway = pick_gateway(inventory, gateway=gateway, host=host, names=("gateway", "host"))
    bad = [d for d in directions if d not in (1, 2, 3, 4)]
    if bad or not directions:
        raise ConfigError(
            f"directions {list(directions)}: 1 receive-only, 2 send-only, 3 both, 4 unset"
        )
    inventory = inventory.with_secrets(gateways=[gateway])
    return verify_gateway(inventory.gateways[gateway], directions=tuple(directions))
