"""The history store's tables (SQLAlchemy Core, one definition for SQLite and PostgreSQL) and
the versioned upgrade steps that bring an older store to ``SCHEMA_VERSION``.

A store records its version in ``mml_tool_meta``; each step in ``UPGRADES`` takes a store from
version N-1 to N inside one transaction. A store newer than this mml-tool is refused (an older
tool must not write rows a newer one would misread). To change the schema: add the columns or
tables to the definitions below, append a step that adds them to an existing store, raise
``SCHEMA_VERSION``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    text,
)

SCHEMA_VERSION = 2
UPGRADE_LOCK_ID = 0x6D6D6C  # PostgreSQL advisory lock held while a store is upgraded

metadata = MetaData()

meta = Table(
    "mml_tool_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # check | apply | rollback | verify | run | watch
    Column("command", String(16), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("finished", DateTime(timezone=True), nullable=False),
    Column("inventory", String(1024), nullable=False),  # the file's absolute path, as run
    # What since_last compares by: the inventory's name:, else its path (version 2); '' in a
    # run recorded before version 2: its key is its path, ``inventory``.
    Column("scope", String(1024), nullable=False, server_default=""),
    Column("policy_name", String(255), nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("change_id", String(128)),
    Column("operator", String(255), nullable=False),
    Column("machine", String(255), nullable=False),
    Column("tool_version", String(32), nullable=False),
    Column("exit_code", Integer, nullable=False),
    Column("hosts", Integer, nullable=False),
    Column("passed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("waived", Integer, nullable=False),
    Index("ix_runs_started", "started"),
    Index("ix_runs_scope", "inventory", "policy_sha256", "started"),
    Index("ix_runs_key", "scope", "policy_sha256", "started"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("host", String(255), nullable=False),
    Column("control", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # pass | fail | error | waived
    Column("actual", String(255)),
    Column("error", Text),
    Index("ix_findings_run", "run_id"),
    Index("ix_findings_host_control", "host", "control"),
)

changes = Table(
    "changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("host", String(255), nullable=False),
    Column("control", String(255), nullable=False),
    Column("action", String(16), nullable=False),  # apply | rollback
    Column("status", String(32), nullable=False),
    Column("before", Integer),
    Column("after", Integer),
    Column("error", Text),
    Index("ix_changes_run", "run_id"),
)

verifications = Table(
    "verifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("gateway", String(255), nullable=False),
    Column("direction", Integer),
    Column("ok", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_verifications_run", "run_id"),
)

DATA_TABLES = (findings, changes, verifications)  # rows that belong to a run


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[runs, *DATA_TABLES])  # an empty store: as defined now


def _v2(conn: Connection) -> None:
    """runs.scope, the key of since_last. A version-1 run keeps ``''`` there, read as the key
    it had, its path (``inventory``): no row is rewritten, so the upgrade of a store with a
    million runs stays well within the statement timeout (adding a column with a constant
    default is instant in SQLite and PostgreSQL 11+; the index is built once)."""
    if "scope" not in {c["name"] for c in inspect(conn).get_columns("runs")}:
        conn.execute(text("ALTER TABLE runs ADD COLUMN scope VARCHAR(1024) NOT NULL DEFAULT ''"))
    for index in runs.indexes:
        if index.name == "ix_runs_key":
            index.create(conn, checkfirst=True)


UPGRADES: list[Callable[[Connection], None]] = [_v1, _v2]  # UPGRADES[n-1] makes version n


def stored_version(conn: Connection) -> int:
    """The store's schema version; 0 for an empty database."""
    metadata.create_all(conn, tables=[meta])
    row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
    return int(row[0]) if row else 0


def set_version(conn: Connection, version: int) -> None:
    if conn.execute(select(meta.c.key).where(meta.c.key == "schema_version")).first():
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
    else:
        conn.execute(meta.insert().values(key="schema_version", value=str(version)))
