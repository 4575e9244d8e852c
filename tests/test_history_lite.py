"""What a run costs to record (issue 14). The SQLite store written without SQLAlchemy
(history/lite.py) against the SQLAlchemy store: the same rows, the same since-last answers,
the same pruning; it writes only a store at the schema version it knows, and a locked store is
an error that writes nothing. The inventory is read once more for its name: and history:."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mml_tool.errors import HistoryError
from mml_tool.history import config, lite, schema
from mml_tool.history.config import HistoryLocation, parse_location
from mml_tool.history.lite import LiteStore
from mml_tool.history.rows import (
    ChangeRow,
    FindingRow,
    RunRecord,
    VerificationRow,
    data_rows,
    run_values,
)
from mml_tool.history.store import HistoryStore

SAMPLES = Path(__file__).parent / "samples" / "history"
OLD_PATH = "/srv/old-checkout/inventory.yaml"  # the inventory of the runs in the v1 sample
CONTROL = "UAP-SFP-P978-B0"
T0 = datetime(2026, 11, 1, 8, 0, 0, 123456, tzinfo=timezone.utc)


def runs() -> list[RunRecord]:
    """Runs with every kind of row and value: long text cut to its column, None, booleans,
    two inventories, a run of the v1 sample's path key, a run of another command."""
    long = "x" * 400
    return [
        RunRecord("check", T0, T0 + timedelta(seconds=3), "/inv/a.yaml", "uap-sfp", "a" * 64,
                  100, operator="op", tool_version="0.1.0", scope="east",
                  findings=[FindingRow("uap-1", CONTROL, "fail", "1"),
                            FindingRow("uap-2", CONTROL, "pass", "0"),
                            FindingRow("uap-3", CONTROL, "error", None, "timed out " + long)]),
        RunRecord("apply", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), "/inv/a.yaml",
                  "uap-sfp", "a" * 64, 0, change_id="CHG-1", operator="op", scope="east",
                  changes=[ChangeRow("uap-1", CONTROL, "apply", "changed", 1, 0),
                           ChangeRow("uap-3", CONTROL, "apply", "failed", None, None, long)]),
        RunRecord("verify", T0 + timedelta(minutes=3), T0 + timedelta(minutes=4), "/inv/a.yaml",
                  "", "", 101, scope="east",
                  verifications=[VerificationRow("gw-1", 1, True, "video both ways"),
                                 VerificationRow("gw-1", None, False, "signed out: " + long)]),
        RunRecord("check", T0 + timedelta(minutes=5), T0 + timedelta(minutes=6), "/inv/b.yaml",
                  "uap-sfp", "a" * 64, 0, scope="west",
                  findings=[FindingRow("uap-1", CONTROL, "pass", "0")]),
        RunRecord("check", T0 + timedelta(minutes=7), T0 + timedelta(minutes=8), "/inv/a.yaml",
                  "uap-sfp", "a" * 64, 100, scope="east",
                  findings=[FindingRow("uap-1", CONTROL, "pass", "0"),
                            FindingRow("uap-2", CONTROL, "fail", "1"),
                            FindingRow("uap-3", CONTROL, "waived", "1"),
                            FindingRow("uap-4", CONTROL, "error", None, "refused")]),
        RunRecord("check", T0 + timedelta(days=1), T0 + timedelta(days=1), OLD_PATH, "uap-sfp",
                  "a" * 64, 100, scope=OLD_PATH,
                  findings=[FindingRow("uap-1", CONTROL, "fail", "1" + long)]),
    ]  # fmt: skip


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("runs", "findings", "changes", "verifications")
        }


def two_stores(tmp_path: Path, sample: Path | None = None) -> tuple[Path, Path]:
    """Two equal stores at the current version, made (or upgraded) by HistoryStore."""
    paths = (tmp_path / "alchemy.sqlite", tmp_path / "lite.sqlite")
    for path in paths:
        if sample is not None:
            path.write_bytes(sample.read_bytes())
        HistoryStore.open(parse_location(str(path), where="t")).close()
    return paths


@pytest.mark.parametrize("sample", [None, SAMPLES / "v1.sqlite"], ids=["new", "upgraded-v1"])
def test_both_stores_write_the_same_rows_and_answer_the_same(
    tmp_path: Path, sample: Path | None
) -> None:
    alchemy_path, lite_path = two_stores(tmp_path, sample)
    alchemy = HistoryStore.open(parse_location(str(alchemy_path), where="t"))
    fast = LiteStore.open(parse_location(str(lite_path), where="t"))
    assert fast is not None
    answers = {}
    with alchemy, fast:
        for run in runs():
            ids = alchemy.record(run), fast.record(run)
            assert ids[0] == ids[1]
            answers[ids[1]] = fast.since_last(ids[1])
            assert alchemy.since_last(ids[0]) == answers[ids[1]]
    assert dump(alchemy_path) == dump(lite_path)
    assert any(a.previous_run and a.changed for a in answers.values())  # something compared
    with HistoryStore.open(parse_location(str(lite_path), where="t")) as reread:
        assert {i: reread.since_last(i) for i in answers} == answers  # as SQLAlchemy reads it
    alchemy = HistoryStore.open(parse_location(str(alchemy_path), where="t"))
    fast = LiteStore.open(parse_location(str(lite_path), where="t"))
    assert fast is not None
    with alchemy, fast:
        keep, now = timedelta(days=2), T0 + timedelta(days=2, minutes=4)  # the first 3 go
        pruned = alchemy.prune(keep, now)
        assert pruned >= 3 and fast.prune(keep, now) == pruned
    assert dump(alchemy_path) == dump(lite_path)


def test_the_times_read_back_are_the_times_written(tmp_path: Path) -> None:
    _, lite_path = two_stores(tmp_path)
    fast = LiteStore.open(parse_location(str(lite_path), where="t"))
    assert fast is not None
    with fast:
        for run in runs()[:2]:
            fast.record(run)
    with HistoryStore.open(parse_location(str(lite_path), where="t")) as store:
        assert [(r.started, r.finished) for r in reversed(store.runs())] == [
            (r.started, r.finished) for r in runs()[:2]
        ]


def test_the_lite_store_writes_the_schemas_columns_at_its_version() -> None:
    """Raising SCHEMA_VERSION without teaching lite.py the new columns makes lite decline
    every store (it writes only WRITES_VERSION) and fails here as a reminder."""
    assert lite.WRITES_VERSION == schema.SCHEMA_VERSION
    run = runs()[0]
    assert set(run_values(run)) == {c.name for c in schema.runs.columns} - {"id"}
    for name, rows in data_rows(runs()[0], 1) + data_rows(runs()[1], 1) + data_rows(runs()[2], 1):
        for row in rows:
            assert set(row) == {c.name for c in schema.metadata.tables[name].columns} - {"id"}


def test_lite_opens_only_an_sqlite_file_at_its_version(tmp_path: Path) -> None:
    assert LiteStore.open(parse_location(str(tmp_path / "none.sqlite"), where="t")) is None
    assert not (tmp_path / "none.sqlite").exists()  # not created: HistoryStore makes stores
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert LiteStore.open(parse_location(str(empty), where="t")) is None
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    assert LiteStore.open(parse_location(str(junk), where="t")) is None
    old = tmp_path / "v1.sqlite"
    old.write_bytes((SAMPLES / "v1.sqlite").read_bytes())
    assert LiteStore.open(parse_location(str(old), where="t")) is None  # HistoryStore upgrades
    newer = tmp_path / "newer.sqlite"
    location = parse_location(str(newer), where="t")
    with HistoryStore.open(location) as store, store.engine.begin() as conn:
        schema.set_version(conn, schema.SCHEMA_VERSION + 1)
    assert LiteStore.open(location) is None  # HistoryStore refuses it, with its message
    url = parse_location(f"sqlite:///{tmp_path / 'h.sqlite'}", where="t")
    assert url.file is None and LiteStore.open(url) is None


def test_a_file_location_is_the_url_sqlalchemy_would_make(tmp_path: Path) -> None:
    odd = tmp_path / "a b@c?d#e%f.sqlite"
    location = parse_location(str(odd), where="t")
    assert location == HistoryLocation(file=odd)
    assert location.url.database == str(odd) and location.url.drivername == "sqlite"
    assert location.shown == location.url.render_as_string(hide_password=True)
    assert "%40" in location.shown  # SQLAlchemy's quoting, as before


def test_a_locked_store_is_an_error_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = two_stores(tmp_path)
    monkeypatch.setattr(lite, "CONNECT_TIMEOUT", 0.05)
    fast = LiteStore.open(parse_location(str(path), where="t"))
    assert fast is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with fast, pytest.raises(HistoryError, match=r"lite\.sqlite: cannot write: database"):
            fast.record(runs()[0])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert dump(path)["runs"] == []


def test_the_inventory_is_read_once_for_its_name_and_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the command loaded the inventory, the run's key (name:) and store (history:) take
    one more parse of it, not one each (each is ~40 ms for 1000 hosts); a changed file is read
    again."""
    parses: list[str] = []

    def counting(text: bytes, source: str, error: type[Exception]) -> object:
        parses.append(source)
        return real(text, source, error)

    real = config.load_yaml
    monkeypatch.setattr(config, "load_yaml", counting)
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("name: east\nhistory: h.sqlite\nhosts: {}\n")
    for _ in range(2):
        assert config.inventory_name(inventory) == "east"
        assert config.from_inventory(inventory) == HistoryLocation(file=tmp_path / "h.sqlite")
    assert len(parses) == 1
    inventory.write_text("name: west\nhistory: {url: other.sqlite}\nhosts: {}\n")
    assert config.inventory_name(inventory) == "west"
    assert config.from_inventory(inventory) == HistoryLocation(file=tmp_path / "other.sqlite")
    assert len(parses) == 2


def test_two_writers_at_once_both_record_every_run(tmp_path: Path) -> None:
    """Two checks ending together (cron jobs on one store): each transaction waits for the
    other's, none fails, no row is lost or mixed."""
    _, path = two_stores(tmp_path)
    errors: list[BaseException] = []

    def write(operator: str) -> None:
        try:
            fast = LiteStore.open(parse_location(str(path), where="t"))
            assert fast is not None
            with fast:
                for run in runs():
                    run.operator = operator
                    fast.record(run)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with sqlite3.connect(path) as conn:
        per_run = dict(conn.execute("SELECT id, operator FROM runs").fetchall())
        counted = conn.execute(
            "SELECT r.operator, count(*) FROM findings f JOIN runs r ON r.id = f.run_id"
            " GROUP BY r.operator"
        ).fetchall()
    assert sorted(per_run.values()) == ["a"] * len(runs()) + ["b"] * len(runs())
    findings = sum(len(r.findings) for r in runs())
    assert sorted(counted) == [("a", findings), ("b", findings)]
