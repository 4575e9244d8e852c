"""The thin layer between the commands and the history store and metrics file.

Commands get ``--history URL|PATH``, ``--no-history`` and ``--keep DURATION`` from
``history_options`` (and ``--metrics PATH.prom`` from ``metrics_option``) without a parameter
of their own: the values go to ``ctx.meta``. After a command has its results it calls one of
``after_check``, ``after_change``, ``after_verify``, ``after_run``. These never raise: writing
history must not block or fail a change, so any history error is a logged warning and the
command's own result stands.

This module is the one place that reads the domain's result objects (findings, apply records,
verification results, run outcomes), so pointing it at another API is a change here only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from mml_tool import __version__
from mml_tool.errors import MmlToolError
from mml_tool.history.clock import utc_now
from mml_tool.history.options import Settings, settings
from mml_tool.history.options import history_options as history_options
from mml_tool.history.options import metrics_option as metrics_option

if TYPE_CHECKING:  # SQLAlchemy is loaded only when a run is recorded
    from mml_tool.history.lite import LiteStore
    from mml_tool.history.rows import (
        ChangeRow,
        FindingRow,
        RunRecord,
        SinceLast,
        VerificationRow,
    )
    from mml_tool.history.store import HistoryStore

log = logging.getLogger("mml_tool.history")


def mask_text(text: str) -> str:
    """Password values masked, as in every report (imported late: it loads the SSH layer)."""
    from mml_tool.mml.command import mask_text as mask

    return mask(text)


# -- opening and writing, never raising


def open_store(
    inventory_path: Path | None, s: Settings | None = None
) -> LiteStore | HistoryStore | None:
    """The store the command line and inventory chose; None (with a warning) when it cannot
    be opened, None silently with --no-history. An SQLite file at the current schema version
    is written without SQLAlchemy (``lite``); anything else (a new or older store, a URL) is
    opened with it."""
    from mml_tool.history.config import resolve
    from mml_tool.history.lite import LiteStore

    s = s or settings()
    try:
        location = resolve(
            cli_value=s.history, no_history=s.no_history, inventory_path=inventory_path
        )
        if location is None:
            return None
        lite = LiteStore.open(location)
        if lite is not None:
            return lite
        from mml_tool.history.store import HistoryStore

        return HistoryStore.open(location)
    except Exception as exc:
        _warn(exc)
        return None


def record_run(
    run: RunRecord, inventory_path: Path | None, *, compare: bool = False
) -> SinceLast | None:
    """Store ``run`` (and prune with --keep); the since-last comparison when ``compare``."""
    s = settings()
    store = open_store(inventory_path, s)
    if store is None:
        return None
    try:
        run_id = store.record(run)
        since = store.since_last(run_id) if compare else None
        if s.keep is not None:
            store.prune(s.keep)
        return since
    except Exception as exc:
        _warn(exc)
        return None
    finally:
        store.close()


def _warn(exc: Exception) -> None:
    """Never fail the command for its history. Our errors are scrubbed of the password; an
    unforeseen one is named by its type only, since its text could quote the URL."""
    what = str(exc) if isinstance(exc, MmlToolError) else f"unexpected {type(exc).__name__}"
    log.warning("history not recorded: %s", what)


def _time(iso: str | None, default: datetime) -> datetime:
    if not iso:
        return default
    try:
        value = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return default
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def scope(inventory_path: Path | str | None) -> str:
    """The inventory file's absolute path (the runs' ``inventory`` column)."""
    return str(Path(inventory_path).resolve()) if inventory_path else ""


def inventory_key(inventory_path: Path | str | None) -> str:
    """What since_last compares runs by: the inventory's ``name:`` (the same inventory in any
    folder), else its absolute path."""
    if not inventory_path:
        return ""
    from mml_tool.history.config import inventory_name

    return inventory_name(Path(inventory_path)) or scope(inventory_path)


def finding_rows(findings: Iterable[Any]) -> list[FindingRow]:
    from mml_tool.history.rows import FindingRow

    return [
        FindingRow(
            f.host,
            f.control_id,
            str(f.status),
            mask_text(f.actual) if f.actual is not None else None,
            mask_text(f.error) if f.error else None,
        )
        for f in findings
    ]


def findings_run(
    command: str,
    findings: Sequence[Any],
    *,
    inventory_path: Path | str | None,
    policy_name: str,
    policy_sha256: str,
    started: datetime,
    finished: datetime,
    exit_code: int,
    operator: str = "",
) -> RunRecord:
    from mml_tool.history.rows import RunRecord

    return RunRecord(
        command=command,
        started=started,
        finished=finished,
        inventory=scope(inventory_path),
        scope=inventory_key(inventory_path),
        policy_name=policy_name,
        policy_sha256=policy_sha256,
        exit_code=exit_code,
        operator=operator or _operator(),
        tool_version=__version__,
        findings=finding_rows(findings),
    )


def _operator() -> str:
    from mml_tool.audit import operator_name

    try:
        return operator_name()
    except Exception:  # no login name (a container without /etc/passwd entry): not fatal
        return ""


def write_metrics_file(
    path: Path,
    findings: Sequence[Any],
    *,
    started: datetime,
    finished: datetime,
    exit_code: int,
) -> None:
    """Metrics of one run; a write failure is a warning (the staleness alert catches it)."""
    from mml_tool.metrics import write_metrics

    try:
        write_metrics(
            path,
            findings,
            duration=max(0.0, (finished - started).total_seconds()),
            finished=finished.timestamp(),
            decided=exit_code in (0, 100),
        )
    except OSError as exc:
        log.warning("metrics not written to %s: %s", path, exc.strerror or exc)


# -- per command


def after_check(report: Any, inventory_path: Path) -> dict[str, Any] | None:
    """Record a check, write its metrics; the JSON-ready ``since_last`` (None without
    history)."""
    s = settings()
    info = report.info
    finished = _time(info.finished, utc_now())
    started = _time(info.started, s.started)
    code = int(report.decide().exit_code)  # "nothing checked" is 1, never compliant
    since = None
    if not s.no_history:  # with --no-history the store's module (SQLAlchemy) is not imported
        run = findings_run(
            "check",
            list(report.findings),
            inventory_path=inventory_path,
            policy_name=info.policy_name,
            policy_sha256=info.policy_sha256,
            started=started,
            finished=finished,
            exit_code=code,
            operator=info.operator,
        )
        since = record_run(run, inventory_path, compare=True)
    if s.metrics is not None:
        write_metrics_file(
            s.metrics, list(report.findings), started=started, finished=finished, exit_code=code
        )
    return since.to_dict() if since is not None else None


def change_rows(record: Any) -> list[ChangeRow]:
    from mml_tool.history.rows import ChangeRow

    return [
        ChangeRow(
            r.step.host,
            r.step.control_id,
            str(record.action),
            str(r.status),
            r.before,
            r.after,
            mask_text(r.error) if r.error else None,
        )
        for r in record.results
    ]


def after_change(
    command: str, record: Any, inventory_path: Path, policy: Any, exit_code: int
) -> None:
    """Record an apply or a rollback."""
    s = settings()
    if s.no_history:  # nothing to record: the store's module (SQLAlchemy) stays unloaded
        return
    from mml_tool.history.rows import RunRecord

    run = RunRecord(
        command=command,
        started=_time(record.started, s.started),
        finished=_time(record.finished, utc_now()),
        inventory=scope(inventory_path),
        scope=inventory_key(inventory_path),
        policy_name=str(getattr(policy, "name", "") or getattr(policy, "policy_name", "")),
        policy_sha256=str(getattr(policy, "sha256", "") or getattr(policy, "policy_sha256", "")),
        exit_code=exit_code,
        change_id=record.change_id or None,
        operator=record.operator,
        tool_version=__version__,
        changes=change_rows(record),
    )
    record_run(run, inventory_path)


def verification_rows(result: Any) -> list[VerificationRow]:
    from mml_tool.history.rows import VerificationRow

    rows = [
        VerificationRow(result.gateway, d.direction, bool(d.ok), mask_text(d.reason))
        for d in result.directions
    ]
    if result.error:
        rows.append(VerificationRow(result.gateway, None, False, mask_text(result.error)))
    return rows


def after_verify(result: Any, inventory_path: Path, exit_code: int) -> None:
    s = settings()
    if s.no_history:  # nothing to record: the store's module (SQLAlchemy) stays unloaded
        return
    from mml_tool.history.rows import RunRecord

    run = RunRecord(
        command="verify",
        started=s.started,
        finished=utc_now(),
        inventory=scope(inventory_path),
        scope=inventory_key(inventory_path),
        policy_name="",
        policy_sha256="",
        exit_code=exit_code,
        operator=_operator(),
        tool_version=__version__,
        verifications=verification_rows(result),
    )
    record_run(run, inventory_path)


def after_run(outcome: Any, inventory_path: Path, policy: Any, change_id: str) -> None:
    """Record `run`: the fleet's state after it (or before, when nothing was sent), what
    apply and rollback did, each verification."""
    s = settings()
    if s.no_history:  # nothing to record: the store's module (SQLAlchemy) stays unloaded
        return
    findings = outcome.findings_after if outcome.findings_after is not None else outcome.findings
    changes = [*(change_rows(outcome.applied) if outcome.applied else [])]
    if outcome.rolled_back is not None:
        changes += change_rows(outcome.rolled_back)
    verifications = [row for v in outcome.verifications for row in verification_rows(v)]
    run = findings_run(
        "run",
        list(findings),
        inventory_path=inventory_path,
        policy_name=policy.name,
        policy_sha256=policy.sha256,
        started=s.started,
        finished=utc_now(),
        exit_code=int(outcome.exit_code),
    )
    run.change_id = change_id
    run.changes = changes
    run.verifications = verifications
    record_run(run, inventory_path)


# -- showing since_last


def since_last_lines(since: dict[str, Any] | None) -> list[str]:
    """Plain lines for the terminal and Markdown; [] when there is nothing to compare with."""
    if not since or since.get("previous_run") is None:
        return []
    groups = (
        ("new failure(s)", since["new_failures"]),
        ("fixed", since["fixed"]),
        ("became unreadable", since["became_unreadable"]),
    )
    head = (
        f"Since the last run (#{since['previous_run']}, {since['previous_started']}): "
        + ", ".join(f"{len(items)} {label}" for label, items in groups)
    )
    lines = [head]
    for label, items in groups:
        lines += [
            f"  {label}: {t['host']} {t['control']} ({t['was']} -> {t['now']})" for t in items
        ]
    return lines


def show_since_last(since: dict[str, Any] | None, console: Console) -> None:
    for line in since_last_lines(since):
        console.print(Text(line))  # Text: host names are not rich markup
