"""The whole change in one call: check -> plan -> approve -> apply -> verify -> rollback on failure.

Everything it does lands in an evidence bundle for the change ticket: `summary.md`,
`report.json`, `plan.json`, `apply-record.json`, `rollback-record.json` (when rolled back),
`verify-<gateway>.json` and masked session transcripts under `transcripts/`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from mml_tool._io import now_iso
from mml_tool.audit import AuditTrail, operator_name
from mml_tool.change import (
    ApplyRecord,
    ChangeContext,
    Plan,
    apply_plan,
    build_plan,
    plan_sha256,
    rollback_record,
    save_plan,
    write_json_atomic,
)
from mml_tool.change.record import RecordJournal, default_fallback_dirs
from mml_tool.compliance import check_fleet
from mml_tool.errors import ConfigError, InventoryError, RecordError
from mml_tool.exitcodes import ExitCode
from mml_tool.fleet import DEFAULT_WORKERS
from mml_tool.gateway.verify import VerifyResult, verify_gateway
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.policy import Policy
from mml_tool.run_evidence import (
    RunOutcome,
    TranscriptBook,
    evidence_lost,
    keep_evidence,
    note_fallback,
    rollback_journal,
    write_bundle,
)
from mml_tool.verify_fleet import verify_gateways

EXIT_OK, EXIT_ERROR = ExitCode.OK, ExitCode.ERROR
EXIT_NONCOMPLIANT, EXIT_VERIFY_FAILED = ExitCode.NONCOMPLIANT, ExitCode.VERIFY_FAILED


def gateways_for(inventory: Inventory, hosts: Sequence[HostConfig]) -> list[str]:
    """The gateways the selected hosts name; every host must name one to be verified."""
    missing = [h.name for h in hosts if not h.gateway]
    if missing:
        raise InventoryError(
            f"{inventory.path}: host(s) {', '.join(missing)} name no `gateway`; `run` proves "
            "the change through the CC-Gateway. Add `gateway:` to them (see gateways:)."
        )
    return sorted({h.gateway for h in hosts if h.gateway})


def run_change(
    inventory: Inventory,
    policy: Policy,
    hosts: Sequence[HostConfig],
    *,
    change_id: str,
    evidence: Path,
    approve: Callable[[Plan], bool],
    audit: AuditTrail,
    lock_dir: Path,
    rollback_on_failure: bool = True,
    directions: Sequence[int] = (1, 2),
    template_dirs: Sequence[Path] = (),
    workers: int = DEFAULT_WORKERS,
    say: Callable[[str], None] = lambda _: None,
    operator: str | None = None,
) -> RunOutcome:
    """Run the whole change for ``hosts``; never raises for a host's failure, only for bad input."""
    gateway_names = gateways_for(inventory, hosts)
    started = now_iso()
    outcome = RunOutcome(evidence=evidence, operator=operator or operator_name())
    book = TranscriptBook()
    try:
        evidence.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # before anything is read or sent
        raise ConfigError(
            f"cannot create the evidence folder {evidence} ({exc.strerror or exc}): choose a "
            "writable folder with --evidence"
        ) from None
    try:
        _run(
            inventory,
            policy,
            hosts,
            outcome,
            book,
            gateway_names,
            change_id=change_id,
            approve=approve,
            audit=audit,
            lock_dir=lock_dir,
            rollback_on_failure=rollback_on_failure,
            directions=directions,
            template_dirs=template_dirs,
            workers=workers,
            say=say,
        )
        if outcome.applied is not None:
            say("check: reading every host again for the record")
            outcome.findings_after = check_fleet(
                hosts,
                policy,
                template_dirs=template_dirs,
                workers=workers,
                session_factory=book.session,
            )
    finally:
        keep_evidence(
            outcome, evidence / "transcripts", lambda: book.write(evidence / "transcripts")
        )
        keep_evidence(
            outcome,
            evidence / "report.json, summary.md",
            lambda: write_bundle(outcome, inventory, policy, change_id, started),
        )
    if outcome.evidence_errors and outcome.exit_code == EXIT_OK:
        outcome.exit_code = EXIT_ERROR  # done, but the ticket lacks its proof
    return outcome


def _apply(
    outcome: RunOutcome,
    plan: Plan,
    ctx: ChangeContext,
    *,
    approve: Callable[[Plan], bool],
    workers: int,
    say: Callable[[str], None],
) -> bool:
    """Approve and apply ``plan``; False (notes and exit code set) when the run stops here."""
    evidence, audit = outcome.evidence, ctx.audit
    if not approve(plan):
        outcome.notes.append("plan not approved: nothing was sent")
        # 1, not 100: the hosts were not judged again, the change was not done.
        outcome.exit_code, outcome.result = EXIT_ERROR, "not approved"
        return False
    say(f"apply: {len(plan.steps)} step(s) on {len(plan.hosts)} host(s)")
    # Written ahead of every command: a run killed mid-change leaves a record to roll back.
    journal = RecordJournal(
        evidence / "apply-record.json",
        plan_sha256=plan_sha256(plan),
        accumulate=False,
        fallback_dirs=default_fallback_dirs(audit.path),
        hint="nothing was sent",
        signing_key=ctx.inventory.plan_signing_key,
    )
    try:
        journal.check()
    except RecordError as exc:
        evidence_lost(outcome, journal.path, str(exc))
        outcome.exit_code = EXIT_ERROR
        return False
    outcome.applied = apply_plan(plan, replace(ctx, journal=journal), workers=workers)
    note_fallback(outcome, journal)
    if not outcome.applied.ok:
        outcome.notes.append("apply did not reach the planned state everywhere; not verified")
        outcome.exit_code = EXIT_ERROR
        return False
    return True


def _run(
    inventory: Inventory,
    policy: Policy,
    hosts: Sequence[HostConfig],
    outcome: RunOutcome,
    book: TranscriptBook,
    gateway_names: list[str],
    *,
    change_id: str,
    approve: Callable[[Plan], bool],
    audit: AuditTrail,
    lock_dir: Path,
    rollback_on_failure: bool,
    directions: Sequence[int],
    template_dirs: Sequence[Path],
    workers: int,
    say: Callable[[str], None],
) -> None:
    if not _check(
        outcome, hosts, policy, book, template_dirs=template_dirs, workers=workers, say=say
    ):
        return
    plan = _plan(outcome, inventory, policy, change_id)
    if plan is None:
        return
    ctx = ChangeContext(
        inventory=inventory,
        audit=audit,
        operator=outcome.operator,
        change_id=change_id,
        lock_dir=lock_dir,
        template_dirs=template_dirs,
        session_factory=book.session,
        policy=policy,
    )
    if plan.steps:
        if not _apply(outcome, plan, ctx, approve=approve, workers=workers, say=say):
            return
    else:
        say("check: every host is compliant; nothing to change")
    _verify(outcome, inventory, gateway_names, directions=directions, workers=workers, say=say)
    if not outcome.verified and outcome.applied is not None and rollback_on_failure:
        _roll_back(outcome, outcome.applied, ctx, workers=workers, say=say)


def _check(
    outcome: RunOutcome,
    hosts: Sequence[HostConfig],
    policy: Policy,
    book: TranscriptBook,
    *,
    template_dirs: Sequence[Path],
    workers: int,
    say: Callable[[str], None],
) -> bool:
    """Read and judge every host; False (notes and exit code set) when some are not decided."""
    say(f"check: {len(hosts)} host(s) against {policy.name}")
    outcome.findings = check_fleet(
        hosts, policy, template_dirs=template_dirs, workers=workers, session_factory=book.session
    )
    errors = [f for f in outcome.findings if f.status == "error"]
    for finding in errors:
        outcome.notes.append(f"{finding.host} {finding.control_id} not decided: {finding.error}")
    if errors:
        outcome.exit_code = EXIT_ERROR
        say("check: some hosts could not be decided; nothing is changed (see the report)")
        return False
    return True


def _plan(outcome: RunOutcome, inventory: Inventory, policy: Policy, change_id: str) -> Plan | None:
    """The plan from the findings, written to the evidence first; None when it cannot be."""
    outcome.plan = plan = build_plan(
        outcome.findings,
        policy,
        change_id=change_id,
        inventory=inventory.path,
        operator=outcome.operator,
    )
    plan_path = outcome.evidence / "plan.json"
    key = inventory.plan_signing_key
    if not keep_evidence(outcome, plan_path, lambda: save_plan(plan, plan_path, signing_key=key)):
        outcome.notes.append("the plan could not be written to the evidence: nothing was sent")
        outcome.exit_code = EXIT_ERROR
        return None
    return plan


def _verify(
    outcome: RunOutcome,
    inventory: Inventory,
    gateway_names: list[str],
    *,
    directions: Sequence[int],
    workers: int,
    say: Callable[[str], None],
) -> None:
    """Prove the change through every gateway; a failure sets the exit code."""
    say(
        f"verify: one-way video directions {','.join(map(str, directions))} via "
        f"{len(gateway_names)} gateway(s), up to {workers} at once"
    )

    def verified(result: VerifyResult) -> None:
        name = result.gateway
        verify_path, body = outcome.evidence / f"verify-{name}.json", result.to_dict()
        keep_evidence(outcome, verify_path, partial(write_json_atomic, verify_path, body))
        say(f"verify: {name}: {result.status}" + (f" ({result.error})" if result.error else ""))

    outcome.verifications = verify_gateways(  # concurrently, each releasing and signing out
        [inventory.gateways[name] for name in gateway_names],
        directions=directions,
        workers=workers,
        on_done=verified,
        verify=verify_gateway,
    )
    if not outcome.verified:
        could_not_run = any(v.status == "error" for v in outcome.verifications)
        outcome.exit_code = EXIT_ERROR if could_not_run else EXIT_VERIFY_FAILED


def _roll_back(
    outcome: RunOutcome,
    applied: ApplyRecord,
    ctx: ChangeContext,
    *,
    workers: int,
    say: Callable[[str], None],
) -> None:
    """Verification failed after ``applied``: restore the state read before the change."""
    say("rollback: verification failed, restoring the state read before the change")
    path = outcome.evidence / "rollback-record.json"
    undo = rollback_journal(
        outcome, path, ctx.change_id, ctx.audit.path, ctx.inventory.plan_signing_key
    )
    outcome.rolled_back = rollback_record(applied, replace(ctx, journal=undo), workers=workers)
    if undo is not None:
        note_fallback(outcome, undo)
    if not outcome.rolled_back.ok:
        outcome.notes.append("ROLLBACK INCOMPLETE: check the hosts by hand")
        outcome.exit_code = EXIT_ERROR
    else:
        outcome.notes.append("verification failed: the change was rolled back")
