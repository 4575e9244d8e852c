"""What a report holds (``Report``, ``RunInfo``, ``Outcome``) and what every format shares."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from mml_tool.exitcodes import ExitCode
from mml_tool.policy.models import Finding
from mml_tool.results import exit_code_for as exit_code_for  # decided in results

if TYPE_CHECKING:  # baseline is not loaded to render a compliance report
    from mml_tool.baseline import DriftFinding

# A row of a report: a control's verdict (check, apply...) or a difference from a baseline (diff).
Row: TypeAlias = "Finding | DriftFinding"

SCHEMA_VERSION = 1


STATUSES = ("pass", "fail", "error", "waived")


_DIGITS = re.compile("([0-9]+)")


# Change statuses that mean the step reached the planned state (StepResult.ok).
_CHANGE_OK = ("changed", "already-compliant")


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders ``uap-2`` before ``uap-10`` (ASCII digit runs compare as numbers)."""
    return tuple(
        (0, int(part), "") if _DIGITS.fullmatch(part) else (1, 0, part)
        for part in _DIGITS.split(name)
        if part
    )


@dataclass(frozen=True)
class RunInfo:
    """Who ran what, against what, with which policy, and when (times ISO 8601 UTC)."""

    command: str  # check | apply | rollback | run | verify
    tool_version: str
    policy_name: str
    policy_sha256: str
    change_id: str | None
    inventory: str | None
    started: str
    finished: str
    operator: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a run came to, in words and as the process exit code (the CLI contract)."""

    result: str  # compliant | done | passed | non-compliant | verification failed | ...
    exit_code: int
    message: str = ""


@dataclass
class Report:
    info: RunInfo
    findings: Sequence[Row]
    changes: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    outcome: Outcome | None = None  # None: decided from what the report holds
    since_last: dict[str, Any] | None = None  # from the history store (check only)

    def ordered(self) -> list[Row]:
        """Findings by host then control, so reports do not depend on thread timing."""
        return sorted(self.findings, key=lambda f: (natural_key(f.host), f.control_id))

    def ordered_changes(self) -> list[dict[str, Any]]:
        return sorted(self.changes, key=lambda c: natural_key(str(c.get("host") or "")))

    def decide(self) -> Outcome:
        """The outcome: given, or judged from findings, changes and verification together.

        Could not decide (1) wins over verification failed (101), over non-compliant (100);
        a report that holds nothing at all is never a success."""
        if self.outcome is not None:
            return self.outcome
        statuses = {f.status for f in self.findings}
        verdict = (self.verification or {}).get("status")
        failed_steps = [c for c in self.changes if _change_status(c) not in _CHANGE_OK]
        if not self.findings and not self.changes and self.verification is None:
            return Outcome("nothing checked", ExitCode.ERROR, "nothing was checked")
        if "error" in statuses or verdict == "error":
            return Outcome("not decided", ExitCode.ERROR)
        if failed_steps:
            return Outcome("incomplete", ExitCode.ERROR)
        if verdict == "fail":
            return Outcome("verification failed", ExitCode.VERIFY_FAILED)
        if "fail" in statuses:
            return Outcome("non-compliant", ExitCode.NONCOMPLIANT)
        done = {"check": "compliant", "verify": "passed"}.get(self.info.command, "done")
        return Outcome(done, ExitCode.OK)


def _change_status(change: Mapping[str, Any]) -> str:
    return str(change.get("status", change.get("outcome")) or "")


def gateway_results(verification: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The per-gateway VerifyResult dicts of a verification block (verify: one; run: many)."""
    if not verification:
        return []
    if isinstance(verification.get("gateways"), list):
        return [g for g in verification["gateways"] if isinstance(g, Mapping)]
    if "directions" in verification or "gateway" in verification:
        return [verification]
    return []


def summary(report: Report) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for f in report.findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    hosts = len({f.host for f in report.findings})
    return {**counts, "total": len(report.findings), "hosts": hosts}


def _notes(f: Row) -> Sequence[str]:
    """Remarks on a finding (an expired waiver...)."""
    return [str(n) for n in f.notes]


def _detail(f: Row) -> str:
    """Why a row is what it is, in words: the error, the waiver, or a note."""
    parts = [f.error] if f.error else []
    if f.waiver_reason:
        parts.append(f"waived: {f.waiver_reason}")
    parts += _notes(f)
    return "; ".join(p for p in parts if p)


def _seconds(info: RunInfo) -> float:
    try:
        start = datetime.fromisoformat(info.started.replace("Z", "+00:00"))
        end = datetime.fromisoformat(info.finished.replace("Z", "+00:00"))
        return max((end - start).total_seconds(), 0.0)
    except (ValueError, TypeError):  # unparseable, or naive mixed with aware
        return 0.0


def tls_verification(verification: Mapping[str, Any] | None) -> dict[str, bool]:
    """Gateway name -> whether its TLS certificate was verified, for each gateway result in a
    report's verification (``verify``: one VerifyResult dict; ``run``: one per gateway)."""
    return {
        str(v.get("gateway", "")): v["verify_tls"]
        for v in gateway_results(verification)
        if isinstance(v.get("verify_tls"), bool)
    }


def _tls_off_line(verification: Mapping[str, Any] | None) -> str | None:
    off = sorted(name for name, ok in tls_verification(verification).items() if not ok)
    if not off:
        return None
    return (
        f"- **TLS certificate verification OFF** for gateway {', '.join(off)} "
        "(`verify_tls: false`): anyone on the path could have read the session or forged the "
        "answers this verdict rests on"
    )
