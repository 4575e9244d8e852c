"""The public API used the way README.md and docs/api.md show it, on the lab over loopback."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningLab, StartLab

import mml_tool as mt
from mml_tool.errors import (
    CheckError,
    ConfigError,
    MmlTimeout,
    MmlToolError,
    RetcodeError,
    TransportError,
)
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.mml import register_transport
from mml_tool.mml.transport import TcpTransport

MML = Path(mt.__file__).parent / "mml"


@pytest.fixture(scope="module")
def running(start_lab: StartLab) -> RunningLab:
    return start_lab(
        [
            NodeConfig("uap-1", layout="table", language="en"),
            NodeConfig("uap-2", layout="vertical", language="zh"),
            NodeConfig("slow-1", faults=FaultConfig(never_end="LST SFP")),
        ],
        with_gateway=True,
    )


@pytest.fixture
def fresh(running: RunningLab) -> Iterator[RunningLab]:
    """uap-1 non-compliant (P978 bit 0 set), uap-2 compliant, for this test only."""
    running.lab.node("uap-1").store.set_value("P978", 1)
    running.lab.node("uap-2").store.set_value("P978", 0)
    yield running


def params_for(running: RunningLab, name: str, /, **changes: object) -> mt.ConnectionParams:
    """ConnectionParams written by hand, as code without a YAML inventory would."""
    host = running.inventory.with_secrets(hosts=[name]).hosts[name]
    assert host.password is not None
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": running.lab.node(name).tcp_port,
        "transport": "tcp",
        "username": host.username,
        "password": mt.Secret(host.password.reveal()),
        "ne_name": host.ne_name,
        "timeout": 5,
    }
    values.update(changes)
    return mt.ConnectionParams(**values)  # type: ignore[arg-type]


def test_check_plan_apply_rollback_as_the_readme_shows(fresh: RunningLab, tmp_path: Path) -> None:
    inv = fresh.inventory
    policy = mt.load_policy()
    result = mt.check(inv, policy, limit="uap-*")
    assert isinstance(result, mt.CheckResult)
    assert {(f.host, f.status) for f in result.findings} == {
        ("uap-1", mt.FindingStatus.FAIL),
        ("uap-2", mt.FindingStatus.PASS),
    }
    assert all(isinstance(f.status, mt.FindingStatus) for f in result.findings)
    assert repr(mt.FindingStatus.FAIL) == "'fail'" and f"{mt.StepStatus.CHANGED}" == "changed"
    assert json.dumps([mt.FindingStatus.PASS]) == '["pass"]'
    assert result.failed_hosts == ["uap-1"]
    assert result.exit_code == 100
    assert result.raise_on_error() is result  # a fail is a verdict, not an error

    plan = mt.plan(result, change_id="CHG42", operator="alice")
    assert [(s.host, s.commands) for s in plan.steps] == [
        ("uap-1", ("MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;",))
    ]
    plan.save(tmp_path / "plan.json")
    plan = mt.load_plan(tmp_path / "plan.json")

    audit = tmp_path / "audit.jsonl"
    locks = tmp_path / "locks"
    record = mt.apply(plan, inv, audit=audit, lock_dir=locks, operator="alice")
    assert record.changed_hosts == ["uap-1"]
    assert [r.status for r in record.results] == [mt.StepStatus.CHANGED]
    assert [r.diff for r in record.results] == ["P978 bit 0: 1 -> 0"]
    assert not record.failed and record.exit_code == 0
    assert fresh.lab.node("uap-1").store.get("P978") == 0
    assert any(json.loads(line)["operator"] == "alice" for line in audit.read_text().splitlines())
    record.save(tmp_path / "record.json")
    record = mt.load_record(tmp_path / "record.json")
    assert isinstance(record.results[0].status, mt.StepStatus)

    assert mt.check(inv, policy, limit="uap-*").exit_code == 0

    undone = mt.rollback(record, inv, audit=audit, lock_dir=locks)
    assert undone.changed_hosts == ["uap-1"]
    assert fresh.lab.node("uap-1").store.get("P978") == 1


def test_check_of_an_unreachable_host_is_an_error_finding(fresh: RunningLab) -> None:
    inv = mt.Inventory.from_hosts(
        [
            params_for(fresh, "uap-2", name="uap-2"),
            params_for(fresh, "slow-1", timeout=0.5, name="slow-1"),
        ]
    )
    result = mt.check(inv)
    statuses = {f.host: f.status for f in result.findings}
    assert statuses == {"uap-2": mt.FindingStatus.PASS, "slow-1": mt.FindingStatus.ERROR}
    assert result.failed_hosts == ["slow-1"] and result.exit_code == 1
    with pytest.raises(CheckError, match="slow-1") as info:
        result.raise_on_error()
    assert info.value.hosts == ["slow-1"]


def test_session_from_connection_params_without_yaml(fresh: RunningLab) -> None:
    params = params_for(fresh, "uap-1")
    assert params.name == "127.0.0.1"  # no name given: the address labels logs and errors
    with mt.MmlSession(params) as s:
        rows = s.run("LST SFP: ID=P978;").raise_for_retcode().parse()
    assert rows and any("P978" in json.dumps(r) for r in rows)


def test_errors_carry_host_and_command(fresh: RunningLab) -> None:
    with (
        mt.MmlSession(params_for(fresh, "uap-1", name="uap-1")) as s,
        pytest.raises(RetcodeError) as info,
    ):
        s.run("LST SFP: ID=P99999;").raise_for_retcode()
    assert info.value.host == "uap-1"
    assert info.value.command.startswith("LST SFP")
    with (
        mt.MmlSession(params_for(fresh, "slow-1", name="slow-1", timeout=0.5)) as s,
        pytest.raises(TransportError) as lost,  # the reply may be lost: one parent class
    ):
        s.run("LST SFP: ID=P978;")
    assert isinstance(lost.value, MmlTimeout)
    assert (lost.value.host, lost.value.command) == ("slow-1", "LST SFP: ID=P978;")


def test_a_password_must_be_a_secret() -> None:
    with pytest.raises(MmlToolError, match="Secret"):
        mt.ConnectionParams(host="127.0.0.1", password="plain")  # type: ignore[arg-type]
    assert mt.ConnectionParams(host="127.0.0.1").port == 22
    assert mt.ConnectionParams(host="127.0.0.1", transport="tcp").port == 6000
    shown = repr(mt.ConnectionParams(host="127.0.0.1", password=mt.Secret("hunter2-long")))
    assert "hunter2-long" not in shown


def test_a_registered_transport_is_used(fresh: RunningLab) -> None:
    made: list[str] = []

    def counting(params: mt.ConnectionParams) -> TcpTransport:
        made.append(params.name)
        return TcpTransport(params)

    register_transport("counted-tcp", counting)
    with mt.MmlSession(params_for(fresh, "uap-2", transport="counted-tcp", name="u2")) as s:
        assert s.run("LST SFP: ID=P978;").ok
    assert made == ["u2"]


def test_verify_through_the_host_gateway(fresh: RunningLab) -> None:
    fresh.lab.node("uap-1").store.set_value("P978", 0)
    outcome = mt.verify(fresh.inventory, host="uap-1")
    assert isinstance(outcome, mt.VerifyResult)
    assert outcome.passed, outcome.error


def test_verify_overrides_the_agent_and_the_number_called(fresh: RunningLab) -> None:
    # The CLI's --agent/--called go through these: a bad one is refused before sign-in.
    outcome = mt.verify(fresh.inventory, host="uap-1", agent="12")
    assert not outcome.passed and "agent ID '12' is invalid" in str(outcome.error)
    assert not outcome.steps  # nothing was sent
    with pytest.raises(ConfigError, match="called number 'x' is invalid"):
        mt.verify(fresh.inventory, host="uap-1", called="x")


def test_all_names_resolve() -> None:
    for name in mt.__all__:
        assert getattr(mt, name) is not None, name
    with pytest.raises(AttributeError):
        _ = mt.not_a_name  # type: ignore[attr-defined]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.startswith("mml_tool")}


def test_mml_imports_nothing_above_it() -> None:
    allowed = ("mml_tool.mml", "mml_tool.errors", "mml_tool.secret")
    offenders = {
        f"{path.relative_to(MML.parent)}: {module}"
        for path in MML.rglob("*.py")
        for module in _imports(path)
        if not module.startswith(allowed)
    }
    assert not offenders
    # and at run time: importing the protocol layer loads nothing above it
    code = "import sys, mml_tool.mml; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    above = [m for m in loaded if m.startswith("mml_tool.") and not m.startswith(allowed)]
    assert above == []


def test_the_layering_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from mml_tool.inventory import HostConfig\nimport mml_tool.parsing\n")
    assert _imports(bad) >= {"mml_tool.inventory", "mml_tool.parsing"}


def test_importing_the_package_stays_light() -> None:
    code = "import sys, mml_tool; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [m for m in loaded if m.startswith("mml_tool.")]
