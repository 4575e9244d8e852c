"""One host's surprise never sinks the others: an odd digit from a hostile element, or any
unforeseen exception in one host's job, is that host's error; the fleet run finishes, the
report is written and the apply record keeps every host."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from conftest import RunningLab, StartLab, invoke_on, lab_env
from hostile import Connection, HostileServer, frame, inventory_with_hostile, sfp_table

from mml_tool.audit import AuditTrail
from mml_tool.change import ChangeContext, apply_plan, build_plan
from mml_tool.compliance import check_fleet
from mml_tool.errors import MmlToolError, ParseError, UnexpectedError
from mml_tool.fleet import run_fleet
from mml_tool.inventory import HostConfig, load_inventory
from mml_tool.lab.uap import NodeConfig
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output
from mml_tool.policy import bit_from_records, load_policy

ODD_DIGITS = ["²", "٠", "０", "𝟏"]  # superscript two, Arabic-Indic zero, full-width zero, bold 1


class OddDigit:
    """Answers ``LST SFP`` with ``bit_value`` (settable while the server runs)."""

    def __init__(self, bit_value: str = "1") -> None:
        self.bit_value = bit_value

    def __call__(self, conn: Connection, command: str) -> str | None:
        if command.upper().startswith("LST SFP"):
            return frame(command, conn.next_serial(), body=sfp_table(self.bit_value))
        return None


@pytest.fixture(scope="module")
def normal(start_lab: StartLab) -> RunningLab:
    return start_lab([NodeConfig("uap-ok")])


@pytest.fixture
def hostile() -> Iterator[tuple[HostileServer, OddDigit]]:
    script = OddDigit()
    with HostileServer(script) as server:
        yield server, script


def fleet_inventory(normal: RunningLab, server: HostileServer, folder: Path) -> Path:
    """The lab node and the hostile element side by side in one inventory."""
    return inventory_with_hostile(normal.inventory_path, server, folder / "fleet.yaml")


def invoke(normal: RunningLab, tmp_path: Path, *args: str | Path) -> Result:
    return invoke_on(normal, tmp_path, *args)


@pytest.mark.parametrize("digit", ODD_DIGITS)
def test_odd_digit_is_that_hosts_error_and_the_report_is_written(
    normal: RunningLab,
    hostile: tuple[HostileServer, OddDigit],
    tmp_path: Path,
    digit: str,
) -> None:
    server, script = hostile
    script.bit_value = digit
    inventory = fleet_inventory(normal, server, tmp_path)
    report = tmp_path / "report.json"
    result = invoke(normal, tmp_path, "check", "-i", inventory, "--report", f"json:{report}")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output  # one host could not be decided
    body = json.loads(report.read_text(encoding="utf-8"))
    by_host = {r["host"]: r for r in body["results"]}
    assert by_host["uap-ok"]["status"] == "fail"  # the lab node is judged as usual
    odd = by_host["odd-1"]
    assert odd["status"] == "error"
    assert "line 10" in odd["error"] and digit in odd["error"], odd["error"]


@pytest.mark.parametrize("digit", ODD_DIGITS)
def test_odd_digit_never_reads_as_a_number(digit: str) -> None:
    for record in (
        {"ID": "P978", "BIT": "0", "BIT_VALUE": digit},
        {"ID": "P978", "BIT": digit, "BIT_VALUE": "1"},
        {"ID": "P978", "VALUE": f"1{digit}"},
    ):
        with pytest.raises(ParseError, match="ASCII digits"):
            bit_from_records([record], "P978", 0)


LOOSE_TEMPLATE = """Value ID (\\S+)
Value BIT (\\S+)
Value BIT_VALUE (\\S+)

Start
  ^${ID}\\s{2,}${BIT}\\s{2,}${BIT_VALUE}\\s*$$ -> Record
  ^.*
"""


@pytest.mark.parametrize("digit", ODD_DIGITS)
def test_a_user_template_cannot_hand_on_an_odd_digit(tmp_path: Path, digit: str) -> None:
    (tmp_path / "loose.textfsm").write_text(LOOSE_TEMPLATE, encoding="utf-8")
    (tmp_path / "index").write_text(
        "Template, Hostname, Platform, Command\n\nloose.textfsm, .*, huawei_uap9600, LST SFP\n",
        encoding="utf-8",
    )
    raw = frame("LST SFP: ID=P978;", 7, body=sfp_table(digit))
    with pytest.raises(ParseError, match=r"line 10 of the reply.*ASCII digits") as info:
        parse_output("LST SFP: ID=P978;", raw, template_dirs=[tmp_path])
    assert digit in str(info.value)
    assert parse_output("LST SFP: ID=P978;", raw.replace(digit, "1"), template_dirs=[tmp_path])


def test_apply_record_keeps_every_host_when_one_answers_an_odd_digit(
    normal: RunningLab, hostile: tuple[HostileServer, OddDigit], tmp_path: Path
) -> None:
    server, script = hostile
    inventory_path = fleet_inventory(normal, server, tmp_path)
    inventory = load_inventory(inventory_path, env=lab_env(normal.inventory_path))
    policy = load_policy()
    findings = check_fleet(list(inventory.hosts.values()), policy)
    assert {f.host: f.status for f in findings} == {"uap-ok": "fail", "odd-1": "fail"}
    plan = build_plan(findings, policy, change_id="c1", inventory=inventory_path, operator="op")
    script.bit_value = "٠"  # the re-read before the change answers an odd digit
    store = normal.lab.node("uap-ok").store
    try:
        ctx = ChangeContext(
            inventory, AuditTrail(tmp_path / "audit.jsonl"), "op", "c1", tmp_path / "locks"
        )
        record = apply_plan(plan, ctx)
        statuses = {r.step.host: r.status for r in record.results}
        assert statuses == {"uap-ok": "changed", "odd-1": "failed"}
        (odd,) = [r for r in record.results if r.step.host == "odd-1"]
        assert odd.error is not None and "٠" in odd.error and "line 10" in odd.error
        assert store.get_bit("P978", 0) == 0
    finally:
        store.set_value("P978", 1)


def test_any_exception_in_one_hosts_job_is_its_typed_error(normal: RunningLab) -> None:
    ok = normal.host("uap-ok", "tcp")
    hosts = [ok, dataclasses.replace(ok, name="boom")]
    secret = hosts[0].password
    assert secret is not None

    def job(host: HostConfig) -> str:
        if host.name == "boom":
            raise ValueError(f"invalid literal for int() with base 10: '²' ({secret.reveal()})")
        with MmlSession(host) as session:
            return session.run("LST SFP: ID=P978;").records[0]["Bit value"]

    results = run_fleet(hosts, job, workers=2)
    assert [r.host for r in results] == ["uap-ok", "boom"]
    assert results[0].value == "1" and results[0].error is None
    error = results[1].error
    assert isinstance(error, UnexpectedError) and isinstance(error, MmlToolError)
    assert error.host == "boom" and error.kind == "ValueError"
    text = str(error)
    assert "boom: unexpected ValueError" in text and "'²'" in text
    assert "test_one_host_surprise.py" in text  # where it happened, for the bug report
    assert secret.reveal() not in text and secret.reveal() not in repr(error.args)


def test_keyboard_interrupt_still_stops_the_fleet(normal: RunningLab) -> None:
    stop = threading.Event()

    def job(host: HostConfig) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_fleet([normal.host("uap-ok", "tcp")], job, stop=stop)
    assert stop.is_set()


def test_an_unforeseen_exception_in_apply_keeps_every_host_in_the_record(
    normal: RunningLab, tmp_path: Path
) -> None:
    """A bug in one host's job (here: its session factory) leaves the others applied and
    recorded, and the broken host recorded as failed with the typed error's message."""
    store = normal.lab.node("uap-ok").store
    inventory = normal.inventory
    boom = dataclasses.replace(inventory.hosts["uap-ok"], name="boom")
    inventory.hosts["boom"] = boom
    try:
        policy = load_policy()
        findings = check_fleet([inventory.hosts["uap-ok"], boom], policy)
        plan = build_plan(findings, policy, change_id="c2", inventory=Path("x"), operator="op")
        assert sorted(plan.hosts) == ["boom", "uap-ok"]

        def factory(host: HostConfig) -> MmlSession:
            if host.name == "boom":
                raise RuntimeError("surprise")
            return MmlSession(host)

        ctx = ChangeContext(
            inventory,
            AuditTrail(tmp_path / "audit.jsonl"),
            "op",
            "c2",
            tmp_path / "locks",
            session_factory=factory,
        )
        record = apply_plan(plan, ctx)
        statuses = {r.step.host: (r.status, r.error) for r in record.results}
        assert statuses["uap-ok"] == ("changed", None)
        status, error = statuses["boom"]
        assert status == "failed" and error is not None
        assert "unexpected RuntimeError: surprise" in error
    finally:
        del inventory.hosts["boom"]
        store.set_value("P978", 1)


@pytest.mark.parametrize("digit", ODD_DIGITS)
def test_the_lab_refuses_an_odd_digit_in_a_command(normal: RunningLab, digit: str) -> None:
    """The simulator (the test oracle) answers RETCODE 1004, not a crash or bit 0."""
    node = normal.lab.node("uap-ok")
    password = normal.lab.password.reveal()
    with socket.create_connection(("127.0.0.1", node.tcp_port), timeout=5) as sock:
        for command in (f'LGI: OP="admin", PWD="{password}";', f"LST SFP: ID=P978, BIT={digit};"):
            sock.sendall(command.encode() + b"\r\n")
            reply = b""
            while b"---    END" not in reply:
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
    assert "RETCODE = 1004" in reply.decode(), reply.decode()
