"""The Ansible collection mml_tool.uap9600, run by real ``ansible-playbook`` against the lab.

ansible-playbook takes seconds to start, so one playbook (run once per module, with -vvv)
walks the whole story on uap-1 and the tests read what it registered: check mode, a real
change, a second run, the rollback, a refused MOD, verification passing then failing, and
the connection given by fields (with a password, and a wrong one) on uap-2.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningLab, StartLab, lab_env

from mml_tool.audit import read as read_audit
from mml_tool.lab.uap import NodeConfig

pytest.importorskip("ansible")
pytestmark = pytest.mark.timeout(300)  # ansible-playbook starts slowly on a loaded machine

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TIMEOUT = 240  # the playbook below; under a loaded CI machine ansible's start-up is slow

PLAYBOOK = """\
- name: The story on uap-1
  hosts: uap-1
  gather_facts: false
  vars:
    audit_file: "{{ out }}/audit.jsonl"
  module_defaults:
    mml_tool.uap9600.sfp: {change_id: CHG1, audit: "{{ audit_file }}"}
  tasks:
    - name: Read P978
      mml_tool.uap9600.sfp_info: {parameter: P978}
      register: before
    - name: Check mode
      mml_tool.uap9600.sfp: {parameter: P978, bit: 0, value: 0}
      check_mode: true
      register: checked
    - name: Read after check mode
      mml_tool.uap9600.sfp_info: {parameter: P978}
      register: after_check
    - name: Verify before the change
      mml_tool.uap9600.verify: {directions: [1, 2]}
      register: verify_before
      ignore_errors: true
    - name: Change
      mml_tool.uap9600.sfp: {parameter: P978, bit: 0, value: 0}
      register: changed
    - name: Change again
      mml_tool.uap9600.sfp: {parameter: P978, bit: 0, value: 0}
      register: again
    - name: Verify after the change
      mml_tool.uap9600.verify: {directions: [1, 2]}
      register: verify_after
    - name: A write through command
      mml_tool.uap9600.command: {command: "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"}
      register: refused
      ignore_errors: true
    - name: Roll back to the value read first
      mml_tool.uap9600.sfp:
        parameter: P978
        bit: 0
        value: "{{ before.bits['0'] }}"
      register: rolled_back
    - name: Read-only command
      mml_tool.uap9600.command: {command: "LST SFP: ID=P978;"}
      register: listed
    - name: A command the element refuses
      mml_tool.uap9600.command: {command: "LST SFP: ID=P99999;"}
      register: unknown
      ignore_errors: true
    - name: uap-2 by its fields
      mml_tool.uap9600.sfp_info:
        hostname: 127.0.0.1
        port: "{{ uap2_port }}"
        username: admin
        password: "{{ lookup('env', 'MML_LAB_PASSWORD') }}"
        known_hosts: "{{ known_hosts }}"
        ne_name: UAP-2
        parameter: P978
      register: by_fields
    - name: uap-2 with a wrong password
      mml_tool.uap9600.sfp_info:
        hostname: 127.0.0.1
        port: "{{ uap2_port }}"
        username: admin
        password: "{{ wrong_password }}"
        known_hosts: "{{ known_hosts }}"
        parameter: P978
      register: wrong
      ignore_errors: true
    - name: Keep what was registered
      ansible.builtin.copy:
        dest: "{{ out }}/registered.json"
        content: "{{ {'before': before, 'checked': checked, 'after_check': after_check,
          'verify_before': verify_before, 'changed': changed, 'again': again,
          'verify_after': verify_after, 'refused': refused, 'rolled_back': rolled_back,
          'listed': listed, 'unknown': unknown, 'by_fields': by_fields,
          'wrong': wrong} | to_json }}"
"""


def ansible_env(lab: RunningLab, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(lab_env(lab.inventory_path))
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        MML_TOOL_LOCKS=str(home / "locks"),
        MML_TOOL_OPERATOR="ansible-test",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def write_plugin_config(lab: RunningLab) -> Path:
    config = lab.inventory_path.parent / "lab.mml.yml"
    config.write_text(
        f"plugin: mml_tool.uap9600.inventory\nsource: {lab.inventory_path.name}\n",
        encoding="utf-8",
    )
    return config


@dataclass
class PlaybookRun:
    lab: RunningLab
    output: str
    returncode: int
    registered: dict[str, Any]
    audit: Path
    wrong_password: str


@pytest.fixture(scope="module")
def ansible_lab(start_lab: StartLab) -> RunningLab:
    nodes = [NodeConfig("uap-1", meid=1, layout="vertical"), NodeConfig("uap-2", meid=2)]
    return start_lab(nodes, with_gateway=True)


@pytest.fixture(scope="module")
def playbook_run(ansible_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> PlaybookRun:
    lab = ansible_lab
    out = tmp_path_factory.mktemp("ansible-out")
    config = write_plugin_config(lab)
    (out / "site.yml").write_text(PLAYBOOK, encoding="utf-8")
    wrong = "wrong-" + secrets.token_urlsafe(9)
    extra = {
        "out": str(out),
        "uap2_port": lab.lab.node("uap-2").ssh_port,
        "known_hosts": str(lab.inventory_path.parent / "lab_known_hosts"),
        "wrong_password": wrong,
    }
    proc = subprocess.run(
        [
            *(str(BIN / "ansible-playbook"), "-vvv", "--diff", "-i", str(config), "site.yml"),
            *("-e", json.dumps(extra)),
        ],
        cwd=out,
        env=ansible_env(lab, out / "home"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    registered_file = out / "registered.json"
    if not registered_file.exists():
        pytest.fail(f"the playbook did not finish (exit {proc.returncode}):\n{output[-6000:]}")
    return PlaybookRun(
        lab,
        output,
        proc.returncode,
        json.loads(registered_file.read_text(encoding="utf-8")),
        out / "audit.jsonl",
        wrong,
    )


def test_playbook_succeeds(playbook_run: PlaybookRun) -> None:
    assert playbook_run.returncode == 0, playbook_run.output[-4000:]


def test_sfp_info_reads_value_and_bits(playbook_run: PlaybookRun) -> None:
    before = playbook_run.registered["before"]
    assert before["changed"] is False
    assert before["bits"]["0"] == 1
    assert before["records"] and before["parameter"] == "P978"
    assert before["state"].startswith(("0=1", "value="))


def test_check_mode_reports_changed_without_writing(playbook_run: PlaybookRun) -> None:
    checked = playbook_run.registered["checked"]
    assert checked["changed"] is True
    assert checked["status"] == "check-mode"
    assert (checked["before"], checked["after"]) == (1, 0)
    assert "P978 bit 0 = 1" in checked["diff"]["before"]
    assert "P978 bit 0 = 0" in checked["diff"]["after"]
    assert playbook_run.registered["after_check"]["bits"]["0"] == 1  # nothing was written


def test_real_run_changes_then_is_idempotent(playbook_run: PlaybookRun) -> None:
    changed, again = playbook_run.registered["changed"], playbook_run.registered["again"]
    assert changed["changed"] is True and changed["status"] == "changed"
    assert (changed["before"], changed["after"]) == (1, 0)
    assert [c["outcome"] for c in changed["commands"]] == ["ok"]
    assert changed["rollback"] == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"]
    assert again["changed"] is False and again["status"] == "already-compliant"
    assert again["commands"] == []


def test_change_is_audited_ahead_like_apply(playbook_run: PlaybookRun) -> None:
    records = [r for r in read_audit(playbook_run.audit) if r.host == "uap-1"]
    # change, then rollback: each a write-ahead "sending" line, then its outcome
    assert [r.outcome for r in records] == ["sending", "ok", "sending", "ok"]
    assert {r.change_id for r in records} == {"CHG1"}
    assert {r.operator for r in records} == {"ansible-test"}
    assert records[0].command == "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
    assert records[2].command == "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"


def test_back_to_the_old_value_rolls_back(playbook_run: PlaybookRun) -> None:
    rolled = playbook_run.registered["rolled_back"]
    assert rolled["changed"] is True and (rolled["before"], rolled["after"]) == (0, 1)
    assert playbook_run.lab.lab.node("uap-1").store.get_bit("P978", 0) == 1


def test_command_refuses_a_mod(playbook_run: PlaybookRun) -> None:
    refused = playbook_run.registered["refused"]
    assert refused["failed"] is True
    assert "MOD changes the element" in refused["msg"]
    assert "Nothing was sent" in refused["msg"]
    assert refused["error_type"] == "CommandError"
    listed = playbook_run.registered["listed"]
    assert listed["retcode"] == 0 and listed["records"] and "P978" in listed["raw"]
    unknown = playbook_run.registered["unknown"]
    assert unknown["failed"] is True and unknown["retcode"] not in (0, None)
    assert unknown["msg"].startswith(f"RETCODE = {unknown['retcode']}")


def test_verify_fails_before_and_passes_after(playbook_run: PlaybookRun) -> None:
    before, after = (playbook_run.registered[k] for k in ("verify_before", "verify_after"))
    assert before["failed"] is True and before["status"] == "fail"
    assert "videoDirection" in before["msg"]
    assert after.get("failed", False) is False and after["status"] == "pass"
    assert [d["ok"] for d in after["directions"]] == [True, True]
    assert after["steps"] and after["gateway"] == "gw-uap-1"


def test_host_fields_instead_of_an_inventory(playbook_run: PlaybookRun) -> None:
    assert playbook_run.registered["by_fields"]["bits"]["0"] == 1
    wrong = playbook_run.registered["wrong"]
    assert wrong["failed"] is True and wrong["error_type"] == "TransportError", wrong
    assert "SSH authentication failed for user 'admin'" in wrong["msg"]


def test_no_secret_in_the_verbose_output(playbook_run: PlaybookRun) -> None:
    env = lab_env(playbook_run.lab.inventory_path)
    assert "EXEC" in playbook_run.output or "ESTABLISH LOCAL CONNECTION" in playbook_run.output
    # -vvv printed the module arguments, with the password given as one masked
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in playbook_run.output
    for secret in [*env.values(), playbook_run.wrong_password]:
        assert secret not in playbook_run.output


def test_inventory_plugin_lists_hosts_and_groups(ansible_lab: RunningLab, tmp_path: Path) -> None:
    config = write_plugin_config(ansible_lab)
    secrets_env = lab_env(ansible_lab.inventory_path)
    # As an AWX inventory sync: the credential's variables are not needed to list the hosts.
    env = {k: v for k, v in ansible_env(ansible_lab, tmp_path).items() if k not in secrets_env}
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(config), "--list", "--export"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert sorted(listed["lab"]["hosts"]) == ["uap-1", "uap-2"]
    # Values read from a file are not trusted as templates: ansible-core >= 2.19 lists them
    # wrapped as {"__ansible_unsafe": value}.
    hostvars = {
        host: {k: v["__ansible_unsafe"] if isinstance(v, dict) else v for k, v in hvars.items()}
        for host, hvars in listed["_meta"]["hostvars"].items()
    }
    assert set(hostvars) == {"uap-1", "uap-2"}
    first = hostvars["uap-1"]
    assert first["ansible_connection"] == "local"
    assert first["mml_port"] == ansible_lab.lab.node("uap-1").ssh_port
    assert first["mml_gateway"] == "gw-uap-1"
    assert first["mml_tool_inventory"] == str(ansible_lab.inventory_path.resolve())
    for secret in lab_env(ansible_lab.inventory_path).values():
        assert secret not in proc.stdout


def test_inventory_plugin_names_the_file_and_field_of_a_bad_inventory(
    ansible_lab: RunningLab, tmp_path: Path
) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text("hosts:\n  uap-1: {hostname: 127.0.0.1, prot: 22}\n", encoding="utf-8")
    config = tmp_path / "bad.mml.yml"
    config.write_text("plugin: mml_tool.uap9600.inventory\nsource: inventory.yaml\n")
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(config), "--list"],
        env={**ansible_env(ansible_lab, tmp_path), "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode != 0
    assert "unknown key 'prot'" in proc.stderr and str(bad) in proc.stderr


def test_inventory_plugin_warns_of_a_password_written_out(
    ansible_lab: RunningLab, tmp_path: Path
) -> None:
    written = "Written-0ut-" + secrets.token_urlsafe(6)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  uap-1: {{hostname: 127.0.0.1, username: u, password: {written}}}\n",
        encoding="utf-8",
    )
    config = tmp_path / "written.mml.yml"
    config.write_text("plugin: mml_tool.uap9600.inventory\nsource: inventory.yaml\n")
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(config), "--list"],
        env=ansible_env(ansible_lab, tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "uap-1" in json.loads(proc.stdout)["_meta"]["hostvars"]  # stdout stays JSON
    warning = " ".join(proc.stderr.split())  # Ansible wraps its warnings
    assert "secrets written out" in warning and "host 'uap-1': password" in warning, warning
    assert str(inventory) in warning and "${MML_PASSWORD}" in warning
    assert written not in proc.stdout + proc.stderr


def test_every_plugin_documents_itself(ansible_lab: RunningLab, tmp_path: Path) -> None:
    env = ansible_env(ansible_lab, tmp_path)
    modules = [f"mml_tool.uap9600.{m}" for m in ("sfp_info", "sfp", "command", "verify", "apply")]
    proc = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", *modules],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == sorted(modules)
    for name, doc in docs.items():
        assert doc["doc"]["options"] and doc["examples"] and doc["return"], name
    assert docs["mml_tool.uap9600.sfp"]["doc"]["options"]["password"]["type"] == "str"
    inventory = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "-t", "inventory", "mml_tool.uap9600.inventory"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert inventory.returncode == 0, inventory.stderr
    assert "source" in json.loads(inventory.stdout)["mml_tool.uap9600.inventory"]["doc"]["options"]
