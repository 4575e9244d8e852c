"""`mml-tool check` against a lab fleet: every layout and language, compliant, non-compliant and
faulty nodes; exit codes, reports, --limit, and a slow host that must not hold the others."""

from __future__ import annotations

import json
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from mml_tool.cli import cli
from mml_tool.compliance import check_fleet
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import PASSWORD_ENV, Lab
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.policy import load_policy

PASSWORD = "S3cr3t-Lab-Pass-9x"
SLOW_TIMEOUT = 2.0  # far from the others' few tenths of a second, even on a loaded machine
CONTROL = "UAP-SFP-P978-B0"

# name -> expected status; every layout and language is both compliant and not somewhere.
EXPECTED = {
    "ok-table-en": "pass",
    "ok-vertical-zh": "pass",
    "ok-value-en": "pass",
    "nc-table-zh": "fail",
    "nc-vertical-en": "fail",
    "nc-value-zh": "fail",
    "slow-1": "error",
    "refused-1": "error",
    "garbage-1": "error",
}


def _nodes() -> list[NodeConfig]:
    return [
        NodeConfig("ok-table-en", layout="table", language="en", params={"P978": 0}),
        NodeConfig("ok-vertical-zh", layout="vertical", language="zh", params={"P978": 0}),
        NodeConfig("ok-value-en", layout="value", language="en", hex_line=True, params={"P978": 0}),
        NodeConfig("nc-table-zh", layout="table", language="zh", params={"P978": 1}),
        NodeConfig("nc-vertical-en", layout="vertical", language="en", params={"P978": 3}),
        NodeConfig("nc-value-zh", layout="value", language="zh", params={"P978": 1}),
        NodeConfig("slow-1", faults=FaultConfig(never_end="LST SFP")),
        NodeConfig("refused-1", faults=FaultConfig(login_refused=True)),
        NodeConfig("garbage-1", layout="vertical", faults=FaultConfig(garbage_reply="LST SFP")),
    ]


def write_inventory(lab: Lab, path: Path) -> Path:
    """The lab's inventory with short timeouts (one shorter still for the slow host) and a
    `compliant` group, so the faulty hosts cost little."""
    lab.write_inventory(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["defaults"].update(timeout=10, connect_timeout=5)  # well apart from SLOW_TIMEOUT
    doc["groups"]["compliant"] = {"vars": {}}
    doc["hosts"]["slow-1"]["timeout"] = SLOW_TIMEOUT
    for name in EXPECTED:
        if name.startswith("ok-"):
            doc["hosts"][name]["groups"] = ["lab", "compliant"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Fleet:
    lab: Lab
    inventory: Path
    workdir: Path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("check-lab")
    with (
        pytest.MonkeyPatch.context() as mp,
        Lab(_nodes(), workdir=workdir, password=PASSWORD, with_gateway=False) as lab,
    ):
        mp.setenv(PASSWORD_ENV, PASSWORD)
        yield Fleet(lab, write_inventory(lab, workdir / "inventory.yaml"), workdir)


def invoke(*args: str) -> Result:
    # Wide: rich tables must not wrap the host names.
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "250"})


@dataclass
class FullRun:
    result: Result
    elapsed: float
    json_path: Path
    junit_path: Path
    md_path: Path


@pytest.fixture(scope="module")
def full_run(fleet: Fleet) -> FullRun:
    """One `check` of the whole fleet with all three reports."""
    out = fleet.workdir / "reports"
    paths = (out / "check.json", out / "check.xml", out / "check.md")
    spec = f"json:{paths[0]},junit:{paths[1]},md:{paths[2]}"
    start = time.monotonic()
    result = invoke("check", "-i", str(fleet.inventory), "--report", spec)
    return FullRun(result, time.monotonic() - start, *paths)


def test_exit_code_is_1_when_some_host_cannot_be_decided(full_run: FullRun) -> None:
    assert full_run.result.exit_code == 1, full_run.result.output
    for name in EXPECTED:
        assert name in full_run.result.output
    assert "3 pass, 3 fail, 3 error, 0 waived" in full_run.result.output


def test_slow_host_does_not_hold_the_run_beyond_its_timeout(full_run: FullRun) -> None:
    # The slow host waits SLOW_TIMEOUT (not the default 10 s); the other eight run meanwhile.
    assert full_run.elapsed < SLOW_TIMEOUT + 5.0


def test_json_report(full_run: FullRun) -> None:
    data = json.loads(full_run.json_path.read_text(encoding="utf-8"))
    assert data["schema_version"] == 1
    assert data["run"]["command"] == "check"
    assert data["run"]["policy"]["name"] == "uap9600-one-way-video"
    assert len(data["run"]["policy"]["sha256"]) == 64
    statuses = {r["host"]: r["status"] for r in data["results"]}
    assert statuses == EXPECTED
    assert data["summary"] == {
        "pass": 3,
        "fail": 3,
        "error": 3,
        "waived": 0,
        "total": 9,
        "hosts": 9,
    }
    by_host = {r["host"]: r for r in data["results"]}
    assert by_host["nc-table-zh"]["actual"] == "P978 bit 0 = 1"
    assert by_host["nc-table-zh"]["remediation"] == [
        "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
    ]
    assert by_host["nc-table-zh"]["rollback"] == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"]
    assert "软件参数" in by_host["nc-value-zh"]["evidence"]
    assert by_host["ok-table-en"]["error"] is None
    assert f"within {SLOW_TIMEOUT:g} s" in by_host["slow-1"]["error"]
    assert "1008" in by_host["refused-1"]["error"]
    assert by_host["garbage-1"]["actual"] is None


def test_junit_report_one_testcase_per_host_and_control(full_run: FullRun) -> None:
    suite = ET.fromstring(full_run.junit_path.read_text(encoding="utf-8"))
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("9", "3", "3")
    cases = suite.findall("testcase")
    assert sorted(c.get("classname") or "" for c in cases) == sorted(EXPECTED)
    for case in cases:
        assert (case.get("name") or "").startswith(CONTROL)
        expected = EXPECTED[case.get("classname") or ""]
        failures, errors = case.findall("failure"), case.findall("error")
        # Non-compliant (failure) and undecided (error) are told apart.
        assert (len(failures), len(errors)) == {
            "pass": (0, 0),
            "fail": (1, 0),
            "error": (0, 1),
        }[expected]
        if failures:
            assert failures[0].get("type") == "non-compliant"
            assert "actual P978 bit 0 = 1" in (failures[0].get("message") or "")


def test_markdown_report(full_run: FullRun) -> None:
    text = full_run.md_path.read_text(encoding="utf-8")
    assert text.startswith("# Compliance report: mml-tool check")
    assert "3 pass, 3 fail, 3 error, 0 waived (9 checks on 9 hosts)" in text
    for name, status in EXPECTED.items():
        assert f"| {name} | {CONTROL} | {status} |" in text


def test_password_is_in_no_output_or_report(full_run: FullRun) -> None:
    assert PASSWORD not in full_run.result.output
    for path in (full_run.json_path, full_run.junit_path, full_run.md_path):
        assert PASSWORD not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        ("ok-*", 0),
        ("compliant", 0),
        ("ok-table-en,nc-value-zh", 100),
        ("nc-*", 100),
        ("ok-*,nc-*", 100),
        ("refused-1", 1),
        ("ok-value-en,garbage-1", 1),
    ],
)
def test_limit_and_exit_codes(fleet: Fleet, tmp_path: Path, limit: str, code: int) -> None:
    report = tmp_path / "r.json"
    result = invoke(
        "check", "-i", str(fleet.inventory), "--limit", limit, "--report", f"json:{report}"
    )
    assert result.exit_code == code, result.output
    hosts = {r["host"] for r in json.loads(report.read_text(encoding="utf-8"))["results"]}
    inventory = load_inventory(fleet.inventory)
    assert hosts == {h.name for h in inventory.select(limit)}


def test_limit_matching_nothing_is_an_error(fleet: Fleet) -> None:
    result = invoke("check", "-i", str(fleet.inventory), "--limit", "no-such-host")
    assert result.exit_code == 2  # a usage error, found before anything is connected to
    assert "no-such-host" in result.output


def test_bad_report_spec_is_refused_before_any_check(fleet: Fleet, tmp_path: Path) -> None:
    result = invoke("check", "-i", str(fleet.inventory), "--report", f"pdf:{tmp_path / 'x.pdf'}")
    assert result.exit_code == 2
    assert "--report" in result.output and "pdf:" in result.output
    assert not list(tmp_path.iterdir())


def test_each_host_finishes_on_its_own_deadline(fleet: Fleet) -> None:
    """Library level: the fleet's progress events show the healthy hosts done before the slow
    host's timeout, and the slow host done soon after it."""
    done: dict[str, float] = {}

    class Recorder:
        def started(self, total: int) -> None:
            pass

        def host_done(self, host: str, ok: bool) -> None:
            done[host] = time.monotonic() - start

        def finished(self) -> None:
            pass

    inventory = load_inventory(fleet.inventory)
    hosts = inventory.select("slow-1,ok-*,nc-*")
    start = time.monotonic()
    findings = check_fleet(hosts, load_policy(None), progress=Recorder())
    assert {f.host: f.status for f in findings} == {h.name: EXPECTED[h.name] for h in hosts}
    assert [f.host for f in findings] == [h.name for h in hosts]  # inventory order
    others = [t for name, t in done.items() if name != "slow-1"]
    assert len(others) == len(hosts) - 1
    # Nobody waited for the slow host, and it gave up on its own deadline.
    assert max(others) < done["slow-1"]
    assert SLOW_TIMEOUT <= done["slow-1"] < SLOW_TIMEOUT + 4.0  # not the default 10 s


def test_waived_host_counts_as_compliant(fleet: Fleet, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    doc: dict[str, Any] = yaml.safe_load((Path(load_policy(None).path)).read_text(encoding="utf-8"))
    doc["waivers"] = [
        {
            "host": "nc-table-zh",
            "control": CONTROL,
            "reason": "CHG-1 pending",
            "expires": "2099-01-01",
        }
    ]
    policy.write_text(yaml.safe_dump(doc), encoding="utf-8")
    report = tmp_path / "r.json"
    result = invoke(
        "check",
        "-i",
        str(fleet.inventory),
        "-p",
        str(policy),
        "--limit",
        "ok-*,nc-table-zh",
        "--report",
        f"json:{report}",
    )
    assert result.exit_code == 0, result.output
    results = json.loads(report.read_text(encoding="utf-8"))["results"]
    waived = [r for r in results if r["host"] == "nc-table-zh"]
    assert waived[0]["status"] == "waived"
    assert waived[0]["waiver_reason"] == "CHG-1 pending"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket that would see any connection attempt (nothing must connect to it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def test_malformed_policy_names_file_and_field_and_connects_to_nothing(
    fleet: Fleet, tmp_path: Path, listener: socket.socket
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "defaults": {
                    "transport": "tcp",
                    "username": "admin",
                    "password": "${MML_LAB_PASSWORD}",
                },
                "hosts": {"watch-1": {"hostname": "127.0.0.1", "port": listener.getsockname()[1]}},
            }
        ),
        encoding="utf-8",
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "policy: {name: broken, version: 1}\n"
        "controls:\n"
        "  - id: C1\n"
        "    title: t\n"
        "    severity: high\n"
        "    rule: {software_parameter: {id: P978, bit: 99, value: 0}}\n",
        encoding="utf-8",
    )
    result = invoke("check", "-i", str(inventory), "-p", str(policy))
    assert result.exit_code in (1, 2)
    assert str(policy) in result.output
    assert "bit" in result.output
    assert _nobody_connected(listener)


def test_the_listener_does_see_a_connection(tmp_path: Path, listener: socket.socket) -> None:
    """Control for the test above: a check with a good policy does reach the listener."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "defaults": {
                    "transport": "tcp",
                    "username": "admin",
                    "password": "x",
                    "timeout": 0.3,
                    "connect_timeout": 0.3,
                },
                "hosts": {"watch-1": {"hostname": "127.0.0.1", "port": listener.getsockname()[1]}},
            }
        ),
        encoding="utf-8",
    )
    result = invoke("check", "-i", str(inventory))
    assert result.exit_code == 1
    assert not _nobody_connected(listener)


def test_malformed_inventory_names_file_host_and_field(fleet: Fleet, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    doc = yaml.safe_load(fleet.inventory.read_text(encoding="utf-8"))
    doc["hosts"]["nc-table-zh"]["prot"] = 22
    inventory.write_text(yaml.safe_dump(doc), encoding="utf-8")
    (tmp_path / "lab_known_hosts").write_text(
        (fleet.inventory.parent / "lab_known_hosts").read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = invoke("check", "-i", str(inventory))
    assert result.exit_code in (1, 2)
    assert str(inventory) in result.output.replace("\n", "")
    assert "nc-table-zh" in result.output
    assert "prot" in result.output


def test_missing_password_variable_is_named(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    result = invoke("check", "-i", str(fleet.inventory), "--limit", "ok-*")
    assert result.exit_code in (1, 2)
    assert PASSWORD_ENV in result.output
