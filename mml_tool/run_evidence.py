"""What `run` did (``RunOutcome``) and the evidence bundle written from it for the change ticket:
the masked transcripts, the report and summary, and where a record went when the evidence folder
failed. A piece of evidence that cannot be written becomes a note, never the end of the run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mml_tool import __version__
from mml_tool._io import now_iso
from mml_tool.change import ApplyRecord, Plan
from mml_tool.change.record import RecordJournal, default_fallback_dirs, fresh_path
from mml_tool.errors import ConfigError, RecordError
from mml_tool.exitcodes import ExitCode
from mml_tool.gateway.verify import VerifyResult
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.session import MmlSession, Transcript
from mml_tool.policy import Finding, Policy
from mml_tool.report import Outcome, Report, RunInfo, write_reports
from mml_tool.secret import Secret


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
        with self._lock:  # a host's session may still be starting (after an interrupt)
            books = sorted(self._books.items())
        for name, transcript in books:
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
    exit_code: int = ExitCode.OK
    result: str = ""  # the outcome in words when exit_code alone does not say it
    operator: str = ""  # who ran it: in the plan, the audit records and the report

    @property
    def verified(self) -> bool:
        return bool(self.verifications) and all(v.passed for v in self.verifications)


def keep_evidence(outcome: RunOutcome, what: Path | str, write: Callable[[], object]) -> bool:
    """Write one piece of evidence. A failure (folder gone read-only, disk full) becomes a note
    on stderr, never the end of the run: a change that was sent must still be verified and,
    when that fails, rolled back."""
    try:
        write()
        return True
    except (OSError, ConfigError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__  # report.py wraps OSError
        detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
        evidence_lost(outcome, what, detail)
        return False


def evidence_lost(outcome: RunOutcome, what: Path | str, detail: str) -> None:
    outcome.evidence_errors.append(str(what))
    outcome.notes.append(f"EVIDENCE NOT WRITTEN: {what} ({detail})")


def note_fallback(outcome: RunOutcome, journal: RecordJournal) -> None:
    """The evidence folder failed while the record was written: say where the record went."""
    if journal.fallback is not None:
        evidence_lost(outcome, journal.path, f"the record is in {journal.fallback}")


def rollback_journal(
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
            evidence_lost(outcome, path, f"{tried[0]}; the record is in {journal.path}")
        return journal
    evidence_lost(outcome, path, "; ".join(tried))
    return None


def write_bundle(
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
    final = outcome.findings if outcome.findings_after is None else outcome.findings_after
    report = Report(info, final, changes=_changes(outcome), verification=_verification(outcome))
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


def _changes(outcome: RunOutcome) -> list[dict[str, Any]]:
    """Every step result of the apply and of the rollback, each saying which it was."""
    changes: list[dict[str, Any]] = []
    for record in (outcome.applied, outcome.rolled_back):
        if record is not None:
            changes += [{**r.to_dict(), "action": record.action} for r in record.results]
    return changes


def _verification(outcome: RunOutcome) -> dict[str, Any] | None:
    """The report's verification section: the worst gateway status, or "not run"."""
    if not (outcome.verifications or outcome.notes):
        return None
    statuses = {v.status for v in outcome.verifications}
    status = "error" if "error" in statuses else "fail" if "fail" in statuses else "pass"
    return {
        "status": status if outcome.verifications else "not run",
        "gateways": [v.to_dict() for v in outcome.verifications],
        "notes": list(outcome.notes),
    }
