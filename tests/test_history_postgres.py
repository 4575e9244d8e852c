"""The history store on a real PostgreSQL server started by the test (see postgres.py): the
same CLI runs as on SQLite, the password from ${VAR} or a file, never printed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import postgres
import pytest
from conftest import invoke, write_lab_inventory
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from mml_tool.history import schema
from mml_tool.history import store as store_module
from mml_tool.history.config import from_inventory, parse_location
from mml_tool.history.store import HistoryStore
from mml_tool.lab.lab import PASSWORD_ENV, Lab
from mml_tool.lab.uap import NodeConfig

PASSWORD = "Pg-Lab-Pass-5x"


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.PostgresServer]:
    # In CI (.ci/run installs PostgreSQL) a missing or broken server fails: never a silent skip.
    give_up = pytest.fail if os.environ.get("CI") else pytest.skip
    bin_dir = postgres.find_bin_dir()
    if bin_dir is None:
        give_up("PostgreSQL is not installed (initdb not found); .ci/run installs it")
    assert bin_dir is not None
    try:
        server = postgres.start(bin_dir)
    except (subprocess.CalledProcessError, OSError, KeyError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        give_up(f"PostgreSQL could not be started here: {exc} {detail[-300:]!r}")
        raise
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("pg-lab")
    with Lab([NodeConfig("uap-1"), NodeConfig("uap-2")], workdir=workdir, password=PASSWORD,
             with_gateway=False) as running:  # fmt: skip
        yield running


@pytest.fixture(autouse=True)
def env(
    pg: postgres.PostgresServer, lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv("MML_TEST_PG_PASSWORD", pg.password)
    monkeypatch.setenv("MML_TOOL_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("MML_TOOL_LOCKS", str(tmp_path / "locks"))
    lab.node("uap-1").store.set_value("P978", 1)
    lab.node("uap-2").store.set_value("P978", 0)


def test_check_apply_check_on_postgres(
    pg: postgres.PostgresServer, lab: Lab, tmp_path: Path
) -> None:
    inventory = write_lab_inventory(lab, timeout=5, connect_timeout=5)
    first = invoke("check", "-i", inventory, "--history", pg.url)
    assert first.exit_code == 100, first.output
    plan = tmp_path / "plan.json"
    assert invoke("plan", "-i", inventory, "-o", plan).exit_code == 0
    assert invoke("apply", plan, "-i", inventory, "--yes", "--history", pg.url).exit_code == 0
    report = tmp_path / "r.json"
    second = invoke("check", "-i", inventory, "--history", pg.url, "--report", f"json:{report}")
    assert second.exit_code == 0, second.output
    since = json.loads(report.read_text())["since_last"]
    assert [(t["host"], t["was"], t["now"]) for t in since["fixed"]] == [("uap-1", "fail", "pass")]

    runs = invoke("history", "runs", "--history", pg.url, "--json")
    assert runs.exit_code == 0, runs.output
    assert [r["command"] for r in json.loads(runs.output)][:3] == ["check", "apply", "check"]
    timeline = invoke("history", "--history", pg.url, "--host", "uap-1", "--json")
    (line,) = json.loads(timeline.output)
    assert [c["now"] for c in line["changes"]][-2:] == ["fail", "pass"]
    for output in (first.output, second.output, runs.output, timeline.output):
        assert pg.password not in output

    with HistoryStore.open(parse_location(pg.url, where="t")) as store:
        assert store.version == schema.SCHEMA_VERSION
        assert store.engine.dialect.name == "postgresql"


def test_password_file_from_the_inventory(pg: postgres.PostgresServer, tmp_path: Path) -> None:
    (tmp_path / "pg.pw").write_text(pg.password + "\n")
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(
        "history:\n"
        f"  url: postgresql://{postgres.USER}@127.0.0.1:{pg.port}/postgres\n"
        "  password_file: pg.pw\n"
    )
    location = from_inventory(inventory, env={})
    assert location is not None
    with HistoryStore.open(location) as store:
        assert store.version == schema.SCHEMA_VERSION


def test_wrong_password_is_a_warning_never_printed(
    pg: postgres.PostgresServer, lab: Lab, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    wrong = "Wrong-Pg-Pass-2718"
    monkeypatch.setenv("MML_TEST_PG_PASSWORD", wrong)
    inventory = write_lab_inventory(lab, timeout=5, connect_timeout=5)
    result = invoke("check", "-i", inventory, "--history", pg.url)
    assert result.exit_code == 100, result.output  # the check's own result stands
    assert "history not recorded" in caplog.text
    assert "password authentication failed" in caplog.text
    assert wrong not in caplog.text and wrong not in result.output


def test_a_write_held_up_by_a_lock_ends_within_the_timeout_as_a_warning(
    pg: postgres.PostgresServer, lab: Lab, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:  # fmt: skip
    # The bound is 15 s; 1 s here so the test ends in seconds (the same code path).
    monkeypatch.setattr(store_module, "STATEMENT_TIMEOUT_MS", 1000)
    inventory = write_lab_inventory(lab, timeout=5, connect_timeout=5)
    location = parse_location(pg.url, where="t")
    with HistoryStore.open(location) as store, store.engine.connect() as other:
        before = len(store.runs(limit=100000))
        # Another connection (a report, a vacuum, a stuck job) holds the runs table.
        other.execute(text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        report = tmp_path / "r.json"
        result = invoke("check", "-i", inventory, "--history", pg.url, "--report", f"json:{report}")
        took = time.monotonic() - started
        other.rollback()
        assert result.exit_code == 100, result.output  # the check's own result stands
        assert json.loads(report.read_text())["since_last"] is None
        assert "history not recorded" in caplog.text and "cannot write" in caplog.text
        assert "due to statement timeout" in caplog.text or "due to lock timeout" in caplog.text
        assert pg.password not in caplog.text
        assert 1 <= took < 1 + 10, took  # held by the lock, then let go; the check is quick
        print(f"check with a locked history: {took:.2f} s")
        assert len(store.runs(limit=100000)) == before  # nothing half-written
    # Once the lock is gone, the same command records again.
    assert invoke("check", "-i", inventory, "--history", pg.url).exit_code == 100
    with HistoryStore.open(location) as store:
        assert len(store.runs(limit=100000)) == before + 1


def test_a_version_1_store_is_upgraded_in_place(pg: postgres.PostgresServer) -> None:
    old_path = "/srv/old-checkout/inventory.yaml"
    dump = Path(__file__).parent / "samples" / "history" / "v1-postgresql.sql"
    admin = parse_location(pg.url, where="t")
    with HistoryStore.open(admin) as store:
        engine = store.engine.execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS made_by_v1"))
            conn.execute(text("CREATE DATABASE made_by_v1"))
    location = parse_location(pg.url.rsplit("/", 1)[0] + "/made_by_v1", where="t")
    # The store as mml-tool's version-1 code left it (its tables, rows and version).
    raw = create_engine(location.connect_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with raw.connect() as conn:  # the dump sets its own search_path: its own connection
            conn.exec_driver_sql(dump.read_text())
        with raw.connect() as conn:
            assert conn.exec_driver_sql("SELECT value FROM mml_tool_meta").scalar() == "1"
    finally:
        raw.dispose()
    with HistoryStore.open(location) as store:
        assert store.version == schema.SCHEMA_VERSION == 2
        runs = store.runs()
        assert [(r.id, r.command, r.scope, r.inventory) for r in runs] == [
            (3, "check", old_path, old_path),
            (2, "apply", old_path, old_path),
            (1, "check", old_path, old_path),
        ]
        (line,) = store.timelines(host="uap-1")
        assert [c.now for c in line.changes] == ["fail", "pass"]
        with store.engine.connect() as conn:
            indexes = {r[0] for r in conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'runs'")}  # fmt: skip
        assert "ix_runs_key" in indexes
    with HistoryStore.open(location) as store:  # opened again: nothing left to upgrade
        assert store.version == 2 and len(store.runs()) == 3
