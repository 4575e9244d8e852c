"""`run`, `verify` and `rollback` record what they did in the history: the fleet's state
after the change, each change, each verification; nothing secret is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import lab_in_env
from sqlalchemy import select

from mml_tool.cli import cli
from mml_tool.history import schema
from mml_tool.history.config import parse_location
from mml_tool.history.store import HistoryStore
from mml_tool.lab.lab import Lab, make_nodes

SECRET = "S3cr3t-Hist-Run-8w"


@pytest.fixture
def run_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lab, Path]]:
    with lab_in_env(make_nodes(2), tmp_path, monkeypatch, SECRET) as running:
        yield running


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def test_run_verify_rollback_are_recorded(run_lab: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, inventory = run_lab
    store_path = tmp_path / "h.sqlite"
    code, output = invoke("run", "-i", inventory, "--change-id", "CHG-9", "--yes",
                          "--evidence", tmp_path / "ev", "--history", store_path)  # fmt: skip
    assert code == 0, output
    code, output = invoke("verify", "-i", inventory, "--host", "uap-1", "--history", store_path)
    assert code == 0, output
    record = tmp_path / "ev" / "CHG-9" / "apply-record.json"
    code, output = invoke("rollback", record, "-i", inventory, "--yes",
                          "--history", store_path)  # fmt: skip
    assert code == 0, output

    with HistoryStore.open(parse_location(str(store_path), where="t")) as store:
        runs = {r.command: r for r in store.runs()}
        assert set(runs) == {"run", "verify", "rollback"}
        assert (runs["run"].exit_code, runs["run"].change_id, runs["run"].passed) == (0, "CHG-9", 2)
        with store.engine.connect() as conn:
            changes = conn.execute(select(schema.changes)).all()
            checks = conn.execute(select(schema.verifications)).all()
            dumped = " ".join(str(tuple(row)) for t in schema.metadata.sorted_tables
                              for row in conn.execute(select(t)))  # fmt: skip
    by_run = {(row.run_id, row.host, row.action, row.status) for row in changes}
    assert by_run == {
        (runs["run"].id, "uap-1", "apply", "changed"),
        (runs["run"].id, "uap-2", "apply", "changed"),
        (runs["rollback"].id, "uap-1", "rollback", "changed"),
        (runs["rollback"].id, "uap-2", "rollback", "changed"),
    }
    assert {(r.run_id, r.direction, r.ok) for r in checks} >= {
        (runs["verify"].id, 1, True),
        (runs["verify"].id, 2, True),
        (runs["run"].id, 1, True),
    }
    assert SECRET not in dumped and lab.agent_password.reveal() not in dumped
