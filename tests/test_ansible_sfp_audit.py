"""The Ansible sfp module, run directly (no ansible-playbook start-up), with an inventory
whose ``audit:`` names the trail: the change is audited there, as apply and the API do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import StartLab, lab_env

from mml_tool.audit import read as read_audit
from mml_tool.lab.uap import NodeConfig

pytest.importorskip("ansible")
ROOT = Path(__file__).resolve().parent.parent


def test_sfp_module_audits_to_the_inventorys_trail(start_lab: StartLab, tmp_path: Path) -> None:
    lab = start_lab([NodeConfig("uap-1")])
    lab.lab.node("uap-1").store.set_value("P978", 1)
    trail = tmp_path / "inventory-audit.jsonl"
    doc = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    doc["audit"] = str(trail)
    inventory = lab.inventory_path.parent / "audited.yaml"
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    args = tmp_path / "args.json"
    params = {"inventory": str(inventory), "host": "uap-1", "parameter": "P978", "bit": 0}
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**params, "value": 0}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MML_TOOL_"))}
    env.update(lab_env(lab.inventory_path), PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"))
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), MML_TOOL_LOCKS=str(tmp_path / "locks"))
    module = "ansible_collections.mml_tool.uap9600.plugins.modules.sfp"
    proc = subprocess.run(
        [sys.executable, "-m", module, str(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(proc.stdout)
    assert result.get("changed") is True, proc.stdout + proc.stderr
    assert [r.host for r in read_audit(trail)], "the change is not in the inventory's trail"
    assert not list((tmp_path / "state").rglob("audit*.jsonl")), "audited elsewhere"
