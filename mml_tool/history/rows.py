"""What the history store holds and gives back: rows of a run, and the summaries, transitions
and timelines read from it. Plain dataclasses, no database code, so callers that only build a
run's rows need not import SQLAlchemy. The rows' column values and the since-last comparison
are here too: both stores (``store`` with SQLAlchemy, ``lite`` with sqlite3) share them."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

COMPLIANT = ("pass", "waived")
CHECK_COMMANDS = ("check", "watch", "run")  # runs whose findings are a fleet's state


def _utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: every time stored here is UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


@dataclass(frozen=True)
class FindingRow:
    host: str
    control: str
    status: str  # pass | fail | error | waived
    actual: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ChangeRow:
    host: str
    control: str
    action: str  # apply | rollback
    status: str
    before: int | None = None
    after: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class VerificationRow:
    gateway: str
    direction: int | None
    ok: bool
    reason: str


@dataclass
class RunRecord:
    """One run as the store keeps it."""

    command: str
    started: datetime
    finished: datetime
    inventory: str
    policy_name: str
    policy_sha256: str
    exit_code: int
    change_id: str | None = None
    operator: str = ""
    tool_version: str = ""
    scope: str = ""  # the key since_last compares by (the inventory's name:); "": its path
    findings: list[FindingRow] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    verifications: list[VerificationRow] = field(default_factory=list)


@dataclass(frozen=True)
class Transition:
    host: str
    control: str
    was: str
    now: str

    def to_dict(self) -> dict[str, str]:
        return {"host": self.host, "control": self.control, "was": self.was, "now": self.now}


@dataclass(frozen=True)
class SinceLast:
    """What changed since the previous run of the same inventory and policy."""

    previous_run: int | None
    previous_started: datetime | None
    new_failures: list[Transition]
    fixed: list[Transition]
    became_unreadable: list[Transition]

    @property
    def changed(self) -> bool:
        return bool(self.new_failures or self.fixed or self.became_unreadable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "previous_run": self.previous_run,
            "previous_started": _iso(self.previous_started) if self.previous_started else None,
            "new_failures": [t.to_dict() for t in self.new_failures],
            "fixed": [t.to_dict() for t in self.fixed],
            "became_unreadable": [t.to_dict() for t in self.became_unreadable],
        }


@dataclass(frozen=True)
class RunSummary:
    id: int
    command: str
    started: datetime
    finished: datetime
    inventory: str
    policy_name: str
    change_id: str | None
    operator: str
    machine: str
    exit_code: int
    hosts: int
    passed: int
    failed: int
    errors: int
    waived: int
    scope: str = ""  # the inventory's name:, else its path

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "command": self.command,
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "duration_seconds": round((self.finished - self.started).total_seconds(), 3),
            "inventory": self.inventory,
            "scope": self.scope,
            "policy": self.policy_name,
            "change_id": self.change_id,
            "operator": self.operator,
            "machine": self.machine,
            "exit_code": self.exit_code,
            "counts": {
                "hosts": self.hosts,
                "pass": self.passed,
                "fail": self.failed,
                "error": self.errors,
                "waived": self.waived,
            },
        }


@dataclass(frozen=True)
class StatusChange:
    at: datetime
    was: str | None
    now: str
    run_id: int


@dataclass(frozen=True)
class Timeline:
    """One (host, control)'s statuses over the window asked for."""

    host: str
    control: str
    status: str  # the latest
    since: datetime  # when the latest status began (within the window)
    changes: list[StatusChange]
    non_compliant_seconds: float  # time spent in `fail` within the window, up to now
    last_compliant: datetime | None
    last_read: datetime | None  # the last run that could read it (not `error`)
    last_seen: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "control": self.control,
            "status": self.status,
            "since": _iso(self.since),
            "non_compliant_seconds": round(self.non_compliant_seconds, 3),
            "last_compliant": _iso(self.last_compliant) if self.last_compliant else None,
            "last_read": _iso(self.last_read) if self.last_read else None,
            "last_seen": _iso(self.last_seen),
            "changes": [
                {"at": _iso(c.at), "was": c.was, "now": c.now, "run": c.run_id}
                for c in self.changes
            ],
        }


def _iso(value: datetime) -> str:
    return _utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the columns of a run's rows, and the since-last comparison (shared by both stores)


def run_values(run: RunRecord) -> dict[str, Any]:
    """The ``runs`` row of ``run`` (its id is the database's), cut to the column widths."""
    counts = {s: sum(1 for f in run.findings if f.status == s) for s in (*COMPLIANT, "fail")}
    counts["error"] = sum(1 for f in run.findings if f.status == "error")
    return {
        "command": run.command,
        "started": run.started,
        "finished": run.finished,
        "inventory": run.inventory[:1024],
        "scope": (run.scope or run.inventory)[:1024],
        "policy_name": run.policy_name[:255],
        "policy_sha256": run.policy_sha256[:64],
        "change_id": run.change_id,
        "operator": run.operator[:255],
        "machine": socket.gethostname()[:255],
        "tool_version": run.tool_version[:32],
        "exit_code": run.exit_code,
        "hosts": len({f.host for f in run.findings} | {c.host for c in run.changes}),
        "passed": counts["pass"],
        "failed": counts["fail"],
        "errors": counts["error"],
        "waived": counts["waived"],
    }


def data_rows(run: RunRecord, run_id: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per table (findings, changes, verifications): the rows of run ``run_id``."""
    return [
        ("findings", [{"run_id": run_id, **_cut(f.__dict__)} for f in run.findings]),
        ("changes", [{"run_id": run_id, **_cut(c.__dict__)} for c in run.changes]),
        ("verifications", [{"run_id": run_id, **_cut(v.__dict__)} for v in run.verifications]),
    ]


def _cut(row: dict[str, Any]) -> dict[str, Any]:
    """Column widths: a long device message must not make a write fail."""
    return {
        k: v[:255] if isinstance(v, str) and k not in ("error", "reason") else v
        for k, v in row.items()
    }


def compare(
    previous: tuple[int, datetime] | None,
    now: dict[tuple[str, str], str],
    before: dict[tuple[str, str], str],
) -> SinceLast:
    """What changed from ``before`` (the statuses of run ``previous``: its id and start) to
    ``now``, per (host, control)."""
    new_failures, fixed, unreadable = [], [], []
    for (host, control), status in sorted(now.items()):
        was = before.get((host, control))
        if was is None or was == status:
            continue
        change = Transition(host, control, was, status)
        if status == "fail":
            new_failures.append(change)
        elif status in COMPLIANT and was in ("fail", "error"):
            fixed.append(change)
        elif status == "error":
            unreadable.append(change)
    return SinceLast(
        previous[0] if previous else None,
        _utc(previous[1]) if previous else None,
        new_failures,
        fixed,
        unreadable,
    )
