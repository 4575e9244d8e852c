"""Nornir's ``mml_set_bit`` with plan signing and apply records, against the lab over SSH.

A Nornir inventory that sets ``plan_signing_key`` (or ``plan_signing_key_file``, in the data of
a host, its groups or the defaults) keeps ``mml_set_bit`` from changing anything without a
signed plan, unless the task opts out with ``allow_unsigned=True`` (audited as such). The task
writes the apply record ``mml-tool apply`` writes, and ``mml-tool rollback`` undoes from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RunningLab, StartLab, lab_env

from mml_tool.audit import read as read_audit
from mml_tool.change import load_record
from mml_tool.errors import RecordError
from mml_tool.lab.uap import NodeConfig
from mml_tool.secret import Secret

pytest.importorskip("nornir")

from test_nornir import init

from mml_tool.nornir import mml_set_bit

KEY = "nornir-key-" + "5e" * 20
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def nornir_lab(start_lab: StartLab) -> RunningLab:
    nodes = [NodeConfig("uap-1", meid=1), NodeConfig("uap-2", meid=2, layout="value")]
    return start_lab(nodes)


def keyed_inventory(lab: RunningLab, key_file: Path) -> Path:
    """The lab's mml-tool inventory with ``plan_signing_key_file``, beside the original."""
    doc = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    doc["plan_signing_key_file"] = str(key_file)
    path = lab.inventory_path.with_name("keyed-inventory.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def rollback(
    lab: RunningLab, tmp: Path, record: str, inventory: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MML_TOOL_")}
    env.update(lab_env(lab.inventory_path))
    return subprocess.run(
        [
            *(str(BIN / "mml-tool"), "rollback", record, "-i", str(inventory), "--yes"),
            *("--audit", str(tmp / "audit.jsonl"), "--lock-dir", str(tmp / "locks"), *extra),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_record_written_by_mml_set_bit_is_rolled_back_by_the_cli(
    nornir_lab: RunningLab, tmp_path: Path
) -> None:
    store = nornir_lab.lab.node("uap-1").store
    store.set_bit("P978", 0, 1)
    record = tmp_path / "chosen" / "uap-1.record.json"
    nr = init(nornir_lab, tmp_path).filter(name="uap-1")
    kwargs: dict[str, Any] = {"audit": tmp_path / "audit.jsonl", "lock_dir": tmp_path / "locks"}
    try:
        done = nr.run(task=mml_set_bit, parameter="P978", bit=0, value=0, record=record, **kwargs)[
            "uap-1"
        ][0]
        assert not done.failed and done.result["status"] == "changed", done.result
        assert done.result["record"] == str(record)
        assert [(r.step.host, r.status) for r in load_record(record).results] == [
            ("uap-1", "changed")
        ]
        assert store.get_bit("P978", 0) == 0

        # No record named: a fresh one in records/ beside the audit trail, as the sfp module.
        again = nr.run(task=mml_set_bit, parameter="P978", bit=3, value=1, **kwargs)["uap-1"][0]
        assert Path(again.result["record"]).parent == tmp_path / "records"
        assert again.result["record_policy"]  # a bit no policy sets: its policy file too
    finally:
        nr.close_connections()
    # Newest first: undoing bit 0 while bit 3 is still set would be refused as drift.
    inventory = nornir_lab.inventory_path
    policy = again.result["record_policy"]
    undone = rollback(nornir_lab, tmp_path, again.result["record"], inventory, "-p", policy)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert store.get_bit("P978", 3) == 0
    undone = rollback(nornir_lab, tmp_path, str(record), inventory)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert store.get_bit("P978", 0) == 1


def test_a_signing_key_in_the_nornir_inventory_stops_unsigned_changes(
    nornir_lab: RunningLab, tmp_path: Path
) -> None:
    store = nornir_lab.lab.node("uap-2").store
    store.set_bit("P978", 0, 1)
    key_file = tmp_path / "plan.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    audit = tmp_path / "audit.jsonl"
    kwargs: dict[str, Any] = {"parameter": "P978", "bit": 0, "value": 0, "audit": audit}
    kwargs.update(lock_dir=tmp_path / "locks", change_id="CHG9")
    nr = init(nornir_lab, tmp_path, data={"plan_signing_key_file": str(key_file)})
    nr = nr.filter(name="uap-2")
    try:
        refused = nr.run(task=mml_set_bit, **kwargs)["uap-2"][0]
        assert refused.failed
        message = str(refused.exception)
        assert "plan_signing_key" in message and "mml-tool apply" in message, message
        assert "allow_unsigned" in message and "othing was sent" in message, message
        assert store.get_bit("P978", 0) == 1 and not audit.exists()
        nr.data.reset_failed_hosts()

        # Read-only use is unaffected: a dry run reads and reports.
        dry = nr.run(task=mml_set_bit, dry_run=True, **kwargs)["uap-2"][0]
        assert not dry.failed and dry.result["status"] == "check-mode"
        assert store.get_bit("P978", 0) == 1 and not audit.exists()

        # Opted out, explicitly: changed, and every audit line says so.
        opted = nr.run(task=mml_set_bit, allow_unsigned=True, **kwargs)["uap-2"][0]
        assert not opted.failed and opted.result["status"] == "changed", opted.result
        assert store.get_bit("P978", 0) == 0
        lines = read_audit(audit)
        assert [r.outcome for r in lines] == ["sending", "ok"]
        assert all("allow_unsigned" in r.message for r in lines), lines
        assert KEY not in audit.read_text(encoding="utf-8") + str(opted.result)

        # A host already right is not refused: nothing is to be changed (a compliance
        # assertion over the fleet stays green), and nothing more is audited.
        again = nr.run(task=mml_set_bit, **kwargs)["uap-2"][0]
        assert not again.failed and again.result["status"] == "already-compliant", again.result
        assert len(read_audit(audit)) == 2
    finally:
        nr.close_connections()
    # Its record is signed with the key: rollback with an inventory of that key takes it.
    record = opted.result["record"]
    load_record(Path(record), signing_key=Secret(KEY))
    with pytest.raises(RecordError):
        load_record(Path(record), signing_key=Secret("another-" + "0" * 40))
    undone = rollback(nornir_lab, tmp_path, record, keyed_inventory(nornir_lab, key_file))
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert store.get_bit("P978", 0) == 1


def test_a_bad_signing_key_in_the_nornir_inventory_names_the_field(
    nornir_lab: RunningLab, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    nr = init(nornir_lab, tmp_path, data={"plan_signing_key": "short"}).filter(name="uap-1")
    try:
        result = nr.run(task=mml_set_bit, parameter="P978", bit=0, value=0, audit=audit)
        assert result.failed
        message = str(result["uap-1"][0].exception)
        assert "plan_signing_key" in message and "at least" in message, message
        assert "short" not in message and not audit.exists()
    finally:
        nr.close_connections()
