"""One host's steps, one at a time: lock, re-read, refuse drift, send, settle, audit."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from mml_tool._io import utc_now
from mml_tool.audit import AuditRecord, AuditTrail
from mml_tool.change.lock import host_lock
from mml_tool.change.outcome import ApplyRecord, CommandRun, StepResult
from mml_tool.change.plan import Step
from mml_tool.compliance import read_bit, read_records
from mml_tool.errors import (
    AnswerError,
    AuditError,
    DriftError,
    MmlToolError,
)
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.session import MmlSession
from mml_tool.policy import Policy, load_policy, parameter_state
from mml_tool.results import StepStatus

IN_FLIGHT = "in flight: sent or about to be sent, outcome not known yet"
log = logging.getLogger("mml_tool.change")
_POLL = 0.2  # seconds: the longest the caller's thread waits before it can take a Ctrl-C


class ChangeStopped(MmlToolError):
    """The change was halted (Ctrl-C, or the audit trail or record failed on another host)."""


class Journal(Protocol):
    """Keeps the record of a run on disk while it runs (``change.record.RecordJournal``)."""

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
        self.fresh: set[int] = set()  # ids of results settled by a fresh read
        # An answer no honest element gives, in the current session (AnswerError): none of
        # that session's answers is trusted, also those before it (see answered_twice).
        self.untrusted: AnswerError | None = None

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
        """The step's judged value (its bit, bits, whole value, or 1/0 for a command rule)
        and the state that tells drift, as read now."""
        if step.kind == "bit":
            reading = read_bit(
                session,
                MmlCommand.parse(step.check_command),
                step.parameter,
                step.bit,
                self.ctx.template_dirs,
            )
            return reading.bit_value, parameter_state(reading.records, step.parameter)
        # Other kinds are judged by their control's rule (approval checked the step derives).
        rule = (self.ctx.policy or load_policy()).control(step.control_id).rule
        records, _ = read_records(
            session, MmlCommand.parse(step.check_command), self.ctx.template_dirs
        )
        judgement = rule.judge(records)
        return judgement.value, judgement.state

    def run(self, steps: Sequence[Step], results: list[StepResult]) -> list[StepResult]:
        """Fill ``results`` (the caller's list: it sees them even if interrupted) and return it."""
        with host_lock(
            self.ctx.lock_dir,
            self.host.name,
            change_id=self.ctx.change_id,
            operator=self.ctx.operator,
            action=self.action,
        ):
            session: MmlSession | None = None
            first = 0  # the index of the first step run in ``session``
            try:
                while len(results) < len(steps):
                    # A lost reply settled by a fresh read leaves this session broken: the
                    # host's next steps go on in a new one.
                    first = len(results)
                    with self.ctx.session_factory(self.host) as session:
                        while len(results) < len(steps) and session.healthy:
                            result = self.run_step(session, steps[len(results)])
                            self.settled(results, result)
                            if result.status in ("unknown", "failed"):
                                break  # the session or the device misbehaved: stop this host
                    self.untrusted = self.untrusted or _refusal(session)  # seen at logout
                    if self.untrusted or (results and results[-1].status in ("unknown", "failed")):
                        break
            except ChangeStopped as exc:
                if len(results) < len(steps):
                    step = steps[len(results)]
                    self.settled(results, StepResult(step, StepStatus.SKIPPED, error=str(exc)))
                    _audit_step(self.ctx, self.action, step, "skipped", str(exc))
            except MmlToolError as exc:
                if isinstance(exc, AnswerError):  # e.g. a second answer with the next read
                    self.untrusted = self.untrusted or exc
                if len(results) == len(steps):  # after the last step: the session's end
                    log.warning("%s: after the last step: %s", self.host.name, exc)
                elif not results or results[-1].status != "unknown":
                    self.settled(
                        results, StepResult(steps[len(results)], StepStatus.FAILED, error=str(exc))
                    )
            self.untrusted = self.untrusted or _refusal(session)
            if self.untrusted is not None:
                self.answered_twice(results, first, self.untrusted)
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
            why = f"already compliant: {step.describe()} = {result.before}"
            _audit_step(self.ctx, self.action, step, "skipped", f"{why}; nothing sent")
            return result
        # A command step's commands are filled from the records read for the plan: they go
        # out only while the host reads exactly those (start_state), never without it.
        strict = step.kind == "command"
        if result.before != step.start_value or (
            (step.start_state or strict) and state != step.start_state
        ):
            result.status = StepStatus.DRIFTED
            result.error = str(
                DriftError(
                    f"{self.host.name}: {step.parameter or step.check_command} changed since "
                    "the plan (then "
                    f"{step.start_state or f'{step.describe()} = {step.start_value}'}, "
                    f"now {state}); "
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
                if isinstance(exc, AnswerError):
                    self.untrusted = self.untrusted or exc
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
            if isinstance(exc, AnswerError):
                self.untrusted = self.untrusted or exc
            return self.settle_unknown(step, result, f"post-check failed: {exc}", masked)
        if result.after == step.target_value:
            result.status = StepStatus.CHANGED
        else:
            result.error = (
                f"post-check read {step.describe()} = {result.after}, expected {step.target_value}"
            )
        return result

    def answered_twice(self, results: list[StepResult], first: int, refused: AnswerError) -> None:
        """The session of ``results[first:]`` turned out to hold an answer no honest element
        gives (``refused``: a second answer seen at logout or with a later reply): none of its
        answers is trusted. A step that sent a command becomes "unknown" (audited) and is
        settled by a fresh read; one that sent nothing because it read the target value is not
        "already compliant". Steps already settled by a fresh read keep their outcome."""
        why = f"the session was not trusted after the step ({refused})"
        for i in range(first, len(results)):
            done = results[i]
            if id(done) in self.fresh:
                continue  # settled by a fresh read in a session of its own
            if done.status == StepStatus.ALREADY_COMPLIANT:
                results[i] = _replace_result(
                    done, StepStatus.FAILED, f"{why}; nothing was sent: re-run the apply"
                )
                self.mark(None)
                continue
            if not done.commands:
                continue
            results[i] = _replace_result(done, StepStatus.UNKNOWN, why)
            self.mark(None)  # unknown on disk before the fresh read
            for run in done.commands:
                self._audit_settled(run.command, "unknown", why)
            last = done.commands[-1].command
            results[i] = self.settle_unknown(
                done.step, _replace_result(done, done.status, ""), why, last
            )
            self.mark(None)

    def settle_unknown(self, step: Step, result: StepResult, why: str, command: str) -> StepResult:
        """After a lost reply or post-check only a fresh read tells what happened; never re-send.
        The settled outcome goes to the audit trail after the "unknown" line."""
        result.status, result.error = StepStatus.UNKNOWN, why
        self.fresh.add(id(result))
        try:
            with self.ctx.session_factory(self.host) as session:
                result.after, result.after_state = self.read(session, step)
            refused = getattr(session, "refused", None)
            if isinstance(refused, AnswerError):  # the fresh read is not trusted either
                raise refused
        except Exception as exc:
            result.error += f"; re-read failed too ({exc}): check the host by hand"
            self._audit_settled(command, "unknown", f"not settled: a fresh read failed ({exc})")
            return result
        read = f"{step.describe()} = {result.after}"
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


def _refusal(session: MmlSession | None) -> AnswerError | None:
    """The answer a session refused as it ended (a late second answer), if any."""
    refused = getattr(session, "refused", None)
    return refused if isinstance(refused, AnswerError) else None


def _replace_result(
    result: StepResult, status: StepStatus, error: str, *more: CommandRun
) -> StepResult:
    """A copy of ``result`` with another status and error, and ``more`` commands."""
    return replace(result, status=status, error=error, commands=[*result.commands, *more])
