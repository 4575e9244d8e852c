"""The Nornir plugin: InitNornir with SimpleInventory files, against the lab over SSH."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RunningLab, StartLab

from mml_tool.audit import read as read_audit
from mml_tool.lab.uap import NodeConfig

pytest.importorskip("nornir")

from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.plugins.connections import ConnectionPluginRegister

from mml_tool.nornir import MmlConnection, mml_check, mml_command, mml_set_bit

MOD = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"


@pytest.fixture(scope="module")
def nornir_lab(start_lab: StartLab) -> RunningLab:
    nodes = [NodeConfig("uap-1", meid=1), NodeConfig("uap-2", meid=2, layout="value")]
    return start_lab(nodes)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init(
    lab: RunningLab,
    folder: Path,
    password: str | None = None,
    data: dict[str, Any] | None = None,
    **extra_hosts: Any,
) -> Nornir:
    known = str(lab.inventory_path.parent / "lab_known_hosts")
    hosts: dict[str, Any] = {
        name: {
            "hostname": "127.0.0.1",
            "port": lab.lab.node(name).ssh_port,
            "groups": ["lab"],
            "connection_options": {
                "mml": {"extras": {"known_hosts": known, "ne_name": name.upper()}}
            },
        }
        for name in ("uap-1", "uap-2")
    }
    hosts.update(extra_hosts)
    files = {
        "hosts.yaml": hosts,
        "groups.yaml": {"lab": {"platform": "huawei_uap9600"}},
        "defaults.yaml": {
            "username": "admin",
            "password": password or lab.lab.password.reveal(),
            "data": data or {},
        },
    }
    for name, body in files.items():
        (folder / name).write_text(yaml.safe_dump(body), encoding="utf-8")
    return InitNornir(
        runner={"plugin": "threaded", "options": {"num_workers": 4}},
        inventory={
            "plugin": "SimpleInventory",
            "options": {
                "host_file": str(folder / "hosts.yaml"),
                "group_file": str(folder / "groups.yaml"),
                "defaults_file": str(folder / "defaults.yaml"),
            },
        },
        logging={"enabled": False},
    )


def test_connection_plugin_is_registered_by_entry_point() -> None:
    ConnectionPluginRegister.auto_register()
    assert ConnectionPluginRegister.available["mml"] is MmlConnection


def test_mml_command_reads_and_refuses_a_write(nornir_lab: RunningLab, tmp_path: Path) -> None:
    nr = init(nornir_lab, tmp_path)
    try:
        listed = nr.run(task=mml_command, command="LST SFP: ID=P978;")
        assert not listed.failed
        for name in ("uap-1", "uap-2"):
            result = listed[name][0].result
            assert result["retcode"] == 0 and result["ok"] is True
            assert result["records"] and "P978" in result["raw"]
        refused = nr.run(task=mml_command, command=MOD)
        assert set(refused.failed_hosts) == {"uap-1", "uap-2"}
        assert "MOD changes the element" in str(refused["uap-1"][0].exception)
        assert nornir_lab.lab.node("uap-1").store.get_bit("P978", 0) == 1
    finally:
        nr.close_connections()


def test_mml_check_gives_findings_and_fails_an_unreadable_host(
    nornir_lab: RunningLab, tmp_path: Path
) -> None:
    down = {"hostname": "127.0.0.1", "port": closed_port(), "groups": ["lab"]}
    nr = init(nornir_lab, tmp_path, **{"uap-9": down})
    try:
        checked = nr.run(task=mml_check)
        for name in ("uap-1", "uap-2"):
            result = checked[name][0]
            assert not result.failed
            assert [f["status"] for f in result.result] == ["fail"]
            assert result.result[0]["host"] == name
            assert result.compliant is False
        assert checked["uap-9"].failed
        assert "127.0.0.1" in str(checked["uap-9"][0].exception)
    finally:
        nr.close_connections()


def test_mml_set_bit_dry_run_change_idempotent_and_back(
    nornir_lab: RunningLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library reads no MML_TOOL_LOCKS: a Nornir task is given its lock folder.
    monkeypatch.setenv("MML_TOOL_LOCKS", str(tmp_path / "not-read"))
    audit, locks = tmp_path / "audit.jsonl", tmp_path / "locks"
    store = nornir_lab.lab.node("uap-2").store
    nr = init(nornir_lab, tmp_path).filter(name="uap-2")
    kwargs: dict[str, Any] = {
        "parameter": "P978",
        "bit": 0,
        "audit": audit,
        "lock_dir": locks,
        "change_id": "CHG7",
    }
    try:
        dry = nr.run(task=mml_set_bit, value=0, dry_run=True, **kwargs)["uap-2"][0]
        assert dry.changed and not dry.failed
        assert "-P978 bit 0 = 1" in dry.diff and "+P978 bit 0 = 0" in dry.diff
        assert store.get_bit("P978", 0) == 1 and not audit.exists()

        done = nr.run(task=mml_set_bit, value=0, **kwargs)["uap-2"][0]
        assert done.changed and not done.failed and done.result["status"] == "changed"
        assert "+P978 value=0" in done.diff
        assert store.get_bit("P978", 0) == 0

        again = nr.run(task=mml_set_bit, value=0, **kwargs)["uap-2"][0]
        assert not again.changed and again.diff == "" and not again.failed

        back = nr.run(task=mml_set_bit, value=1, **kwargs)["uap-2"][0]
        assert back.changed and store.get_bit("P978", 0) == 1
        records = read_audit(audit)
        assert [(r.host, r.outcome) for r in records] == [("uap-2", "sending"), ("uap-2", "ok")] * 2
        assert {r.change_id for r in records} == {"CHG7"}
        assert (locks / "uap-2.lock").exists() and not (tmp_path / "not-read").exists()
    finally:
        store.set_bit("P978", 0, 1)
        nr.close_connections()


def test_nornir_global_dry_run_sends_nothing(nornir_lab: RunningLab, tmp_path: Path) -> None:
    nr = init(nornir_lab, tmp_path).filter(name="uap-1")
    nr.data.dry_run = True
    try:
        result = nr.run(task=mml_set_bit, parameter="P978", bit=0, value=0)["uap-1"][0]
        assert result.changed and result.result["status"] == "check-mode"
        assert nornir_lab.lab.node("uap-1").store.get_bit("P978", 0) == 1
    finally:
        nr.close_connections()


def test_a_wrong_password_fails_the_host_without_showing_it(
    nornir_lab: RunningLab, tmp_path: Path
) -> None:
    wrong = "wrong-Zq81x"
    nr = init(nornir_lab, tmp_path, password=wrong).filter(name="uap-1")
    try:
        result = nr.run(task=mml_command, command="LST SFP: ID=P978;")
        assert result.failed
        text = str(result["uap-1"][0].exception) + str(result["uap-1"][0].result)
        assert "authentication failed" in text and wrong not in text
    finally:
        nr.close_connections()


def test_bad_extras_name_the_field(nornir_lab: RunningLab, tmp_path: Path) -> None:
    bad = {
        "hostname": "127.0.0.1",
        "port": 22,
        "connection_options": {"mml": {"extras": {"transprot": "tcp"}}},
    }
    nr = init(nornir_lab, tmp_path, **{"uap-8": bad}).filter(name="uap-8")
    result = nr.run(task=mml_command, command="LST SFP: ID=P978;")
    assert "unknown field(s) transprot" in str(result["uap-8"][0].exception)
