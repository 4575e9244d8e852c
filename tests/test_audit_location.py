"""Where the audit trail goes: ``--audit`` (or $MML_TOOL_AUDIT), else the inventory's
``audit:`` (shared by everyone who uses that inventory), else the user's state folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import RunningLab, StartLab, lab_env

import mml_tool as mt
from mml_tool.cli import cli
from mml_tool.inventory import load_inventory
from mml_tool.lab.uap import NodeConfig


@pytest.fixture(scope="module")
def running(start_lab: StartLab) -> RunningLab:
    return start_lab([NodeConfig("uap-a")])


def inventory_with_audit(running: RunningLab, folder: Path) -> Path:
    doc = yaml.safe_load(running.inventory_path.read_text(encoding="utf-8"))
    doc["defaults"]["known_hosts"] = str(running.inventory_path.parent / "lab_known_hosts")
    doc["audit"] = "trail/audit.jsonl"  # relative to the inventory file
    path = folder / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def invoke(running: RunningLab, folder: Path, *args: object, **env: str) -> Result:
    base = {**lab_env(running.inventory_path), "MML_TOOL_LOCKS": str(folder / "locks")}
    return CliRunner().invoke(cli, [str(a) for a in args], env={**base, **env})


def outcomes(trail: Path) -> list[str]:
    return [json.loads(line)["outcome"] for line in trail.read_text().splitlines()]


def test_apply_and_rollback_audit_where_the_inventory_says(
    running: RunningLab, tmp_path: Path
) -> None:
    running.lab.node("uap-a").store.set_value("P978", 1)
    inv = inventory_with_audit(running, tmp_path)
    plan = tmp_path / "plan.json"
    assert invoke(running, tmp_path, "plan", "-i", inv, "-o", plan).exit_code == 0
    applied = invoke(running, tmp_path, "apply", plan, "-i", inv, "--yes")
    assert applied.exit_code == 0, applied.output
    trail = tmp_path / "trail" / "audit.jsonl"
    assert "ok" in outcomes(trail)
    assert not (Path(os.environ["XDG_STATE_HOME"]) / "mml-tool" / "audit.jsonl").exists()
    lines = len(outcomes(trail))

    # --audit (here through its variable) wins over the inventory's audit:
    other = tmp_path / "other.jsonl"
    rolled = invoke(
        running, tmp_path, "rollback", tmp_path / "plan.record.json", "-i", inv, "--yes",
        MML_TOOL_AUDIT=str(other),
    )  # fmt: skip
    assert rolled.exit_code == 0, rolled.output
    assert "ok" in outcomes(other)
    assert len(outcomes(trail)) == lines
    assert running.lab.node("uap-a").store.get_bit("P978", 0) == 1


def test_the_api_audits_where_the_inventory_says(running: RunningLab, tmp_path: Path) -> None:
    running.lab.node("uap-a").store.set_value("P978", 1)
    inv = load_inventory(
        inventory_with_audit(running, tmp_path), env=lab_env(running.inventory_path)
    )
    assert inv.audit == tmp_path / "trail" / "audit.jsonl"
    plan = mt.plan(mt.check(inv, mt.load_policy()), change_id="CHG-AUDIT")
    record = mt.apply(plan, inv, lock_dir=tmp_path / "locks")
    assert record.changed_hosts == ["uap-a"]
    assert "ok" in outcomes(tmp_path / "trail" / "audit.jsonl")
