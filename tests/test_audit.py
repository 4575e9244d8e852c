from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from mml_tool.audit import (
    AuditRecord,
    AuditTrail,
    default_audit_path,
    operator_name,
    read,
    utc_now,
)
from mml_tool.errors import AuditError

RECORD = AuditRecord(
    time="2024-05-01T10:00:00.000Z",
    operator="alice",
    change_id="CHG-42",
    host="uap-1",
    command="MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;",
    retcode=0,
    message="Operation succeeded",
    elapsed=0.25,
    outcome="ok",
    action="apply",
)


def test_append_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deep" / "audit.jsonl"  # parents are created
    trail = AuditTrail(path)
    second = replace(RECORD, action="rollback", retcode=None, outcome="unknown", change_id=None)
    trail.append(RECORD)
    trail.append(second)
    assert read(path) == [RECORD, second]
    assert trail.read() == [RECORD, second]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["host"] == "uap-1"


def test_append_keeps_existing_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditTrail(path).append(RECORD)
    AuditTrail(path).append(RECORD)  # a new trail object appends, never truncates
    assert len(read(path)) == 2


def test_read_missing_file_is_empty(tmp_path: Path) -> None:
    assert read(tmp_path / "none.jsonl") == []


def test_read_damaged_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditTrail(path).append(RECORD)
    with path.open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(AuditError, match=r"audit.jsonl:2"):
        read(path)


def test_concurrent_appends_give_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(path)
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for i in range(25):
            trail.append(replace(RECORD, host=f"uap-{n}", message="x" * (i * 100)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = read(path)  # every line parses
    assert len(records) == 200
    assert {r.host for r in records} == {f"uap-{n}" for n in range(8)}


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_path_raises_audit_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(AuditError, match=r"locked/audit.jsonl.*MML_TOOL_AUDIT"):
            AuditTrail(locked / "audit.jsonl").append(RECORD)
    finally:
        locked.chmod(0o700)


def test_path_that_is_a_directory_raises_audit_error(tmp_path: Path) -> None:
    # Works as root too: a directory can never be opened for writing.
    with pytest.raises(AuditError, match=str(tmp_path)):
        AuditTrail(tmp_path).append(RECORD)


def test_secret_in_command_is_masked_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    login = replace(RECORD, command='LGI:OP="a",PWD="Xyz-secret";', action="exec")
    AuditTrail(path).append(login)
    text = path.read_text()
    assert "Xyz-secret" not in text
    assert "*****" in read(path)[0].command


def test_invalid_outcome_or_action_rejected() -> None:
    assert replace(RECORD, outcome="sending").outcome == "sending"  # change.py's write-ahead line
    with pytest.raises(ValueError, match="outcome"):
        replace(RECORD, outcome="maybe")
    with pytest.raises(ValueError, match="action"):
        replace(RECORD, action="delete")


def test_default_path_and_operator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The library reads no MML_TOOL_* variable: the CLI reads them as --audit/--operator.
    monkeypatch.setenv("MML_TOOL_AUDIT", str(tmp_path / "a.jsonl"))
    monkeypatch.setenv("MML_TOOL_OPERATOR", "bob")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert default_audit_path() == tmp_path / ".local/state/mml-tool/audit.jsonl"
    assert operator_name() != "bob" and operator_name()  # the login name


def test_utc_now_is_iso_utc() -> None:
    assert utc_now().endswith("Z") and "T" in utc_now()
