"""The history store: what every run found and did, in SQLite or PostgreSQL.

One ``HistoryStore`` per process; SQLAlchemy Core statements over the tables of ``schema``, so
the same code runs on both databases. Every failure is a ``HistoryError`` whose message shows
the store with its password hidden and scrubbed of the password's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from mml_tool.errors import HistoryError
from mml_tool.history import schema
from mml_tool.history.clock import utc_now
from mml_tool.history.config import HistoryLocation
from mml_tool.history.rows import (
    CHECK_COMMANDS,
    COMPLIANT,
    RunRecord,
    RunSummary,
    SinceLast,
    StatusChange,
    Timeline,
    _utc,
    compare,
    data_rows,
    run_values,
)
from mml_tool.history.rows import (
    VerificationRow as VerificationRow,
)
from mml_tool.secret import scrub

CONNECT_TIMEOUT = 5  # seconds: a store that is down must not hold a change up for long
STATEMENT_TIMEOUT_MS = 15000


class HistoryStore:
    """An open store, upgraded to the current schema."""

    def __init__(self, location: HistoryLocation, engine: Engine) -> None:
        self.location = location
        self.engine = engine

    @classmethod
    def open(cls, location: HistoryLocation) -> HistoryStore:
        url = location.connect_url()
        connect_args: dict[str, Any]
        store = None
        try:
            if url.drivername.startswith("sqlite"):
                if url.database:
                    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
                connect_args = {"timeout": CONNECT_TIMEOUT}
            else:  # nor must a locked table or a stuck server hold it up
                connect_args = {
                    "connect_timeout": CONNECT_TIMEOUT,
                    "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
                    f"-c lock_timeout={STATEMENT_TIMEOUT_MS}",
                }
            engine = create_engine(url, connect_args=connect_args, hide_parameters=True)
            store = cls(location, engine)
            store.upgrade()
        except (SQLAlchemyError, OSError) as exc:
            if store is not None:
                store.close()
            raise _error(location, "open", exc) from None
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _begin(self, what: str) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _error(self.location, what, exc) from None

    def upgrade(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # two machines upgrading at once: one waits
                conn.execute(select(func.pg_advisory_xact_lock(schema.UPGRADE_LOCK_ID)))
            version = schema.stored_version(conn)
            if version > schema.SCHEMA_VERSION:
                raise HistoryError(
                    f"history store {self.location.shown} has schema version {version}, newer "
                    f"than this mml-tool knows ({schema.SCHEMA_VERSION}): upgrade mml-tool"
                )
            for target in range(version + 1, schema.SCHEMA_VERSION + 1):
                schema.UPGRADES[target - 1](conn)
                schema.set_version(conn, target)

    @property
    def version(self) -> int:
        with self._begin("read") as conn:
            return schema.stored_version(conn)

    # -- writing

    def record(self, run: RunRecord) -> int:
        """Store ``run`` with its rows in one transaction; its id."""
        with self._begin("write") as conn:
            result = conn.execute(schema.runs.insert().values(**run_values(run)))
            key = result.inserted_primary_key
            assert key is not None  # an INSERT always has one
            run_id = int(key[0])
            for name, values in data_rows(run, run_id):
                if values:
                    conn.execute(schema.metadata.tables[name].insert(), values)
        return run_id

    def prune(self, keep: timedelta, now: datetime | None = None) -> int:
        """Delete runs that started more than ``keep`` ago, with their rows; how many."""
        cutoff = (now or utc_now()) - keep
        old = select(schema.runs.c.id).where(schema.runs.c.started < cutoff)
        with self._begin("prune") as conn:
            for table in schema.DATA_TABLES:
                conn.execute(delete(table).where(table.c.run_id.in_(old)))
            gone = conn.execute(delete(schema.runs).where(schema.runs.c.started < cutoff))
            return int(gone.rowcount)

    # -- reading

    def since_last(self, run_id: int) -> SinceLast:
        """Compare run ``run_id`` with the previous check-kind run of its inventory key (name:,
        else path) and policy."""
        r = schema.runs
        with self._begin("read") as conn:
            this = conn.execute(select(r).where(r.c.id == run_id)).one()
            previous = conn.execute(
                select(r.c.id, r.c.started)
                .where(
                    and_(
                        _same_key(this.scope or this.inventory),
                        r.c.policy_sha256 == this.policy_sha256,
                        r.c.command.in_(CHECK_COMMANDS),
                        r.c.id != run_id,
                        r.c.started <= this.started,
                    )
                )
                .order_by(r.c.started.desc(), r.c.id.desc())
                .limit(1)
            ).first()
            now = self._statuses(conn, run_id)
            before = self._statuses(conn, previous.id) if previous else {}
        return compare((previous.id, previous.started) if previous else None, now, before)

    @staticmethod
    def _statuses(conn: Connection, run_id: int) -> dict[tuple[str, str], str]:
        f = schema.findings
        rows = conn.execute(select(f.c.host, f.c.control, f.c.status).where(f.c.run_id == run_id))
        return {(row.host, row.control): row.status for row in rows}

    def runs(
        self, *, since: datetime | None = None, limit: int = 50, key: str | None = None
    ) -> list[RunSummary]:
        """The newest runs first (of inventory key ``key`` only, when given)."""
        r = schema.runs
        query = select(r).order_by(r.c.started.desc(), r.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(r.c.started >= since)
        if key is not None:
            query = query.where(_same_key(key))
        with self._begin("read") as conn:
            rows = conn.execute(query).all()
        return [
            RunSummary(
                row.id,
                row.command,
                _utc(row.started),
                _utc(row.finished),
                row.inventory,
                row.policy_name,
                row.change_id,
                row.operator,
                row.machine,
                row.exit_code,
                row.hosts,
                row.passed,
                row.failed,
                row.errors,
                row.waived,
                row.scope or row.inventory,
            )
            for row in rows
        ]

    def last_success(self, scope: str, policy_sha256: str) -> datetime | None:
        """When the last check-kind run of this inventory key (its name:, else its path) and
        policy decided every host."""
        r = schema.runs
        with self._begin("read") as conn:
            value = conn.execute(
                select(func.max(r.c.finished)).where(
                    and_(
                        _same_key(scope),
                        r.c.policy_sha256 == policy_sha256,
                        r.c.command.in_(CHECK_COMMANDS),
                        r.c.exit_code.in_((0, 100)),
                    )
                )
            ).scalar()
        return _utc(value) if value is not None else None

    def timelines(
        self,
        *,
        host: str | None = None,
        control: str | None = None,
        since: datetime | None = None,
        now: datetime | None = None,
        key: str | None = None,
    ) -> list[Timeline]:
        """Per (host, control) seen since ``since``: the status changes in that window (or the
        one that began the current status, when none), when the current status began (even
        before the window), time spent non-compliant within the window, and the last
        compliant and last readable run. ``key``: the runs of that inventory key only (the
        same host name in two inventories is two elements)."""
        now = now or utc_now()
        r, f = schema.runs, schema.findings
        query = (
            select(r.c.id, r.c.started, f.c.host, f.c.control, f.c.status)
            .join(r, r.c.id == f.c.run_id)
            .where(r.c.command.in_(CHECK_COMMANDS))
            .order_by(f.c.host, f.c.control, r.c.started, r.c.id)
        )
        if host is not None:
            query = query.where(f.c.host == host)
        if control is not None:
            query = query.where(f.c.control == control)
        if key is not None:
            query = query.where(_same_key(key))
        with self._begin("read") as conn:  # the whole history: a status may predate the window
            rows = conn.execute(query).all()
        grouped: dict[tuple[str, str], list[Any]] = {}
        for row in rows:
            grouped.setdefault((row.host, row.control), []).append(row)
        return [
            _timeline(key, seen, now, since)
            for key, seen in grouped.items()
            if since is None or _utc(seen[-1].started) >= since
        ]


def _same_key(key: str) -> ColumnElement[bool]:
    """Runs of inventory key ``key``: recorded with it, or before schema version 2 (no key:
    their path was their key)."""
    r = schema.runs
    return or_(r.c.scope == key, and_(r.c.scope == "", r.c.inventory == key))


def _overlap(start: datetime, end: datetime, since: datetime | None) -> float:
    """Seconds of [start, end] inside the window that begins at ``since``."""
    begin = start if since is None else max(start, since)
    return max(0.0, (end - begin).total_seconds())


def _timeline(
    key: tuple[str, str], rows: Sequence[Any], now: datetime, since: datetime | None = None
) -> Timeline:
    changes: list[StatusChange] = []
    status: str | None = None
    non_compliant = 0.0
    fail_since: datetime | None = None
    last_compliant = last_read = None
    for row in rows:
        at = _utc(row.started)
        if row.status != status:
            if fail_since is not None:
                non_compliant += _overlap(fail_since, at, since)
                fail_since = None
            if row.status == "fail":
                fail_since = at
            changes.append(StatusChange(at, status, row.status, row.id))
            status = row.status
        if row.status in COMPLIANT:
            last_compliant = at
        if row.status != "error":
            last_read = at
    if fail_since is not None:
        non_compliant += _overlap(fail_since, now, since)
    shown = [c for c in changes if since is None or c.at >= since] or changes[-1:]
    return Timeline(
        key[0],
        key[1],
        changes[-1].now,
        changes[-1].at,
        shown,
        non_compliant,
        last_compliant,
        last_read,
        _utc(rows[-1].started),
    )


def _error(location: HistoryLocation, what: str, exc: BaseException) -> HistoryError:
    secrets: Iterable[Any] = [location.password] if location.password else []
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text = scrub(detail[0] if detail else type(exc).__name__, secrets)
    return HistoryError(f"history store {location.shown}: cannot {what}: {text}")
