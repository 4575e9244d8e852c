"""Safe change: plan -> approve -> apply -> post-check -> rollback.

A plan is a JSON file the operator reviews; it carries, per host and control, the state read
before (value and masked reply), the commands to send and their rollback, and a sha256 over
its content. Apply and rollback are one algorithm run in opposite directions: for each step,
re-read the bit; skip it when it already has the target value; refuse it when it has neither
the expected starting value nor the target (drift); otherwise send the commands, each one
audited before and after it goes out, and re-read to confirm. Any reply to a command that is
not a clean RETCODE answer (a lost connection, a timeout, a garbled reply) makes the outcome
"unknown" until a fresh session re-reads the bit: a command is never re-sent blindly. Skips and
refusals are audited too.

With a ``Journal`` in the context (``mml_tool.record.RecordJournal``) the record is written
ahead: before each command goes out (the step "in flight", recorded ``unknown``) and after each
step settles, so a process killed at any moment leaves a record that ``rollback`` can use.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from mml_tool import __version__
from mml_tool._io import now_iso, utc_now, write_text_atomic, write_text_new
from mml_tool.approval import (
    SIGNATURE_FIELD,
    canonical,
    check_policy,
    check_signature,
    check_steps,
    sign,
)
from mml_tool.audit import AuditRecord, AuditTrail
from mml_tool.compliance import read_bit
from mml_tool.errors import (
    AuditError,
    CommandError,
    DriftError,
    LockError,
    MmlToolError,
    PlanError,
)
from mml_tool.exitcodes import ExitCode
from mml_tool.fleet import DEFAULT_WORKERS, HostResult, Progress, run_fleet
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.locks import default_lock_dir as default_lock_dir  # it lived here
from mml_tool.locks import host_lock as host_lock  # it lived here
from mml_tool.locks import prepare_lock_dir
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.session import MmlSession
from mml_tool.policy import Finding, Policy, load_policy, parameter_state
from mml_tool.results import StepStatus
from mml_tool.secret import Secret

PLAN_KIND = "mml-tool-plan"
RECORD_KIND = "mml-tool-apply-record"
SCHEMA_VERSION = 1
DEFAULT_MAX_AGE = timedelta(hours=24)
CLOCK_SKEW = timedelta(minutes=5)  # how far in the future a plan's `created` may be
IN_FLIGHT = "in flight: sent or about to be sent, outcome not known yet"
log = logging.getLogger("mml_tool.change")
_POLL = 0.2  # seconds: the longest the caller's thread waits before it can take a Ctrl-C


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
            before_records=(),
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


@dataclass
class CommandRun:
    """One command sent to a host and what came back."""

    command: str
    retcode: int | None
    message: str
    elapsed: float
    outcome: str  # ok | failed | unknown

    def as_dict(self) -> dict[str, Any]:
        """``asdict(self)`` without its deep copy (every field is flat): records are written
        ahead of every command, so this is on the hot path."""
        return dict(self.__dict__)


@dataclass
class StepResult:
    step: Step
    status: StepStatus
    before: int | None = None
    after: int | None = None
    commands: list[CommandRun] = field(default_factory=list)
    error: str | None = None
    after_state: str = ""
    # One entry per run of the plan that touched this step (see mml_tool.record.merge).
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = StepStatus(self.status)  # a record read back holds plain strings

    @property
    def ok(self) -> bool:
        return self.status.ok

    @property
    def changed(self) -> bool:
        return self.status == StepStatus.CHANGED

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def diff(self) -> str:
        """What changed on the device, e.g. ``P978 bit 0: 1 -> 0`` ("" when nothing did)."""
        if not self.changed:
            return ""
        return f"{self.step.parameter} bit {self.step.bit}: {self.before} -> {self.after}"

    @property
    def may_have_changed(self) -> bool:
        """Whether the device may hold this step's change: rollback re-reads and undoes it.

        Besides "changed" and "unknown", a step that failed after a command was answered
        "ok" or got no clean answer counts: only a fresh read can tell, and rollback does one.
        """
        return self.status in ("changed", "unknown") or any(
            c.outcome in ("ok", "unknown") for c in self.commands
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.step.host,
            "control": self.step.control_id,
            "parameter": self.step.parameter,
            "bit": self.step.bit,
            "status": self.status,
            "expected_before": self.step.start_value,
            "target": self.step.target_value,
            "before": self.before,
            "after": self.after,
            "after_state": self.after_state,
            "commands": [c.as_dict() for c in self.commands],
            "rollback": list(self.step.undo_commands),
            "error": self.error,
            "step": dict(self.step.as_dict),
            "history": self.history,
        }


@dataclass
class ApplyRecord:
    """What `apply` or `rollback` did; the input of a later `rollback`."""

    action: str  # apply | rollback
    change_id: str
    plan_sha256: str
    operator: str
    started: str
    finished: str  # "" while the run is in progress (a record written ahead)
    results: list[StepResult]
    runs: list[dict[str, Any]] = field(default_factory=list)  # every run of the plan

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.results)

    @property
    def changed_hosts(self) -> list[str]:
        """Hosts where some step changed the device, in step order."""
        return list(dict.fromkeys(r.step.host for r in self.results if r.changed))

    @property
    def failed_hosts(self) -> list[str]:
        return list(dict.fromkeys(r.step.host for r in self.results if not r.ok))

    @property
    def exit_code(self) -> int:
        """0 every step done (or already so), 1 otherwise: as ``apply`` and ``rollback`` exit."""
        return ExitCode.OK if self.ok else ExitCode.ERROR

    def save(self, path: Path | str) -> None:
        """Write the record, sealed (``load_record`` reads it back)."""
        save_record(self, Path(path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": RECORD_KIND,
            "schema_version": SCHEMA_VERSION,
            "action": self.action,
            "change_id": self.change_id,
            "plan_sha256": self.plan_sha256,
            "operator": self.operator,
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "results": [r.to_dict() for r in self.results],
            "runs": self.runs,
        }


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
        steps.append(
            Step(
                host=finding.host,
                control_id=control.id,
                parameter=rule.parameter,
                bit=rule.bit,
                start_value=finding.before_bit_value,
                target_value=rule.value,
                check_command=control.check_command.render(),
                commands=(control.remediation().render(),),
                undo_commands=(control.rollback(finding.before_bit_value).render(),),
                evidence=finding.evidence,
                start_state=finding.parameter_state or "",
                before_records=tuple(finding.records),
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


def save_record(record: ApplyRecord, path: Path) -> None:
    write_text_atomic(path, record_json(record))


def record_json(record: ApplyRecord, *, compact: bool = False) -> str:
    """The record as its file holds it: sealed JSON text. ``compact``: the canonical text the
    seal is computed over, with the seal added: one encoding instead of two (the record is
    rewritten ahead of every command of a change)."""
    if not compact:
        return json.dumps(_sealed(record.to_dict()), indent=2, ensure_ascii=False) + "\n"
    data = canonical(record.to_dict())
    seal = hashlib.sha256(data).hexdigest()
    return data[:-1].decode("utf-8") + f',"sha256":"{seal}"}}\n'


def load_record(path: Path) -> ApplyRecord:
    """Read an apply record (hash checked) to roll it back."""
    body = _read_sealed(path, RECORD_KIND)
    try:
        results = [
            StepResult(
                step=_step_from(r["step"]),
                status=r["status"],
                before=r["before"],
                after=r["after"],
                commands=[CommandRun(**c) for c in r["commands"]],
                error=r["error"],
                after_state=r.get("after_state", ""),
                history=list(r.get("history", [])),
            )
            for r in body["results"]
        ]
        return ApplyRecord(
            action=body["action"],
            change_id=body["change_id"],
            plan_sha256=body["plan_sha256"],
            operator=body["operator"],
            started=body["started"],
            finished=body["finished"],
            results=results,
            runs=list(body.get("runs", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path}: malformed apply record ({exc}).") from None


class ChangeStopped(MmlToolError):
    """The change was halted (Ctrl-C, or the audit trail or record failed on another host)."""


class Journal(Protocol):
    """Keeps the record of a run on disk while it runs (``mml_tool.record.RecordJournal``)."""

    def begin(self, current: Callable[[], ApplyRecord]) -> None:
        """Write the record before anything is sent; raise ``RecordError`` if it cannot be."""

    def flush(self) -> bool:
        """Write ``current()`` now; False when it could not be written anywhere."""

    def finish(self, record: ApplyRecord, *, still_running: bool = False) -> ApplyRecord:
        """Write the final record (earlier runs merged in) and return it."""

    def say(self, message: str) -> None:
        """Tell the operator (stderr)."""


@dataclass(frozen=True)
class ChangeContext:
    """Everything apply and rollback need besides the steps."""

    inventory: Inventory
    audit: AuditTrail
    operator: str
    change_id: str
    lock_dir: Path
    template_dirs: Sequence[Path] = ()
    session_factory: Callable[[HostConfig], MmlSession] = MmlSession
    # The rules every step must derive from (approval.check_steps); None: the built-in policy.
    policy: Policy | None = None
    # Set on Ctrl-C or when the audit trail fails: every host stops before its next command.
    halted: threading.Event = field(default_factory=threading.Event)
    journal: Journal | None = None  # writes the record ahead; None: only returned at the end


@dataclass
class _RunState:
    """One run's progress, shared by the host threads, the journal and an interrupt."""

    by_host: dict[str, list[Step]]
    partial: dict[str, list[StepResult]]
    in_flight: dict[str, StepResult] = field(default_factory=dict)  # host -> step being sent
    running: set[str] = field(default_factory=set)  # hosts whose job has started
    done: set[str] = field(default_factory=set)  # hosts whose job has returned
    abandoned: set[str] = field(default_factory=set)  # never to start (the caller gave up)
    lock: threading.Lock = field(default_factory=threading.Lock)
    placeholders: dict[tuple[int, str], StepResult] = field(default_factory=dict)

    def results(self, not_reached: str) -> list[StepResult]:
        """Every step: its result, "unknown" while in flight, else skipped with ``not_reached``."""
        out: list[StepResult] = []
        for name, steps in self.by_host.items():
            done = list(self.partial[name])
            out += done
            rest = steps[len(done) :]
            flying = self.in_flight.get(name)
            if rest and flying is not None and flying.step is rest[0]:
                out.append(flying)
                rest = rest[1:]
            out += [self._placeholder(s, not_reached) for s in rest]
        return out

    def _placeholder(self, step: Step, why: str) -> StepResult:
        # The same object each time: the journal re-encodes only the steps that changed.
        key = (id(step), why)
        if key not in self.placeholders:
            self.placeholders[key] = StepResult(step, StepStatus.SKIPPED, error=why)
        return self.placeholders[key]


def _audit_step(ctx: ChangeContext, action: str, step: Step, outcome: str, why: str) -> None:
    """Audit a step whose commands were not sent (refused, skipped); the trail failing halts
    the change but is not raised: nothing went out."""
    for text in step.commands:
        try:
            ctx.audit.append(
                AuditRecord(
                    time=utc_now(),
                    operator=ctx.operator,
                    change_id=ctx.change_id,
                    host=step.host,
                    command=MmlCommand.parse(text).masked(),
                    retcode=None,
                    message=why,
                    elapsed=0.0,
                    outcome=outcome,
                    action=action,
                )
            )
        except (AuditError, MmlToolError) as exc:
            ctx.halted.set()
            log.warning("%s: %s", step.host, exc)
            return


class _StepRunner:
    """Runs one host's steps under its lock, auditing every command."""

    def __init__(self, ctx: ChangeContext, host: HostConfig, action: str, state: _RunState) -> None:
        self.ctx = ctx
        self.host = host
        self.action = action
        self.state = state

    def audit(
        self,
        command: str,
        outcome: str,
        retcode: int | None = None,
        message: str = "",
        elapsed: float = 0.0,
    ) -> None:
        if self.ctx.halted.is_set() and outcome == "sending":
            raise ChangeStopped(
                "the change was stopped (interrupted, or the audit trail or the record failed) "
                "before this command was sent"
            )
        try:
            self.ctx.audit.append(
                AuditRecord(
                    time=utc_now(),  # milliseconds: a command's two lines stay in order
                    operator=self.ctx.operator,
                    change_id=self.ctx.change_id,
                    host=self.host.name,
                    command=command,
                    retcode=retcode,
                    message=message,
                    elapsed=round(elapsed, 3),
                    outcome=outcome,
                    action=self.action,
                )
            )
        except AuditError:
            self.ctx.halted.set()
            raise

    def mark(self, in_flight: StepResult | None) -> bool:
        """Write the record with ``in_flight`` as the step being sent (None: no step is);
        False, and the change halted, when the record could not be written anywhere."""
        if in_flight is None:
            self.state.in_flight.pop(self.host.name, None)
        else:
            self.state.in_flight[self.host.name] = in_flight
        if self.ctx.journal is None or self.ctx.journal.flush():
            return True
        self.ctx.halted.set()
        return False

    def settled(self, results: list[StepResult], result: StepResult) -> None:
        results.append(result)
        self.mark(None)

    def read(self, session: MmlSession, step: Step) -> tuple[int, str]:
        """The step's bit and the whole parameter's state, as read now."""
        reading = read_bit(
            session,
            MmlCommand.parse(step.check_command),
            step.parameter,
            step.bit,
            self.ctx.template_dirs,
        )
        return reading.bit_value, parameter_state(reading.records, step.parameter)

    def run(self, steps: Sequence[Step], results: list[StepResult]) -> list[StepResult]:
        """Fill ``results`` (the caller's list: it sees them even if interrupted) and return it."""
        with host_lock(
            self.ctx.lock_dir,
            self.host.name,
            change_id=self.ctx.change_id,
            operator=self.ctx.operator,
            action=self.action,
        ):
            try:
                while len(results) < len(steps):
                    # A lost reply settled by a fresh read leaves this session broken: the
                    # host's next steps go on in a new one.
                    with self.ctx.session_factory(self.host) as session:
                        while len(results) < len(steps) and session.healthy:
                            result = self.run_step(session, steps[len(results)])
                            self.settled(results, result)
                            if result.status in ("unknown", "failed"):
                                break  # the session or the device misbehaved: stop this host
                    if results and results[-1].status in ("unknown", "failed"):
                        break
            except ChangeStopped as exc:
                step = steps[len(results)]
                self.settled(results, StepResult(step, StepStatus.SKIPPED, error=str(exc)))
                _audit_step(self.ctx, self.action, step, "skipped", str(exc))
            except MmlToolError as exc:
                if not results or results[-1].status != "unknown":
                    self.settled(
                        results, StepResult(steps[len(results)], StepStatus.FAILED, error=str(exc))
                    )
            why = "not attempted: an earlier step on this host did not complete"
            for step in steps[len(results) :]:
                self.settled(results, StepResult(step, StepStatus.SKIPPED, error=why))
                _audit_step(self.ctx, self.action, step, "skipped", why)
        return results

    def run_step(self, session: MmlSession, step: Step) -> StepResult:
        result = StepResult(step, StepStatus.FAILED)
        result.before, state = self.read(session, step)
        if result.before == step.target_value:
            result.status = StepStatus.ALREADY_COMPLIANT
            result.after, result.after_state = result.before, state
            why = f"already compliant: {step.parameter} bit {step.bit} = {result.before}"
            _audit_step(self.ctx, self.action, step, "skipped", f"{why}; nothing sent")
            return result
        if result.before != step.start_value or (step.start_state and state != step.start_state):
            result.status = StepStatus.DRIFTED
            result.error = str(
                DriftError(
                    f"{self.host.name}: {step.parameter} changed since the plan (then "
                    f"{step.start_state or f'bit {step.bit} = {step.start_value}'}, now {state}); "
                    "nothing was sent. Re-run `mml-tool plan`."
                )
            )
            _audit_step(self.ctx, self.action, step, "refused", result.error)
            return result
        for text in step.commands:
            command = MmlCommand.parse(text)
            masked = command.masked()
            if self.ctx.halted.is_set():
                self.audit(masked, "sending")  # raises ChangeStopped: nothing is sent
            # Written ahead: a process killed from here on leaves the step "unknown".
            flying = CommandRun(masked, None, IN_FLIGHT, 0.0, "unknown")
            marker = _replace_result(result, StepStatus.UNKNOWN, f"{IN_FLIGHT}: {masked}", flying)
            if not self.mark(marker):
                raise ChangeStopped("the record could not be written anywhere; nothing is sent")
            self.audit(masked, "sending")  # no audit line, no command
            started = time.monotonic()
            try:
                response = session.run(command)
                if response.retcode is None:  # a frame, but not the answer to this command
                    raise MmlToolError(f"no RETCODE in the reply to {masked}")
            except Exception as exc:  # whatever went wrong, the command may have gone out
                elapsed = time.monotonic() - started
                result.commands.append(CommandRun(masked, None, str(exc), elapsed, "unknown"))
                with contextlib.suppress(AuditError):  # halts the change; the record keeps it
                    self.audit(masked, "unknown", None, str(exc), elapsed)
                return self.settle_unknown(step, result, f"no clean reply ({exc})", masked)
            outcome = "ok" if response.ok else "failed"
            result.commands.append(
                CommandRun(masked, response.retcode, response.message, response.elapsed, outcome)
            )
            try:
                self.audit(masked, outcome, response.retcode, response.message, response.elapsed)
            except AuditError as exc:
                # The command went out: keep it in the record so that rollback sees it.
                result.status, result.error = StepStatus.UNKNOWN, f"sent, then {exc}"
                return result
            if not response.ok:
                result.error = f"{masked} answered RETCODE = {response.retcode}  {response.message}"
                return result
        try:
            result.after, result.after_state = self.read(session, step)
        except Exception as exc:
            # Sent and acknowledged, but the post-check failed: the outcome is unknown (and
            # stays in the record for rollback) until a fresh session re-reads the bit.
            return self.settle_unknown(step, result, f"post-check failed: {exc}", masked)
        if result.after == step.target_value:
            result.status = StepStatus.CHANGED
        else:
            result.error = (
                f"post-check read {step.parameter} bit {step.bit} = {result.after}, "
                f"expected {step.target_value}"
            )
        return result

    def settle_unknown(self, step: Step, result: StepResult, why: str, command: str) -> StepResult:
        """After a lost reply or post-check only a fresh read tells what happened; never re-send.
        The settled outcome goes to the audit trail after the "unknown" line."""
        result.status, result.error = StepStatus.UNKNOWN, why
        try:
            with self.ctx.session_factory(self.host) as session:
                result.after, result.after_state = self.read(session, step)
        except Exception as exc:
            result.error += f"; re-read failed too ({exc}): check the host by hand"
            self._audit_settled(command, "unknown", f"not settled: a fresh read failed ({exc})")
            return result
        read = f"{step.parameter} bit {step.bit} = {result.after}"
        if result.after == step.target_value:
            result.status = StepStatus.CHANGED
            result.error = f"{why}; a fresh read confirmed the change"
            self._audit_settled(command, "ok", f"settled by a fresh read: {read}, took effect")
        elif result.after == step.start_value:
            result.status = StepStatus.FAILED
            result.error = f"{why}; a fresh read shows nothing changed"
            self._audit_settled(command, "failed", f"settled by a fresh read: {read}, no effect")
        return result

    def _audit_settled(self, command: str, outcome: str, message: str) -> None:
        with contextlib.suppress(AuditError):  # the change is halted; the record keeps the step
            self.audit(command, outcome, None, message)


def _replace_result(
    result: StepResult, status: StepStatus, error: str, *more: CommandRun
) -> StepResult:
    """A copy of ``result`` with another status and error, and ``more`` commands."""
    return replace(result, status=status, error=error, commands=[*result.commands, *more])


def _leave_signals_to_main() -> None:
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _wait_for_hosts(done: threading.Event, ctx: ChangeContext, state: _RunState) -> bool:
    """Wait until every host's job has returned. The first Ctrl-C/SIGTERM halts the change
    (nothing more is sent; commands in flight are answered and settled); the second stops
    waiting. True when it stopped waiting: commands may still be in flight."""
    interrupted = False
    while not done.is_set():
        try:
            # Short waits: a thread blocked for good may not run the signal handler when the
            # kernel hands the signal to another thread.
            done.wait(_POLL)
        except KeyboardInterrupt:
            if interrupted:
                return True
            interrupted = True
            try:
                ctx.halted.set()
                flying = sorted(state.in_flight)
                message = "interrupted: no further command is sent"
                if flying:
                    message += (
                        f"; waiting for the command in flight on {', '.join(flying)} to be "
                        "answered and settled (interrupt again to stop waiting: it is then "
                        "recorded as unknown, and rollback re-reads before undoing it)"
                    )
                if ctx.journal is not None:
                    ctx.journal.flush()
                    ctx.journal.say(message)
                else:
                    log.warning("%s", message)
            except KeyboardInterrupt:  # the second one came while the first was handled
                return True
    return False


def execute(
    steps: Sequence[Step],
    ctx: ChangeContext,
    *,
    action: str,
    plan_sha256: str,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
) -> ApplyRecord:
    """Run steps host by host (hosts concurrently); one host's failure never stops another.

    With ``ctx.journal`` the record is written before anything is sent (``RecordError`` if it
    cannot be: nothing is sent), ahead of every command and after every step, and the record
    returned is the one written (earlier runs of the same plan merged in).

    Ctrl-C (KeyboardInterrupt in the calling thread) halts the change: no host sends anything
    more, commands in flight are answered and settled. A second one stops waiting for them:
    the record returned then holds them as "unknown" (never "not attempted"), and their
    threads still settle them and update the journal's record before the process ends.
    """
    started = now_iso()
    by_host: dict[str, list[Step]] = {}
    for step in steps:
        by_host.setdefault(step.host, []).append(step)
    missing = sorted(set(by_host) - set(ctx.inventory.hosts))
    if missing:
        raise PlanError(
            f"host(s) {', '.join(missing)} are not in {ctx.inventory.path}; use the inventory "
            "the plan was made with."
        )
    hosts = [ctx.inventory.hosts[name] for name in by_host]
    state = _RunState(by_host, {name: [] for name in by_host})
    finished = [""]
    not_reached = ["not attempted yet: the run stopped before this step"]

    def current() -> ApplyRecord:
        return ApplyRecord(
            action,
            ctx.change_id,
            plan_sha256,
            ctx.operator,
            started,
            finished[0],
            state.results(not_reached[0]),
        )

    if ctx.journal is not None:
        ctx.journal.begin(current)

    def job(host: HostConfig) -> list[StepResult]:
        results = state.partial[host.name]
        with state.lock:
            if host.name in state.abandoned:
                return results
            state.running.add(host.name)
        try:
            if ctx.halted.is_set():  # stopped before this host began: do not even connect
                why = "not attempted: the change was stopped before this host"
                for step in by_host[host.name]:
                    results.append(StepResult(step, StepStatus.SKIPPED, error=why))
                    _audit_step(ctx, action, step, "skipped", why)
                if ctx.journal is not None:
                    ctx.journal.flush()
                return results
            return _StepRunner(ctx, host, action, state).run(by_host[host.name], results)
        finally:
            state.done.add(host.name)

    box: dict[str, Any] = {}
    all_done = threading.Event()

    def fleet() -> None:
        # The hosts run in a thread of their own so that the caller's thread only waits, and
        # an interrupt there never lands in the middle of the fleet's bookkeeping. This thread
        # (and the workers it starts) leaves SIGINT/SIGTERM to the caller's.
        _leave_signals_to_main()
        try:
            box["outcome"] = run_fleet(
                hosts, job, workers=workers, progress=progress, stop=ctx.halted
            )
        except BaseException as exc:
            box["error"] = exc
        finally:
            all_done.set()

    def interrupted(waiting: bool) -> ApplyRecord:
        finished[0] = now_iso()
        not_reached[0] = "not attempted: interrupted by the operator"
        with state.lock:
            idle = [name for name in by_host if name not in state.running]
            state.abandoned.update(idle)
        for name in idle:
            for step in by_host[name]:
                _audit_step(ctx, action, step, "skipped", not_reached[0])
        cut = current()
        if ctx.journal is None:
            return cut
        if waiting:
            ctx.journal.say(
                "stopped waiting: steps in flight are recorded unknown; the record is updated "
                "when they settle, before the process ends"
            )
        return ctx.journal.finish(cut, still_running=bool(state.running - state.done))

    threading.Thread(target=fleet, name=f"mml-tool-{action}").start()
    if _wait_for_hosts(all_done, ctx, state):
        return interrupted(waiting=True)
    if isinstance(box.get("error"), KeyboardInterrupt):  # raised in the fleet's own thread
        return interrupted(waiting=False)
    if "error" in box:
        raise box["error"]
    outcome: list[HostResult[list[StepResult]]] = box["outcome"]
    results: list[StepResult] = []
    for host_result in outcome:
        if host_result.value is not None:
            results.extend(host_result.value)
        else:
            locked = isinstance(host_result.error, LockError)
            ran = list(state.partial[host_result.host])
            rest = by_host[host_result.host][len(ran) :]
            flying = state.in_flight.get(host_result.host)
            if rest and flying is not None and flying.step is rest[0]:
                ran.append(flying)  # its command may have gone out: unknown, never "failed"
                rest = rest[1:]
            results += ran + [
                StepResult(
                    s,
                    StepStatus.LOCKED if locked else StepStatus.FAILED,
                    error=str(host_result.error),
                )
                for s in rest
            ]
            for step in rest:
                _audit_step(
                    ctx, action, step, "refused" if locked else "skipped", str(host_result.error)
                )
    finished[0] = now_iso()
    record = ApplyRecord(
        action, ctx.change_id, plan_sha256, ctx.operator, started, finished[0], results
    )
    return record if ctx.journal is None else ctx.journal.finish(record)


def check_plan(plan: Plan, policy: Policy, inventory: Inventory, source: str = "") -> None:
    """Refuse a plan not made with ``policy`` or whose steps are not exactly what its rules
    derive (``PlanError``, before anything is sent)."""
    source = source or f"plan {plan.change_id or '(no change id)'}"
    check_policy(plan.policy_name, plan.policy_sha256, policy, source)
    check_steps(plan.steps, policy, inventory.hosts, source)


def apply_plan(plan: Plan, ctx: ChangeContext, **kwargs: Any) -> ApplyRecord:
    check_plan(plan, ctx.policy or load_policy(), ctx.inventory)
    prepare_lock_dir(ctx.lock_dir)
    return execute(plan.steps, ctx, action="apply", plan_sha256=plan_sha256(plan), **kwargs)


def check_record(record: ApplyRecord, policy: Policy, inventory: Inventory, source: str) -> None:
    """Refuse a record whose steps are not what ``policy`` derives. Every step, whatever its
    status: each one came from a plan, so a step that does not derive was forged. A rollback
    record holds the plan's steps reversed: reversed again, they must derive too."""
    steps = [r.step for r in record.results]
    if record.action == "rollback":
        steps = [s.reversed() for s in steps]
    check_steps(steps, policy, inventory.hosts, source)


def rollback_record(record: ApplyRecord, ctx: ChangeContext, **kwargs: Any) -> ApplyRecord:
    """Undo what an apply changed (and only that), with the same care as apply."""
    check_record(record, ctx.policy or load_policy(), ctx.inventory, f"record {record.change_id}")
    prepare_lock_dir(ctx.lock_dir)
    return execute(
        rollback_steps(record), ctx, action="rollback", plan_sha256=record.plan_sha256, **kwargs
    )


def rollback_steps(record: ApplyRecord) -> list[Step]:
    """The steps that undo every step of ``record`` that may have changed its host."""
    return [r.step.reversed(r.after_state) for r in record.results if r.may_have_changed]
