"""Run steps on every host concurrently; apply and rollback are this one algorithm."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Any

from mml_tool._io import now_iso
from mml_tool.change.approval import (
    check_policy,
    check_steps,
)
from mml_tool.change.lock import prepare_lock_dir
from mml_tool.change.outcome import ApplyRecord, StepResult
from mml_tool.change.plan import Plan, Step, plan_sha256
from mml_tool.change.steps import _POLL, ChangeContext, _audit_step, _RunState, _StepRunner, log
from mml_tool.errors import (
    LockError,
    PlanError,
)
from mml_tool.fleet import DEFAULT_WORKERS, HostResult, Progress, run_fleet
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.policy import Policy, load_policy
from mml_tool.results import StepStatus


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


def _sign_with_inventory_key(ctx: ChangeContext) -> None:
    """With the inventory's plan_signing_key, a record journal made without it (a library
    caller's) signs with it too, and checks the earlier record it merges (``begin``)."""
    from mml_tool.change.record import RecordJournal

    if isinstance(ctx.journal, RecordJournal) and ctx.journal.signing_key is None:
        ctx.journal.signing_key = ctx.inventory.plan_signing_key


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
        _sign_with_inventory_key(ctx)
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
            try:
                if ctx.journal is not None:
                    ctx.journal.settled()  # releases the record's lock if a second Ctrl-C kept it
            finally:
                all_done.set()  # whatever happened: the caller's thread waits for it

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
