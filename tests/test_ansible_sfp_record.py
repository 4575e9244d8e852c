"""The Ansible sfp module writes the apply record ``mml-tool apply`` writes, ahead of the
command, so that ``mml-tool rollback RECORD`` undoes a change made through Ansible.

One real ``ansible-playbook`` run against the lab: uap-1 changes the bit of the built-in
policy into a record path the task names, uap-2 a bit no policy knows into the default place
(``records/`` beside the audit trail); then the CLI rolls each back from its record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningLab, StartLab, lab_env
from test_ansible import BIN, ROOT, TIMEOUT, ansible_env, write_plugin_config

from mml_tool.change import load_record
from mml_tool.lab.uap import NodeConfig
from mml_tool.policy import load_policy

pytest.importorskip("ansible")
pytestmark = pytest.mark.timeout(300)  # ansible-playbook starts slowly on a loaded machine

PLAYBOOK = """\
- name: Change a bit on each host, recording it
  hosts: all
  gather_facts: false
  module_defaults:
    mml_tool.uap9600.sfp: {change_id: CHG7, audit: "{{ out }}/audit.jsonl"}
  tasks:
    - name: Change
      mml_tool.uap9600.sfp:
        parameter: P978
        bit: "{{ bits[inventory_hostname] }}"
        value: "{{ values[inventory_hostname] }}"
        record: "{{ records[inventory_hostname] | default(omit) }}"
      register: change
    - name: Change again (nothing to do, nothing recorded)
      mml_tool.uap9600.sfp:
        parameter: P978
        bit: "{{ bits[inventory_hostname] }}"
        value: "{{ values[inventory_hostname] }}"
      register: again
    - name: Keep what was registered
      ansible.builtin.copy:
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        content: "{{ {'change': change, 'again': again} | to_json }}"
"""


def run_playbook(lab: RunningLab, out: Path, extra: dict[str, Any]) -> dict[str, Any]:
    config = write_plugin_config(lab)
    (out / "site.yml").write_text(PLAYBOOK, encoding="utf-8")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(config), "site.yml", "-e", json.dumps(extra)],
        cwd=out,
        env=ansible_env(lab, out / "home"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    registered = {}
    for host in ("uap-1", "uap-2"):
        path = out / f"{host}.json"
        if not path.exists():
            pytest.fail(f"the playbook did not finish (exit {proc.returncode}):\n{output[-6000:]}")
        registered[host] = json.loads(path.read_text(encoding="utf-8"))
    assert proc.returncode == 0, output[-4000:]
    return registered


def rollback(lab: RunningLab, out: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = ansible_env(lab, out / "home")
    env.update(MML_TOOL_AUDIT=str(out / "audit.jsonl"), **lab_env(lab.inventory_path))
    return subprocess.run(
        [str(BIN / "mml-tool"), "rollback", *map(str, args), "--yes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_change_made_by_ansible_is_rolled_back_by_the_cli_from_its_record(
    start_lab: StartLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = start_lab([NodeConfig("uap-1"), NodeConfig("uap-2")])
    store1, store2 = lab.lab.node("uap-1").store, lab.lab.node("uap-2").store
    store1.set_value("P978", 1)
    store2.set_value("P978", 1)
    out = tmp_path
    chosen = out / "chosen" / "uap-1.json"

    # What the record holds at the moment the MOD reaches the element: written ahead.
    seen_at_mod: list[str | None] = []
    original = store1.set_bit

    def set_bit(pid: str, bit: int, val: int) -> int:
        seen_at_mod.append(chosen.read_text(encoding="utf-8") if chosen.exists() else None)
        return original(pid, bit, val)

    monkeypatch.setattr(store1, "set_bit", set_bit)
    registered = run_playbook(
        lab,
        out,
        {
            "out": str(out),
            "bits": {"uap-1": 0, "uap-2": 3},
            "values": {"uap-1": 0, "uap-2": 1},
            "records": {"uap-1": "chosen/uap-1.json"},  # relative to the playbook
        },
    )
    monkeypatch.undo()  # the CLI's rollback below reaches the element as it is
    first, second = registered["uap-1"]["change"], registered["uap-2"]["change"]
    assert first["status"] == second["status"] == "changed", (first, second)
    assert (store1.get_bit("P978", 0), store2.get_bit("P978", 3)) == (0, 1)

    # The path the task named; the default: records/ beside the audit trail.
    assert first["record"] == str(chosen)
    assert Path(second["record"]).parent == out / "records"
    assert registered["uap-1"]["again"]["record"] is None  # nothing sent, nothing recorded

    # Written before the command went out: the step in flight, its outcome not known yet.
    assert seen_at_mod and seen_at_mod[0] is not None, "no record when the MOD was sent"
    assert json.loads(seen_at_mod[0])["results"][0]["status"] == "unknown"

    for result, host in ((first, "uap-1"), (second, "uap-2")):
        record = load_record(Path(result["record"]))
        assert record.action == "apply" and record.change_id == "CHG7"
        before = 0 if host == "uap-2" else 1
        assert [(r.step.host, r.status, r.before) for r in record.results] == [
            (host, "changed", before)
        ]

    # uap-1's bit is the built-in policy's control: rollback needs nothing but the record.
    assert first["record_policy"] is None
    inventory = lab.inventory_path.resolve()
    assert first["rollback_command"].startswith(f"mml-tool rollback {chosen} -i {inventory} ")
    done = rollback(lab, out, chosen, "-i", lab.inventory_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert store1.get_bit("P978", 0) == 1

    # uap-2's bit is in no policy: the module wrote the one-control policy it changed it by.
    policy_file = Path(second["record_policy"])
    assert policy_file.parent == out / "records"
    assert [c.id for c in load_policy(policy_file).controls] == ["P978-B3-1"]
    assert f"-p {policy_file}" in second["rollback_command"]
    refused = rollback(lab, out, second["record"], "-i", lab.inventory_path)
    assert refused.returncode != 0 and "-p FILE" in refused.stdout + refused.stderr
    assert store2.get_bit("P978", 3) == 1
    done = rollback(lab, out, second["record"], "-i", lab.inventory_path, "-p", policy_file)
    assert done.returncode == 0, done.stdout + done.stderr
    assert store2.get_bit("P978", 3) == 0


def run_module(lab: RunningLab, tmp_path: Path, **params: Any) -> dict[str, Any]:
    """The sfp module run directly (no ansible-playbook start-up), as Ansible runs it."""
    args = tmp_path / "args.json"
    base = {"inventory": str(lab.inventory_path), "host": "uap-1", "parameter": "P978"}
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**base, **params}}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MML_TOOL_"))}
    env.update(lab_env(lab.inventory_path), PYTHONPATH=str(ROOT), HOME=str(tmp_path / "home"))
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), MML_TOOL_LOCKS=str(tmp_path / "locks"))
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.mml_tool.uap9600.plugins.modules.sfp", args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("refusal", ["record-exists", "record-folder-is-a-file", "policy"])
def test_a_record_or_policy_that_cannot_be_used_is_refused_before_anything_is_sent(
    start_lab: StartLab, tmp_path: Path, refusal: str
) -> None:
    lab = start_lab([NodeConfig("uap-1")])
    lab.lab.node("uap-1").store.set_value("P978", 1)
    audit = tmp_path / "audit.jsonl"
    params: dict[str, Any] = {"bit": 0, "value": 0, "audit": str(audit)}
    if refusal == "record-exists":
        earlier = tmp_path / "earlier.json"
        earlier.write_text("{}", encoding="utf-8")
        params["record"], named = str(earlier), str(earlier)
    elif refusal == "record-folder-is-a-file":
        (tmp_path / "file").write_text("", encoding="utf-8")
        params["record"], named = str(tmp_path / "file" / "r.json"), str(tmp_path / "file")
    else:
        policy = tmp_path / "policy.yaml"
        policy.write_text(
            (ROOT / "mml_tool" / "policies" / "p978_one_way_video.yaml")
            .read_text(encoding="utf-8")
            .replace("bit: 0, value: 0", "bit: 1, value: 0"),
            encoding="utf-8",
        )
        params["policy"], named = str(policy), str(policy)
    result = run_module(lab, tmp_path, **params)
    assert result.get("failed") is True, result
    assert named in result["msg"] and "othing was sent" in result["msg"], result["msg"]
    assert lab.lab.node("uap-1").store.get_bit("P978", 0) == 1
    assert not audit.exists() or not audit.read_text(encoding="utf-8")
