"""Honest results and a command line that respects its user (issue 8, and issue 7 part 8):
reports count what happened and say why, waivers are visible, one exit-code contract, usage
errors before anything is sent, only the secrets a command uses, output for pipes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import lab_env

from mml_tool.audit import AuditTrail
from mml_tool.cli import cli
from mml_tool.errors import InventoryError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import AGENT_PASSWORD_ENV, PASSWORD_ENV, Lab
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.policy import load_policy
from mml_tool.workflow import run_change

START = {"uap-1": 1, "uap-2": 0, "uap-10": 0, "refused": 1}


@pytest.fixture(scope="module")
def hlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("honest-lab")
    nodes = [
        NodeConfig("uap-1", layout="table"),
        NodeConfig("uap-2", layout="vertical", language="zh"),
        NodeConfig("uap-10", layout="value"),
        NodeConfig("refused", faults=FaultConfig(login_refused=True)),
    ]
    with Lab(nodes, workdir=workdir, password="H0nest-Lab-Pass", with_gateway=True) as lab:
        path = lab.write_inventory(workdir / "inventory.yaml")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["defaults"].update(timeout=3, connect_timeout=3)
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        yield lab, path, lab_env(path)


@pytest.fixture
def lab_inv(
    hlab: tuple[Lab, Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Lab, Path]:
    lab, path, env = hlab
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MML_TOOL_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("MML_TOOL_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setenv("MML_TOOL_OPERATOR", "op-carol")
    for name, value in START.items():
        lab.node(name).store.set_value("P978", value)
    return lab, path


def invoke(*args: str | Path, input: str | None = None, columns: int | None = 250) -> Result:
    env = {"COLUMNS": str(columns)} if columns else {"COLUMNS": None}
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input)


def p978(lab: Lab) -> dict[str, int | None]:
    return {name: lab.node(name).store.get("P978") for name in START}


# -- reports count what happened and say why ----------------------------------------------------


def test_verify_reports_one_testcase_per_direction(
    lab_inv: tuple[Lab, Path], tmp_path: Path
) -> None:
    _, inv = lab_inv
    spec = f"junit:{tmp_path}/v.xml,md:{tmp_path}/v.md,json:{tmp_path}/v.json"
    result = invoke("verify", "-i", inv, "--gateway", "gw-uap-1", "--report", spec)
    assert result.exit_code == 101, result.output
    suite = ET.parse(tmp_path / "v.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")
    names = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert names == [("gw-uap-1", "videoDirection 1"), ("gw-uap-1", "videoDirection 2")]
    md = (tmp_path / "v.md").read_text()
    head = "\n".join(md.splitlines()[:4])
    assert "VERIFICATION FAILED" in head and "0 pass, 0 fail" not in md
    assert "op-carol" in md
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["run"]["operator"] == "op-carol"
    assert (data["outcome"]["result"], data["outcome"]["exit_code"]) == ("verification failed", 101)


def test_check_markdown_says_why_and_who(lab_inv: tuple[Lab, Path], tmp_path: Path) -> None:
    _, inv = lab_inv
    spec = f"md:{tmp_path}/c.md,json:{tmp_path}/c.json,junit:{tmp_path}/c.xml"
    result = invoke("check", "-i", inv, "--report", spec)
    assert result.exit_code == 1, result.output
    md = (tmp_path / "c.md").read_text()
    assert "NOT DECIDED" in "\n".join(md.splitlines()[:4])
    # The reason is on the error's own row, in plain text (not only inside <details>).
    row = next(line for line in md.splitlines() if line.startswith("| refused |"))
    assert "error" in row and "login" in row.lower()
    assert "op-carol" in md
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["run"]["operator"] == "op-carol"
    assert data["outcome"]["exit_code"] == 1


def test_apply_and_rollback_report_one_testcase_per_step(
    lab_inv: tuple[Lab, Path], tmp_path: Path
) -> None:
    lab, inv = lab_inv
    plan = tmp_path / "plan.json"
    assert invoke("plan", "-i", inv, "--limit", "uap-*", "-o", plan).exit_code == 0
    spec = f"junit:{tmp_path}/a.xml,md:{tmp_path}/a.md,json:{tmp_path}/a.json"
    result = invoke("apply", plan, "-i", inv, "--yes", "--report", spec)
    assert result.exit_code == 0, result.output
    suite = ET.parse(tmp_path / "a.xml").getroot()
    assert suite.get("name") == "mml-tool apply"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    assert [c.get("classname") for c in suite.iter("testcase")] == ["uap-1"]
    md = (tmp_path / "a.md").read_text()
    assert "DONE" in "\n".join(md.splitlines()[:4]) and "op-carol" in md
    assert json.loads((tmp_path / "a.json").read_text())["run"]["operator"] == "op-carol"
    record = tmp_path / "plan.record.json"
    spec = f"junit:{tmp_path}/r.xml,json:{tmp_path}/r.json"
    result = invoke("rollback", record, "-i", inv, "--yes", "--report", spec)
    assert result.exit_code == 0, result.output
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert (suite.get("name"), suite.get("tests")) == ("mml-tool rollback", "1")
    assert p978(lab)["uap-1"] == 1


# -- nothing evaluated is not compliant ---------------------------------------------------------


def _inventory(tmp_path: Path, hosts: dict[str, object], groups: object = None) -> Path:
    path = tmp_path / "inv.yaml"
    doc: dict[str, object] = {"defaults": {"username": "u", "password": "p"}, "hosts": hosts}
    if groups is not None:
        doc["groups"] = groups
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_empty_inventory_checks_nothing_and_says_so(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, {})
    result = invoke("check", "-i", inv, "--report", f"junit:{tmp_path}/j.xml,md:{tmp_path}/c.md")
    assert result.exit_code == 1
    assert "nothing was checked" in result.output
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert suite.get("tests") != "0" and suite.get("errors") == "1"
    assert "NOTHING CHECKED" in (tmp_path / "c.md").read_text()


def test_limit_that_selects_nothing_is_not_compliant(tmp_path: Path) -> None:
    # A group with no members: the --limit names something, but selects no host.
    inv = _inventory(tmp_path, {"uap-1": {"hostname": "127.0.0.1"}}, {"empty": {"vars": {}}})
    result = invoke("check", "-i", inv, "--limit", "empty")
    assert result.exit_code == 1
    assert "nothing was checked" in result.output
    result = invoke("plan", "-i", inv, "--limit", "empty", "-o", tmp_path / "p.json")
    assert result.exit_code == 1 and "nothing was checked" in result.output
    assert not (tmp_path / "p.json").exists()


def test_policy_whose_controls_target_no_host(lab_inv: tuple[Lab, Path], tmp_path: Path) -> None:
    _, inv = lab_inv
    policy = tmp_path / "policy.yaml"
    policy.write_text(_policy(targets={"groups": ["nobody"]}), encoding="utf-8")
    result = invoke("check", "-i", inv, "-p", policy, "--report", f"json:{tmp_path}/c.json")
    assert result.exit_code == 1
    assert "nothing was checked" in result.output
    assert json.loads((tmp_path / "c.json").read_text())["outcome"]["result"] == "nothing checked"


def _policy(targets: dict[str, object] | None = None, waivers: object = ()) -> str:
    control: dict[str, object] = {
        "id": "P978-B0",
        "title": "P978 bit 0 is 0",
        "severity": "high",
        "rule": {"software_parameter": {"id": "P978", "bit": 0, "value": 0}},
    }
    if targets:
        control["targets"] = targets
    doc = {"policy": {"name": "p"}, "controls": [control], "waivers": list(waivers)}
    return yaml.safe_dump(doc)


# -- waivers are visible ------------------------------------------------------------------------


def test_expired_waiver_is_said_on_its_row(lab_inv: tuple[Lab, Path], tmp_path: Path) -> None:
    _, inv = lab_inv
    policy = tmp_path / "policy.yaml"
    waiver = {"host": "uap-1", "control": "P978-B0", "reason": "CHG-7", "expires": "2020-01-01"}
    policy.write_text(_policy(waivers=[waiver]), encoding="utf-8")
    spec = f"md:{tmp_path}/c.md,json:{tmp_path}/c.json"
    result = invoke("check", "-i", inv, "-p", policy, "--limit", "uap-1", "--report", spec)
    assert result.exit_code == 100
    assert "waiver expired on 2020-01-01" in result.output
    row = next(x for x in (tmp_path / "c.md").read_text().splitlines() if x.startswith("| uap-1"))
    assert "waiver expired on 2020-01-01" in row
    (res,) = json.loads((tmp_path / "c.json").read_text())["results"]
    assert any("waiver expired on 2020-01-01" in note for note in res["notes"])


def test_waiver_for_an_unknown_host_is_a_warning(lab_inv: tuple[Lab, Path], tmp_path: Path) -> None:
    _, inv = lab_inv
    policy = tmp_path / "policy.yaml"
    waiver = {"host": "uap-99", "control": "P978-B0", "reason": "x", "expires": "2999-01-01"}
    policy.write_text(_policy(waivers=[waiver]), encoding="utf-8")
    spec = f"json:{tmp_path}/c.json"
    result = invoke("check", "-i", inv, "-p", policy, "--limit", "uap-2", "--report", spec)
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr and "uap-99" in result.stderr
    warnings = json.loads((tmp_path / "c.json").read_text())["warnings"]
    assert any("uap-99" in w for w in warnings)


def test_waiver_for_an_unknown_control_is_a_warning(
    lab_inv: tuple[Lab, Path], tmp_path: Path
) -> None:
    """Like an unknown host: the policy loads, the waiver waives nothing, and it is named."""
    _, inv = lab_inv
    policy = tmp_path / "policy.yaml"
    waiver = {"host": "uap-2", "control": "P978-B9", "reason": "x", "expires": "2999-01-01"}
    policy.write_text(_policy(waivers=[waiver]), encoding="utf-8")
    spec = f"json:{tmp_path}/c.json,md:{tmp_path}/c.md"
    result = invoke("check", "-i", inv, "-p", policy, "--limit", "uap-2", "--report", spec)
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr and "'P978-B9'" in result.stderr
    assert "'uap-2'" in result.stderr  # the waiver, by its host
    warnings = json.loads((tmp_path / "c.json").read_text())["warnings"]
    assert any("'P978-B9'" in w and "not in the policy" in w for w in warnings)
    assert "P978-B9" in (tmp_path / "c.md").read_text()


# -- one exit-code contract; usage errors before anything is sent -------------------------------


def test_unknown_limit_host_is_a_usage_error(lab_inv: tuple[Lab, Path]) -> None:
    _, inv = lab_inv
    result = invoke("check", "-i", inv, "--limit", "uap-99")
    assert result.exit_code == 2 and "uap-99" in result.output


@pytest.mark.parametrize("spec", ["htm:x", "json:a.json, md:b.md", "json:a.json,,md:b.md", "md:"])
def test_bad_report_spec_is_found_before_apply_sends_anything(
    lab_inv: tuple[Lab, Path], tmp_path: Path, spec: str
) -> None:
    lab, inv = lab_inv
    plan = tmp_path / "plan.json"
    assert invoke("plan", "-i", inv, "--limit", "uap-1", "-o", plan).exit_code == 0
    result = invoke("apply", plan, "-i", inv, "--yes", "--report", spec)
    assert result.exit_code == 2, result.output
    assert p978(lab)["uap-1"] == 1
    assert not (tmp_path / "audit.jsonl").exists()
    assert not (tmp_path / "plan.record.json").exists()


@pytest.mark.parametrize("command", ["check", "verify"])
def test_bad_report_spec_is_a_usage_error(
    lab_inv: tuple[Lab, Path], tmp_path: Path, command: str
) -> None:
    _, inv = lab_inv
    extra = ["--gateway", "gw-uap-2"] if command == "verify" else []
    result = invoke(command, "-i", inv, *extra, "--report", "json:a b.json")
    assert "a b.json" in result.output
    assert result.exit_code == 2, result.output


def test_run_not_approved_is_not_non_compliant(lab_inv: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, inv = lab_inv
    inventory = load_inventory(inv)
    outcome = run_change(
        inventory,
        load_policy(None),
        inventory.select("uap-1"),
        change_id="CHG-9",
        evidence=tmp_path / "ev",
        approve=lambda plan: False,
        audit=AuditTrail(tmp_path / "audit.jsonl"),
        lock_dir=tmp_path / "locks",
    )
    assert outcome.exit_code == 1  # 100 means non-compliant, not "not approved"
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["outcome"]["result"] == "not approved"
    assert report["verification"]["notes"] == ["plan not approved: nothing was sent"]
    assert p978(lab)["uap-1"] == 1
    assert not (tmp_path / "audit.jsonl").exists()


# -- ask only for what is needed ----------------------------------------------------------------


def test_check_does_not_need_the_gateway_password(
    lab_inv: tuple[Lab, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, inv = lab_inv
    monkeypatch.delenv(AGENT_PASSWORD_ENV)
    result = invoke("check", "-i", inv, "--limit", "uap-2")
    assert result.exit_code == 0, result.output


def test_verify_does_not_need_the_mml_password(
    lab_inv: tuple[Lab, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, inv = lab_inv
    monkeypatch.delenv(PASSWORD_ENV)
    lab.node("uap-2").store.set_value("P978", 0)
    result = invoke("verify", "-i", inv, "--gateway", "gw-uap-2")
    assert result.exit_code == 0, result.output


def test_run_names_every_missing_secret_at_once(
    lab_inv: tuple[Lab, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, inv = lab_inv
    monkeypatch.delenv(PASSWORD_ENV)
    monkeypatch.delenv(AGENT_PASSWORD_ENV)
    result = invoke("run", "-i", inv, "--change-id", "C1", "--limit", "uap-1", "--yes",
                    "--evidence", tmp_path / "ev")  # fmt: skip
    assert result.exit_code == 2  # an inventory error: usage, before anything is connected
    assert PASSWORD_ENV in result.output and AGENT_PASSWORD_ENV in result.output
    assert p978(lab)["uap-1"] == 1


# -- output people and machines can use ---------------------------------------------------------


def test_report_to_stdout_is_alone_on_stdout(lab_inv: tuple[Lab, Path]) -> None:
    _, inv = lab_inv
    result = invoke("check", "-i", inv, "--limit", "uap-1,uap-2", "--report", "json:-")
    assert result.exit_code == 100
    data = json.loads(result.stdout)  # nothing else on stdout
    assert [r["host"] for r in data["results"]] == ["uap-1", "uap-2"]
    assert "uap-1" in result.stderr  # the table went to stderr


def test_junit_and_markdown_to_stdout(lab_inv: tuple[Lab, Path]) -> None:
    _, inv = lab_inv
    result = invoke("check", "-i", inv, "--limit", "uap-2", "--report", "junit:-")
    assert result.exit_code == 0
    ET.fromstring(result.stdout)
    result = invoke("check", "-i", inv, "--limit", "uap-2", "--report", "md:-")
    assert result.stdout.startswith("# ")


def test_messages_are_not_hard_wrapped(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "inventory.yaml"
    deep.parent.mkdir(parents=True)
    deep.write_text(
        yaml.safe_dump({"hosts": {"h": {"hostname": "x", "username": "u",
                                        "password": "${SOME_UNSET_VARIABLE_X}"}}}),
        encoding="utf-8",
    )  # fmt: skip
    result = invoke("check", "-i", deep, columns=None)
    assert result.exit_code != 0
    line = next(x for x in result.stderr.splitlines() if "SOME_UNSET_VARIABLE_X" in x)
    assert str(deep) in line and "export SOME_UNSET_VARIABLE_X=" in line


def test_hosts_sort_naturally(lab_inv: tuple[Lab, Path], tmp_path: Path) -> None:
    _, inv = lab_inv
    spec = f"json:{tmp_path}/c.json"
    result = invoke("check", "-i", inv, "--limit", "uap-*", "--report", spec)
    out = result.stdout
    assert out.index("uap-2") < out.index("uap-10")
    hosts = [r["host"] for r in json.loads((tmp_path / "c.json").read_text())["results"]]
    assert hosts == ["uap-1", "uap-2", "uap-10"]


def test_verbose_after_the_subcommand(lab_inv: tuple[Lab, Path]) -> None:
    _, inv = lab_inv
    assert invoke("check", "-i", inv, "--limit", "uap-2", "-v").exit_code == 0
    assert invoke("check", "-vv", "-i", inv, "--limit", "uap-2").exit_code == 0


# Every command, present and future (listed without importing them: the group loads lazily).
@pytest.mark.parametrize("command", cli.list_commands(click.Context(cli)))
def test_every_help_has_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "mml-tool " + command in result.output.split("Example", 1)[-1]


# -- units: secrets on demand, report structure -------------------------------------------------


def test_with_secrets_reads_and_prompts_only_for_the_selection(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    doc = {
        "defaults": {"username": "u", "password": "${PW_ALL}"},
        "hosts": {
            "a": {"hostname": "127.0.0.1"},
            "b": {"hostname": "127.0.0.1", "password": None, "password_prompt": True},
            "c": {"hostname": "127.0.0.1", "password": "${PW_C}"},
        },
        "gateways": {
            "gw": {"url": "https://127.0.0.1:1", "agent_id": "1", "agent_password": "${GW_PW}",
                   "phone_number": "1", "called": "2", "skill_id": 1},
        },
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    asked: list[str] = []

    def prompt(label: str) -> str:
        asked.append(label)
        return "typed"

    inv = load_inventory(path, env={}, prompt=prompt, resolve_secrets=False)  # nothing read yet
    assert asked == []
    with pytest.raises(InventoryError) as info:
        inv.with_secrets(hosts=["a", "c"], gateways=["gw"])
    message = str(info.value)  # every missing secret, at once, one whole line each
    for name in ("PW_ALL", "PW_C", "GW_PW", "host 'a'", "host 'c'", "gateway 'gw'"):
        assert name in message
    assert asked == []
    resolved = inv.with_secrets(hosts=["b"])
    password = resolved.hosts["b"].password
    assert password is not None and password.reveal() == "typed" and len(asked) == 1
    env = {"PW_ALL": "x", "GW_PW": "y"}
    full = load_inventory(path, env=env, prompt=prompt, resolve_secrets=False)
    gw = full.with_secrets(gateways=["gw"]).gateways["gw"]
    assert gw.agent_password.reveal() == "y"


def test_junit_and_markdown_of_changes_and_directions() -> None:
    from mml_tool.report import Report, RunInfo, to_dict, to_junit, to_markdown

    info = RunInfo("run", "0", "p", "ab" * 32, "C1", "inv.yaml",
                   "2024-05-01T10:00:00+00:00", "2024-05-01T10:00:01+00:00", "op")  # fmt: skip
    changes = [
        {"host": "uap-10", "control": "C", "status": "changed", "before": 1, "after": 0,
         "commands": [], "rollback": [], "error": None, "action": "apply"},
        {"host": "uap-2", "control": "C", "status": "drifted", "before": 0, "after": None,
         "commands": [], "rollback": [], "error": "P978 changed since the plan",
         "action": "apply"},
    ]  # fmt: skip
    gateway = {"gateway": "gw-1", "agent_id": "101", "steps": [], "passed": False,
               "directions": [{"direction": 1, "ok": True, "reason": "reason 0"},
                              {"direction": 2, "ok": False, "reason": "retcode 1, not 0"}],
               "error": None, "cleanup_error": None, "status": "fail"}  # fmt: skip
    verification = {"status": "fail", "gateways": [gateway], "notes": ["n1"]}
    report = Report(info, [], changes=changes, verification=verification)
    suite = ET.fromstring(to_junit(report))
    cases = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert cases == [
        ("uap-2", "apply C"), ("uap-10", "apply C"),
        ("gw-1", "videoDirection 1"), ("gw-1", "videoDirection 2"),
    ]  # fmt: skip
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    md = to_markdown(report)
    assert md.splitlines()[2].startswith("**Outcome: INCOMPLETE** (exit code 1)")
    assert "P978 changed since the plan" in md.split("<details>")[0]
    assert "retcode 1, not 0" in md.split("<details>")[0]
    assert to_dict(report)["outcome"]["exit_code"] == 1


def test_junit_of_nothing_is_an_error_not_a_success() -> None:
    from mml_tool.report import Report, RunInfo, to_junit

    info = RunInfo("check", "0", "p", "", None, None, "t", "t")
    suite = ET.fromstring(to_junit(Report(info, [])))
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")


def test_natural_key() -> None:
    from mml_tool.report import natural_key

    names = ["uap-10", "uap-2", "uap-1b", "core", "uap-1", "uap-²"]
    assert sorted(names, key=natural_key) == ["core", "uap-1", "uap-1b", "uap-2", "uap-10", "uap-²"]


def test_with_secrets_for_an_unknown_host_is_a_clear_error(tmp_path: Path) -> None:
    path = _inventory(tmp_path, {"a": {"hostname": "127.0.0.1"}})
    inv = load_inventory(path, resolve_secrets=False)
    with pytest.raises(InventoryError, match="host 'zz': no such host"):
        inv.with_secrets(hosts=["zz"])


def test_an_unread_secret_is_never_sent_as_empty(tmp_path: Path) -> None:
    path = _inventory(tmp_path, {"a": {"hostname": "127.0.0.1"}})
    password = load_inventory(path, resolve_secrets=False).hosts["a"].password
    assert password is not None
    with pytest.raises(InventoryError, match="with_secrets"):
        password.reveal()
