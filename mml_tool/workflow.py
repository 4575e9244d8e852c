"""The whole change in one call: check -> plan -> approve -> apply -> verify -> rollback on failure.

Everything it does lands in an evidence bundle for the change ticket: `summary.md`,
`report.json`, `plan.json`, `apply-record.json`, `rollback-record.json` (when rolled back),
`verify-<gateway>.json` and masked session transcripts under `transcripts/`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from mml_tool import __version__
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
from mml_tool.change.record import RecordJournal, default_fallback_dirs, fresh_path
from mml_tool.compliance import check_fleet
from mml_tool.errors import ConfigError, RecordError
from mml_tool.exitcodes import ExitCode
from mml_tool.fleet import DEFAULT_WORKERS
from mml_tool.gateway.verify import VerifyResult, verify_gateway
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.session import MmlSession, Transcript
from mml_tool.policy import Finding, Policy
from mml_tool.report import Outcome, Report, RunInfo, write_reports
from mml_tool.secret import Secret
from mml_tool.verify_fleet import verify_gateways

EXIT_OK, EXIT_ERROR = ExitCode.OK, ExitCode.ERROR
EXIT_NONCOMPLIANT, EXIT_VERIFY_FAILED = ExitCode.NONCOMPLIANT, ExitCode.VERIFY_FAILED


class TranscriptBook:
    """Collects a masked transcript per host across every session a run opens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._books: dict[str, Transcript] = {}

    def session(self, host: HostConfig) -> MmlSession:
        with self._lock:
            transcript = self._books.setdefault(host.name, Transcript())
        return MmlSession(host, transcript=transcript)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, transcript in sorted(self._books.items()):
            transcript.write(folder / f"{name}.txt")


@dataclass
class RunOutcome:
    """What `run` did, step by step; ``exit_code`` follows the CLI contract."""

    evidence: Path
    findings: list[Finding] = field(default_factory=list)  # before any change
    findings_after: list[Finding] | None = None  # re-checked once something was sent
    plan: Plan | None = None
    applied: ApplyRecord | None = None
    verifications: list[VerifyResult] = field(default_factory=list)
    rolled_back: ApplyRecord | None = None
    notes: list[str] = field(default_factory=list)
    evidence_errors: list[str] = field(default_factory=list)  # files that could not be written
    exit_code: int = EXIT_OK
    result: str = ""  # the outcome in words when exit_code alone does not say it
    operator: str = ""  # who ran it: in the plan, the audit records and the report

    @property
    def verified(self) -> bool:
        return bool(self.verifications) and all(v.passed for v in self.verifications)


def gateways_for(inventory: Inventory, hosts: Sequence[HostConfig]) -> list[str]:
    """The gateways the selected hosts name; every host must name one to be verified."""
    missing = [h.name for h in hosts if not h.gateway]
    if missing:
        raise ConfigError(
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
        _keep_evidence(
            outcome, evidence / "transcripts", lambda: book.write(evidence / "transcripts")
        )
        _keep_evidence(
            outcome,
            evidence / "report.json, summary.md",
            lambda: _write_bundle(outcome, inventory, policy, change_id, started),
        )
    if outcome.evidence_errors and outcome.exit_code == EXIT_OK:
        outcome.exit_code = EXIT_ERROR  # done, but the ticket lacks its proof
    return outcome


def _keep_evidence(outcome: RunOutcome, what: Path | str, write: Callable[[], object]) -> bool:
    """Write one piece of evidence. A failure (folder gone read-only, disk full) becomes a note
    on stderr, never the end of the run: a change that was sent must still be verified and,
    when that fails, rolled back."""
    try:
        write()
        return True
    except (OSError, ConfigError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__  # report.py wraps OSError
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
        outcome.evidence_errors.append(str(what))
        outcome.notes.append(f"EVIDENCE NOT WRITTEN: {what} ({detail})")
        return False


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
        _evidence_lost(outcome, journal.path, str(exc))
        outcome.exit_code = EXIT_ERROR
        return False
    outcome.applied = apply_plan(plan, replace(ctx, journal=journal), workers=workers)
    _note_fallback(outcome, journal)
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
    evidence = outcome.evidence
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
        return
    outcome.plan = plan = build_plan(
        outcome.findings,
        policy,
        change_id=change_id,
        inventory=inventory.path,
        operator=outcome.operator,
    )
    plan_path = evidence / "plan.json"
    key = inventory.plan_signing_key
    if not _keep_evidence(outcome, plan_path, lambda: save_plan(plan, plan_path, signing_key=key)):
        outcome.notes.append("the plan could not be written to the evidence: nothing was sent")
        outcome.exit_code = EXIT_ERROR
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
    if outcome.plan.steps:
        if not _apply(outcome, plan, ctx, approve=approve, workers=workers, say=say):
            return
    else:
        say("check: every host is compliant; nothing to change")
    say(
        f"verify: one-way video directions {','.join(map(str, directions))} via "
        f"{len(gateway_names)} gateway(s), up to {workers} at once"
    )

    def verified(result: VerifyResult) -> None:
        name = result.gateway
        verify_path, body = evidence / f"verify-{name}.json", result.to_dict()
        _keep_evidence(outcome, verify_path, partial(write_json_atomic, verify_path, body))
        say(f"verify: {name}: {result.status}" + (f" ({result.error})" if result.error else ""))

    outcome.verifications = verify_gateways(  # concurrently, each releasing and signing out
        [inventory.gateways[name] for name in gateway_names],
        directions=directions,
        workers=workers,
        on_done=verified,
        verify=verify_gateway,
    )
    if outcome.verified:
        return
    could_not_run = any(v.status == "error" for v in outcome.verifications)
    outcome.exit_code = EXIT_ERROR if could_not_run else EXIT_VERIFY_FAILED
    if outcome.applied is not None and rollback_on_failure:
        _roll_back(outcome, outcome.applied, ctx, workers=workers, say=say)


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
    undo = _rollback_journal(
        outcome, path, ctx.change_id, ctx.audit.path, ctx.inventory.plan_signing_key
    )
    outcome.rolled_back = rollback_record(applied, replace(ctx, journal=undo), workers=workers)
    if undo is not None:
        _note_fallback(outcome, undo)
    if not outcome.rolled_back.ok:
        outcome.notes.append("ROLLBACK INCOMPLETE: check the hosts by hand")
        outcome.exit_code = EXIT_ERROR
    else:
        outcome.notes.append("verification failed: the change was rolled back")


def _evidence_lost(outcome: RunOutcome, what: Path | str, detail: str) -> None:
    outcome.evidence_errors.append(str(what))
    outcome.notes.append(f"EVIDENCE NOT WRITTEN: {what} ({detail})")


def _note_fallback(outcome: RunOutcome, journal: RecordJournal) -> None:
    """The evidence folder failed while the record was written: say where the record went."""
    if journal.fallback is not None:
        _evidence_lost(outcome, journal.path, f"the record is in {journal.fallback}")


def _rollback_journal(
    outcome: RunOutcome, path: Path, change_id: str, audit_path: Path, key: Secret | None
) -> RecordJournal | None:
    """A journal for the rollback record: in the evidence folder, else (the folder failed) in a
    fallback folder, said in the notes. A failed verification is rolled back in any case."""
    digest = outcome.applied.plan_sha256 if outcome.applied is not None else ""
    tried = []
    for candidate in (
        path,
        *(d / f"{change_id}-{path.name}" for d in default_fallback_dirs(audit_path)),
    ):
        journal = RecordJournal(
            fresh_path(candidate),
            plan_sha256=digest,
            action="rollback",
            accumulate=False,
            fallback_dirs=default_fallback_dirs(audit_path),
            signing_key=key,
        )
        try:
            journal.check()
        except RecordError as exc:
            tried.append(str(exc))
            continue
        if candidate != path:
            _evidence_lost(outcome, path, f"{tried[0]}; the record is in {journal.path}")
        return journal
    _evidence_lost(outcome, path, "; ".join(tried))
    return None


def _write_bundle(
    outcome: RunOutcome, inventory: Inventory, policy: Policy, change_id: str, started: str
) -> None:
    info = RunInfo(
        command="run",
        tool_version=__version__,
        policy_name=policy.name,
        policy_sha256=policy.sha256,
        change_id=change_id,
        inventory=str(inventory.path),
        started=started,
        finished=now_iso(),
        operator=outcome.operator,
    )
    changes: list[dict[str, Any]] = []
    for record in (outcome.applied, outcome.rolled_back):
        if record is not None:
            changes += [{**r.to_dict(), "action": record.action} for r in record.results]
    verification: dict[str, Any] | None = None
    if outcome.verifications or outcome.notes:
        statuses = {v.status for v in outcome.verifications}
        status = "error" if "error" in statuses else "fail" if "fail" in statuses else "pass"
        verification = {
            "status": status if outcome.verifications else "not run",
            "gateways": [v.to_dict() for v in outcome.verifications],
            "notes": list(outcome.notes),
        }
    final = outcome.findings if outcome.findings_after is None else outcome.findings_after
    report = Report(info, final, changes=changes, verification=verification)
    decided = report.decide()
    if outcome.result or outcome.exit_code != decided.exit_code:
        # run knows what it did (not approved, rolled back...): the report says the same.
        words = {0: "done", 1: "incomplete", 101: "verification failed"}
        result = outcome.result or words.get(int(outcome.exit_code), decided.result)
        report.outcome = Outcome(result, outcome.exit_code, "; ".join(outcome.notes))
    write_reports(
        report,
        [("json", outcome.evidence / "report.json"), ("md", outcome.evidence / "summary.md")],
    )
