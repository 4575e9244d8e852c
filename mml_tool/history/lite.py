"""Recording a run into an SQLite store with the standard library's ``sqlite3``, without
SQLAlchemy: importing SQLAlchemy alone costs ~0.2 s of CPU, more than everything else a check
does for its history (issue 14: the fixed cost of a whole-process check).

Only what a command does after its run (``record``, ``since_last``, ``prune``), and only into a
store that is an SQLite file at ``WRITES_VERSION``: ``open`` answers None for anything else
(no file yet, an older or newer schema, a URL), and the caller uses ``store.HistoryStore``,
which creates and upgrades stores, reads them for the ``history`` command and talks to
PostgreSQL. So the tables keep one definition (``schema``), and a store a newer mml-tool
upgraded is never written here. The rows are ``HistoryStore.record``'s (``rows.run_values``,
``rows.data_rows``), bound as SQLAlchemy's SQLite dialect binds them; a test holds the two
stores to the same rows and answers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from mml_tool.errors import HistoryError
from mml_tool.history.clock import utc_now
from mml_tool.history.config import HistoryLocation
from mml_tool.history.rows import (
    CHECK_COMMANDS,
    RunRecord,
    SinceLast,
    compare,
    data_rows,
    run_values,
)

WRITES_VERSION = 2  # the schema version these statements write; a test holds it to schema's
CONNECT_TIMEOUT = 5  # seconds, as store.CONNECT_TIMEOUT: a locked store must not hold a run up
_DATA_TABLES = ("findings", "changes", "verifications")


class LiteStore:
    """An SQLite store at ``WRITES_VERSION``, open for recording runs."""

    def __init__(self, location: HistoryLocation, conn: sqlite3.Connection) -> None:
        self.location = location
        self._conn = conn

    @classmethod
    def open(cls, location: HistoryLocation) -> LiteStore | None:
        """The store at ``location.file``; None when ``HistoryStore`` must open it (no such
        file, or not at ``WRITES_VERSION``)."""
        try:
            if location.file is None or not location.file.is_file():
                return None
            # check_same_thread: `watch` keeps the store open and records from its rounds.
            conn = sqlite3.connect(
                location.file, timeout=CONNECT_TIMEOUT, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except (OSError, sqlite3.Error):
            return None  # HistoryStore says why, in its words
        try:
            row = conn.execute(
                "SELECT value FROM mml_tool_meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.Error:  # no meta table: an empty file, or not a store at all
            row = None
        if row is None or row[0] != str(WRITES_VERSION):
            conn.close()
            return None
        return cls(location, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _begin(self, what: str, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction. A write takes the write lock at its start (IMMEDIATE), so that
        waiting for another writer is bounded by the timeout instead of failing half-way; a
        read (DEFERRED) takes none."""
        conn = self._conn
        try:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            detail = str(exc).strip().splitlines()
            raise HistoryError(
                f"history store {self.location.shown}: cannot {what}: "
                f"{detail[0] if detail else type(exc).__name__}"
            ) from None

    def record(self, run: RunRecord) -> int:
        """Store ``run`` with its rows in one transaction; its id."""
        with self._begin("write") as conn:
            values = _bind(run_values(run))
            cursor = conn.execute(_insert("runs", values), values)
            run_id = cursor.lastrowid
            assert run_id is not None  # an INSERT always has one
            for table, rows in data_rows(run, run_id):
                if rows:
                    conn.executemany(_insert(table, rows[0]), [_bind(row) for row in rows])
        return run_id

    def since_last(self, run_id: int) -> SinceLast:
        """As ``HistoryStore.since_last``: run ``run_id`` against the previous check-kind run
        of its inventory key and policy."""
        commands = ", ".join(f"'{c}'" for c in CHECK_COMMANDS)
        with self._begin("read", "DEFERRED") as conn:
            this = conn.execute(
                "SELECT scope, inventory, policy_sha256, started FROM runs WHERE id = ?",
                (run_id,),
            ).fetchone()
            key = this[0] or this[1]
            previous = conn.execute(
                "SELECT id, started FROM runs"
                " WHERE (scope = ? OR (scope = '' AND inventory = ?))"
                f" AND policy_sha256 = ? AND command IN ({commands})"
                " AND id != ? AND started <= ?"
                " ORDER BY started DESC, id DESC LIMIT 1",
                (key, key, this[2], run_id, this[3]),
            ).fetchone()
            now = _statuses(conn, run_id)
            before = _statuses(conn, previous[0]) if previous else {}
        return compare(
            (previous[0], datetime.fromisoformat(previous[1])) if previous else None, now, before
        )

    def prune(self, keep: timedelta, now: datetime | None = None) -> int:
        """As ``HistoryStore.prune``: delete runs that started more than ``keep`` ago, with
        their rows; how many."""
        cutoff = _bind_time((now or utc_now()) - keep)
        with self._begin("prune") as conn:
            for table in _DATA_TABLES:
                conn.execute(
                    f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM runs WHERE started < ?)",
                    (cutoff,),
                )
            return conn.execute("DELETE FROM runs WHERE started < ?", (cutoff,)).rowcount


def _statuses(conn: sqlite3.Connection, run_id: int) -> dict[tuple[str, str], str]:
    rows = conn.execute("SELECT host, control, status FROM findings WHERE run_id = ?", (run_id,))
    return {(host, control): status for host, control, status in rows}


def _insert(table: str, row: dict[str, Any]) -> str:
    """The INSERT of ``row``'s columns (names from the code, never from input)."""
    return f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})"


def _bind(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _bind_time(v) if isinstance(v, datetime) else v for k, v in row.items()}


def _bind_time(value: datetime) -> str:
    """As SQLAlchemy's SQLite DATETIME stores it: the fields as given, no zone (every time the
    history writes is UTC), so that both stores' times compare as text."""
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )
