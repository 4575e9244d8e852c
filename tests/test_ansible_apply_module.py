"""The collection's ``apply`` and ``sfp`` modules run directly, as Ansible runs them (no
ansible-playbook start-up): re-applying a plan changes nothing, and reads need no signing key."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RunningLab, StartLab, lab_env
from test_ansible import ROOT

import mml_tool as mt
from mml_tool.audit import read as read_audit
from mml_tool.lab.uap import NodeConfig
from mml_tool.secret import Secret

pytest.importorskip("ansible")

KEY = "module-key-" + "7a" * 20


@pytest.fixture(scope="module")
def keyed_lab(start_lab: StartLab) -> tuple[RunningLab, Path]:
    lab = start_lab([NodeConfig("uap-1"), NodeConfig("uap-2", layout="value")])
    doc = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    doc["plan_signing_key"] = "${MML_PLAN_KEY}"
    keyed = lab.inventory_path.with_name("keyed.yaml")
    keyed.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return lab, keyed


def run_module(
    name: str, lab: RunningLab, tmp: Path, env: dict[str, str], **params: Any
) -> dict[str, Any]:
    args = tmp / f"{name}-args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}), encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MML_"))}
    base.update(lab_env(lab.inventory_path), PYTHONPATH=str(ROOT), HOME=str(tmp / "home"))
    base.update(XDG_STATE_HOME=str(tmp / "state"), MML_TOOL_LOCKS=str(tmp / "locks"), **env)
    module = f"ansible_collections.mml_tool.uap9600.plugins.modules.{name}"
    proc = subprocess.run(
        [sys.executable, "-m", module, str(args)],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def signed_plan(lab: RunningLab, keyed: Path, tmp_path: Path, change_id: str) -> Path:
    """uap-2 set non-compliant, and a plan signed with KEY that changes it back."""
    lab.lab.node("uap-2").store.set_value("P978", 1)
    inventory = mt.load_inventory(keyed, env={**lab_env(lab.inventory_path), "MML_PLAN_KEY": KEY})
    plan = mt.plan(mt.check(inventory, limit="uap-2"), change_id=change_id, operator="bob")
    path = tmp_path / "plan.json"
    plan.save(path, signing_key=Secret(KEY))
    return path


def test_a_plan_applied_again_changes_nothing(
    keyed_lab: tuple[RunningLab, Path], tmp_path: Path
) -> None:
    lab, keyed = keyed_lab
    store = lab.lab.node("uap-2").store
    store.set_value("P978", 1)
    env = {"MML_PLAN_KEY": KEY}
    inventory = mt.load_inventory(keyed, env={**lab_env(lab.inventory_path), **env})
    plan = mt.plan(mt.check(inventory, limit="uap-2"), change_id="CHG8", operator="bob")
    plan.save(tmp_path / "plan.json", signing_key=Secret(KEY))
    audit = tmp_path / "audit.jsonl"
    params = {"plan": str(tmp_path / "plan.json"), "inventory": str(keyed), "audit": str(audit)}
    try:
        first = run_module("apply", lab, tmp_path, env, **params)
        assert first["changed"] is True and not first.get("failed"), first
        assert first["record"] == str(tmp_path / "plan.record.json")  # as the CLI's default
        assert f"mml-tool rollback {first['record']} -i {keyed}" in first["rollback_command"]
        assert store.get_bit("P978", 0) == 0
        again = run_module("apply", lab, tmp_path, env, **params)
        assert again["changed"] is False and not again.get("failed"), again
        assert again["record"] == first["record"]
        assert [r.outcome for r in read_audit(audit)] == ["sending", "ok", "skipped"]
    finally:
        store.set_value("P978", 1)


def test_reads_need_no_key_and_a_change_names_the_missing_one(
    keyed_lab: tuple[RunningLab, Path], tmp_path: Path
) -> None:
    lab, keyed = keyed_lab
    store = lab.lab.node("uap-1").store
    store.set_value("P978", 1)
    audit = tmp_path / "audit.jsonl"
    params = {"inventory": str(keyed), "host": "uap-1", "parameter": "P978"}
    # MML_PLAN_KEY is not set: a read (sfp_info, sfp in check mode) does not need it.
    info = run_module("sfp_info", lab, tmp_path, {}, **params)
    params["audit"] = str(audit)
    assert info["bits"]["0"] == 1, info
    checked = run_module(
        "sfp", lab, tmp_path, {}, _ansible_check_mode=True, bit=0, value=0, **params
    )
    assert checked["status"] == "check-mode", checked
    # A change would need it: refused, naming the variable, nothing sent.
    refused = run_module("sfp", lab, tmp_path, {}, bit=0, value=0, allow_unsigned=True, **params)
    assert refused.get("failed") is True and "MML_PLAN_KEY" in refused["msg"], refused
    assert store.get_bit("P978", 0) == 1 and not audit.exists()


def test_the_rollback_command_names_the_lock_folder_the_task_used(
    keyed_lab: tuple[RunningLab, Path], tmp_path: Path
) -> None:
    """The inventory sets no lock_dir and the task names one: the rollback it suggests must take
    the same per-host locks (as the sfp module's does), not the machine's default folder."""
    lab, keyed = keyed_lab
    store = lab.lab.node("uap-2").store
    env = {"MML_PLAN_KEY": KEY}
    locks = tmp_path / "task-locks"
    params = {
        "plan": str(signed_plan(lab, keyed, tmp_path, "CHG9")),
        "inventory": str(keyed),
        "audit": str(tmp_path / "audit.jsonl"),
        "lock_dir": str(locks),
    }
    try:
        done = run_module("apply", lab, tmp_path, env, **params)
        assert done["changed"] is True and not done.get("failed"), done
        words = shlex.split(done["rollback_command"])
        assert words[words.index("--lock-dir") + 1] == str(locks), words
    finally:
        store.set_value("P978", 1)


def test_a_signed_plan_applied_with_a_keyless_inventory_warns_in_the_task(
    keyed_lab: tuple[RunningLab, Path], tmp_path: Path
) -> None:
    """As the CLI warns on stderr, the task warns (stderr of a module is not shown by Ansible):
    the plan's signature was not checked."""
    lab, keyed = keyed_lab
    store = lab.lab.node("uap-2").store
    plan = signed_plan(lab, keyed, tmp_path, "CHG10")
    try:
        done = run_module(
            "apply",
            lab,
            tmp_path,
            {},
            _ansible_check_mode=True,
            plan=str(plan),
            inventory=str(lab.inventory_path),
        )
        assert done["changed"] is True and not done.get("failed"), done
        # (newer ansible-core returns each warning as a structure holding the message)
        assert "signature was not checked" in json.dumps(done.get("warnings")), done
        assert KEY not in json.dumps(done)
    finally:
        store.set_value("P978", 1)
