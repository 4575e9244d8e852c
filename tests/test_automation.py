"""mml_tool.automation, the adapter the Ansible modules and Nornir tasks call: its bit change is
apply's (lock, re-read, drift refused, audit ahead, no blind resend), its host fields are the
inventory's, checked the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunningLab, StartLab

from mml_tool import automation
from mml_tool.audit import read as read_audit
from mml_tool.errors import CommandError, ConfigError, InventoryError, RetcodeError
from mml_tool.inventory import HostConfig
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.locks import host_lock
from mml_tool.mml.session import MmlSession


@pytest.fixture(scope="module")
def auto_lab(start_lab: StartLab) -> RunningLab:
    return start_lab(
        [
            NodeConfig("uap-1", meid=1, layout="value"),
            NodeConfig("drop-1", meid=2, faults=FaultConfig(drop_after_mod=True, times=1)),
        ]
    )


def test_a_held_lock_stops_the_change_before_anything_is_sent(
    auto_lab: RunningLab, tmp_path: Path
) -> None:
    host = auto_lab.inventory.hosts["uap-1"]
    audit = tmp_path / "audit.jsonl"
    with host_lock(tmp_path / "locks", "uap-1", change_id="OTHER", action="apply"):
        outcome = automation.set_bit(
            host, "P978", 0, 0, audit_path=audit, lock_dir=tmp_path / "locks"
        )
    assert outcome.status == "locked" and not outcome.ok and not outcome.changed
    assert "OTHER" in (outcome.error or "")
    assert auto_lab.lab.node("uap-1").store.get_bit("P978", 0) == 1
    assert [r.outcome for r in read_audit(audit)] == ["refused"]  # recorded, not sent


def test_a_parameter_moved_after_the_read_is_refused_as_drift(
    auto_lab: RunningLab, tmp_path: Path
) -> None:
    store = auto_lab.lab.node("uap-1").store
    sessions: list[HostConfig] = []

    def factory(host: HostConfig) -> MmlSession:
        sessions.append(host)
        if len(sessions) == 2:  # the change runner's own session: someone changed bit 3 first
            store.set_bit("P978", 3, 1)
        return MmlSession(host)

    audit = tmp_path / "audit.jsonl"
    try:
        outcome = automation.set_bit(
            auto_lab.inventory.hosts["uap-1"],
            "P978",
            0,
            0,
            audit_path=audit,
            lock_dir=tmp_path / "locks",
            session_factory=factory,
        )
        assert outcome.status == "drifted" and not outcome.changed
        assert "nothing was sent" in (outcome.error or "")
        assert store.get_bit("P978", 0) == 1
        assert [r.outcome for r in read_audit(audit)] == ["refused"]  # recorded, not sent
    finally:
        store.set_bit("P978", 3, 0)


def test_a_lost_reply_is_settled_by_a_fresh_read_never_a_resend(
    auto_lab: RunningLab, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    store = auto_lab.lab.node("drop-1").store
    try:
        outcome = automation.set_bit(
            auto_lab.inventory.hosts["drop-1"],
            "P978",
            0,
            0,
            change_id="CHG9",
            audit_path=audit,
            lock_dir=tmp_path / "locks",
        )
        assert outcome.status == "changed" and outcome.changed and outcome.after == 0
        assert "a fresh read confirmed the change" in (outcome.error or "")
        assert [c["outcome"] for c in outcome.commands] == ["unknown"]
        records = read_audit(audit)
        # sent once: the write-ahead line, the lost reply, then what a fresh read settled
        assert [r.outcome for r in records] == ["sending", "unknown", "ok"]
        assert "settled by a fresh read" in records[-1].message
    finally:
        store.set_bit("P978", 0, 1)


def test_check_mode_predicts_the_whole_parameter(auto_lab: RunningLab, tmp_path: Path) -> None:
    outcome = automation.set_bit(auto_lab.inventory.hosts["uap-1"], "P978", 0, 0, check_mode=True)
    assert outcome.status == "check-mode" and outcome.changed
    assert (outcome.before_state, outcome.after_state) == ("value=1", "value=0")
    assert outcome.rollback == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("P9;x", 0, 0), "parameter 'P9;x'"),
        (("P978", 16, 0), "bit 16: give a bit number 0..15"),
        (("P978", 0, 2), "value 2: a bit is set to 0 or 1"),
    ],
)
def test_bad_arguments_are_refused_before_connecting(
    args: tuple[str, int, int], message: str
) -> None:
    nowhere = automation.host_from_fields(
        "x", {"hostname": "127.0.0.1", "port": 1, "username": "u", "password": "p"}
    )
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        automation.set_bit(nowhere, *args)


def test_host_fields_are_checked_as_the_inventory_checks_them(tmp_path: Path) -> None:
    base = {"hostname": "127.0.0.1", "username": "admin", "password": "a${NOT_A_VAR}b"}
    host = automation.host_from_fields("uap-1", {**base, "known_hosts": "kh"}, base=tmp_path)
    assert host.password is not None and host.password.reveal() == "a${NOT_A_VAR}b"
    assert host.port == 22 and host.known_hosts == tmp_path / "kh"
    with pytest.raises(InventoryError, match="field 'port' = 70000 must be between 1 and 65535"):
        automation.host_from_fields("uap-1", {**base, "port": 70000})
    with pytest.raises(ConfigError, match=r"unknown field.*prot"):
        automation.host_from_fields("uap-1", {**base, "prot": 22})
    with pytest.raises(InventoryError, match="no password") as info:
        automation.host_from_fields("uap-1", {**base, "password": None})
    assert "a${NOT_A_VAR}b" not in str(info.value)


def test_read_only_command_refuses_write_verbs() -> None:
    for text in ("MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;", "RMV X: A=1;", "SET Y: B=2;"):
        with pytest.raises(CommandError, match="Nothing was sent"):
            automation.read_only_command(text)
    assert automation.read_only_command("DSP Z:;").verb == "DSP"


def test_read_parameter_of_a_whole_value_reply(auto_lab: RunningLab) -> None:
    info = automation.read_parameter(auto_lab.inventory.hosts["uap-1"], "P978")
    assert info.value == 1 and info.bits[0] == 1 and info.bits[15] == 0
    assert info.state == "value=1" and "P978" in info.raw


def test_read_parameter_of_a_per_bit_reply_and_of_an_unknown_one(auto_lab: RunningLab) -> None:
    host = auto_lab.inventory.hosts["drop-1"]  # table layout: one record per bit
    info = automation.read_parameter(host, "P978")
    assert info.state.startswith("0=1,1=0") and info.bits[0] == 1 and info.value == 1
    with pytest.raises(RetcodeError):
        automation.read_parameter(host, "P99999")


def test_host_from_inventory_reads_only_that_hosts_secrets(
    auto_lab: RunningLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("MML_LAB_PASSWORD", "CCGW_AGENT_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(InventoryError, match="MML_LAB_PASSWORD"):
        automation.host_from_inventory(auto_lab.inventory_path, "uap-1")
    monkeypatch.setenv("MML_LAB_PASSWORD", auto_lab.lab.password.reveal())
    _, host = automation.host_from_inventory(auto_lab.inventory_path, "uap-1")
    assert host.password is not None and host.password.reveal() == auto_lab.lab.password.reveal()
    with pytest.raises(ConfigError, match="no host 'uap-7'"):
        automation.host_from_inventory(auto_lab.inventory_path, "uap-7")
