"""The collection honours plan signing: real ``ansible-playbook`` against the lab, with an
inventory that sets ``plan_signing_key``.

One playbook on uap-1: ``sfp_info`` and ``sfp`` in check mode still read; ``sfp`` is refused
(nothing sent) unless the task sets ``allow_unsigned`` (audited as such); the ``apply`` module
applies a signed plan as ``mml-tool apply`` does (check mode first: nothing sent) and refuses a
forged or an unsigned one with nothing sent; the CLI rolls back from the record it wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RunningLab, StartLab, lab_env
from test_ansible import BIN, TIMEOUT, ansible_env

import mml_tool as mt
from mml_tool.audit import read as read_audit
from mml_tool.change import load_record, plan_sha256
from mml_tool.lab.uap import NodeConfig
from mml_tool.secret import Secret

pytest.importorskip("ansible")
pytestmark = pytest.mark.timeout(300)  # ansible-playbook starts slowly on a loaded machine

KEY = "ansible-key-" + "c4" * 20
MOD_0 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"

PLAYBOOK = """\
- name: A fleet whose inventory signs plans
  hosts: uap-1
  gather_facts: false
  module_defaults:
    mml_tool.uap9600.sfp: {change_id: CHG5, audit: "{{ out }}/audit.jsonl"}
    mml_tool.uap9600.apply: {audit: "{{ out }}/audit.jsonl"}
  tasks:
    - name: Read (unaffected)
      mml_tool.uap9600.sfp_info: {parameter: P978}
      register: info
    - name: sfp in check mode (unaffected)
      mml_tool.uap9600.sfp: {parameter: P978, bit: 0, value: 0}
      check_mode: true
      register: sfp_checked
    - name: sfp without a plan
      mml_tool.uap9600.sfp: {parameter: P978, bit: 0, value: 0}
      register: sfp_refused
      ignore_errors: true
    - name: A forged plan
      mml_tool.uap9600.apply: {plan: forged.json}
      run_once: true
      register: forged
      ignore_errors: true
    - name: An unsigned plan
      mml_tool.uap9600.apply: {plan: unsigned.json}
      run_once: true
      register: unsigned
      ignore_errors: true
    - name: The signed plan, in check mode
      mml_tool.uap9600.apply: {plan: signed.json}
      check_mode: true
      run_once: true
      register: apply_checked
    - name: The signed plan
      mml_tool.uap9600.apply: {plan: signed.json, record: "{{ out }}/signed.record.json"}
      run_once: true
      register: applied
    - name: sfp opting out of signed plans
      mml_tool.uap9600.sfp: {parameter: P978, bit: 3, value: 1, allow_unsigned: true}
      register: sfp_unsigned
    - name: Keep what was registered
      ansible.builtin.copy:
        dest: "{{ out }}/registered.json"
        content: "{{ {'info': info, 'sfp_checked': sfp_checked, 'sfp_refused': sfp_refused,
          'forged': forged, 'unsigned': unsigned, 'apply_checked': apply_checked,
          'applied': applied, 'sfp_unsigned': sfp_unsigned} | to_json }}"

- name: apply without run_once in a play of two hosts
  hosts: uap-1,uap-2
  gather_facts: false
  tasks:
    - name: The signed plan, once per host (a mistake)
      mml_tool.uap9600.apply: {plan: signed.json, audit: "{{ out }}/audit.jsonl"}
      register: per_host
      ignore_errors: true
    - name: Keep both hosts' results
      ansible.builtin.copy:
        dest: "{{ out }}/per_host.json"
        content: "{{ ansible_play_hosts | map('extract', hostvars, 'per_host') | list | to_json }}"
      run_once: true
"""


def reseal(path: Path, target: Path, edit: Any) -> None:
    """``path`` edited into ``target`` with its sha256 recomputed (as anyone who can write the
    file can); its signature kept as it was."""
    body = json.loads(path.read_text(encoding="utf-8"))
    body.pop("sha256")
    signature = body.pop("hmac_sha256")
    edit(body)
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    body["sha256"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    body["hmac_sha256"] = signature
    target.write_text(json.dumps(body, indent=2), encoding="utf-8")


def test_the_collection_applies_only_signed_plans(start_lab: StartLab, tmp_path: Path) -> None:
    lab: RunningLab = start_lab([NodeConfig("uap-1", meid=1), NodeConfig("uap-2", meid=2)])
    store = lab.lab.node("uap-1").store
    store.set_value("P978", 1)
    out = tmp_path
    env = ansible_env(lab, out / "home")
    env["MML_PLAN_KEY"] = KEY

    # The inventory the plugin reads signs plans with ${MML_PLAN_KEY}.
    doc = yaml.safe_load(lab.inventory_path.read_text(encoding="utf-8"))
    doc["plan_signing_key"] = "${MML_PLAN_KEY}"
    keyed = lab.inventory_path.with_name("keyed.yaml")
    keyed.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    config = lab.inventory_path.with_name("keyed.mml.yml")
    config.write_text(f"plugin: mml_tool.uap9600.inventory\nsource: {keyed.name}\n")

    # The plans: made for uap-1 by the library, signed, unsigned, and forged after signing.
    inventory = mt.load_inventory(keyed, env={**lab_env(lab.inventory_path), "MML_PLAN_KEY": KEY})
    plan = mt.plan(mt.check(inventory, limit="uap-1"), change_id="CHG5", operator="alice")
    assert [s.commands for s in plan.steps] == [(MOD_0,)]
    plan.save(out / "signed.json", signing_key=Secret(KEY))
    plan.save(out / "unsigned.json")

    def to_bit_1(body: dict[str, Any]) -> None:
        body["change_id"] = "CHG-FORGED"

    reseal(out / "signed.json", out / "forged.json", to_bit_1)

    (out / "site.yml").write_text(PLAYBOOK, encoding="utf-8")
    extra = {"out": str(out)}
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(config), "site.yml", "-e", json.dumps(extra)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    registered_file = out / "registered.json"
    if not registered_file.exists():
        pytest.fail(f"the playbook did not finish (exit {proc.returncode}):\n{output[-6000:]}")
    assert proc.returncode == 0, output[-4000:]
    got = json.loads(registered_file.read_text(encoding="utf-8"))
    assert KEY not in output and KEY not in registered_file.read_text(encoding="utf-8")

    # Read-only use is unaffected.
    assert got["info"]["bits"]["0"] == 1
    assert got["sfp_checked"]["status"] == "check-mode" and got["sfp_checked"]["changed"]

    # sfp without a signed plan: refused, with what to do instead.
    refused = got["sfp_refused"]
    assert refused["failed"] is True and refused["error_type"] == "PlanError", refused
    for words in ("plan_signing_key", "mml_tool.uap9600.apply", "allow_unsigned", "othing"):
        assert words in refused["msg"], refused["msg"]

    # A forged or unsigned plan fails the task, nothing sent.
    assert got["forged"]["failed"] is True and "signature does not match" in got["forged"]["msg"]
    assert got["unsigned"]["failed"] is True and "not signed" in got["unsigned"]["msg"]

    # Check mode: what would be sent, nothing sent.
    checked = got["apply_checked"]
    assert checked["changed"] is True and checked["record"] is None, checked
    assert [(s["host"], s["commands"]) for s in checked["steps"]] == [("uap-1", [MOD_0])]

    # The signed plan is applied as `mml-tool apply` applies it: a record, the step's outcome.
    applied = got["applied"]
    assert applied["changed"] is True and applied["record"] == str(out / "signed.record.json")
    assert [(s["host"], s["status"], s["before"], s["after"]) for s in applied["steps"]] == [
        ("uap-1", "changed", 1, 0)
    ]
    assert [c["command"] for c in applied["steps"][0]["commands"]] == [MOD_0]
    record = load_record(Path(applied["record"]), signing_key=Secret(KEY))
    assert record.change_id == "CHG5" and record.plan_sha256 == plan_sha256(plan)

    # apply in a play of two hosts without run_once: refused on each, before anything is read.
    per_host = json.loads((out / "per_host.json").read_text(encoding="utf-8"))
    assert len(per_host) == 2 and all(r["failed"] for r in per_host), per_host
    assert all("run_once: true" in r["msg"] for r in per_host), per_host

    # sfp opted out: changed, and audited as a change without a signed plan.
    assert got["sfp_unsigned"]["status"] == "changed" and store.get_bit("P978", 3) == 1
    lines = read_audit(out / "audit.jsonl")
    assert [(r.command, r.outcome) for r in lines][:2] == [(MOD_0, "sending"), (MOD_0, "ok")]
    assert not any("allow_unsigned" in r.message for r in lines[:2])
    assert [("allow_unsigned" in r.message, r.outcome) for r in lines[2:]] == [
        (True, "sending"),
        (True, "ok"),
    ]
    assert store.get_bit("P978", 0) == 0
    assert got["sfp_unsigned"]["unsigned"] is True
    load_record(Path(got["sfp_unsigned"]["record"]), signing_key=Secret(KEY))
    store.set_bit("P978", 3, 0)  # else rollback of bit 0 refuses the parameter as drifted

    # The CLI rolls back from the record the apply module wrote.
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("MML_TOOL_")}
    cli_env.update(lab_env(lab.inventory_path), MML_PLAN_KEY=KEY)
    done = subprocess.run(
        [
            *(str(BIN / "mml-tool"), "rollback", applied["record"], "-i", str(keyed), "--yes"),
            *("--audit", str(out / "audit.jsonl"), "--lock-dir", str(out / "home" / "locks")),
        ],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert store.get_bit("P978", 0) == 1
