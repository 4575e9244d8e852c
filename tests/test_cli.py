"""`mml-tool exec` and `parse`, and secrets kept out of everything check, plan, apply,
rollback and exec write."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import CommandEnv as Env
from conftest import invoke, module_lab, set_command_env, write_lab_inventory

from mml_tool import audit
from mml_tool.cli import cli, handle_sigterm
from mml_tool.lab.lab import Lab
from mml_tool.lab.uap import FaultConfig, NodeConfig

PASSWORD = "S3cr3t-Lab-Pass-9x"
READ = "LST SFP: ID=P978;"
MOD_0 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
SAMPLES = Path(__file__).parent / "templates" / "huawei_uap9600" / "lst_sfp"


def _nodes() -> list[NodeConfig]:
    return [
        NodeConfig("uap-1", layout="table", language="en"),
        NodeConfig("uap-2", layout="vertical", language="zh"),
        NodeConfig("uap-3", layout="value", language="en", params={"P978": 0}),
        NodeConfig(
            "drop-1", layout="value", language="zh", faults=FaultConfig(drop_after_mod=True)
        ),
        NodeConfig("garbage-1", faults=FaultConfig(garbage_reply="LST SFP")),
        NodeConfig("refused-1", faults=FaultConfig(login_refused=True)),
    ]


START = {"uap-1": 1, "uap-2": 1, "uap-3": 0, "drop-1": 1, "garbage-1": 1, "refused-1": 1}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from module_lab(tmp_path_factory, "cli-lab", _nodes(), PASSWORD)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=3, connect_timeout=3)


@pytest.fixture(autouse=True)
def env(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    for name, value in START.items():
        lab.node(name).store.set_value("P978", value)
    return set_command_env(monkeypatch, tmp_path, password=PASSWORD, operator="op-bob")


def p978(lab: Lab) -> dict[str, int | None]:
    return {name: lab.node(name).store.get("P978") for name in START}


# -- exec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "texts"),
    [
        ("uap-1", ["Parameter ID  Bit  Bit value", "P978          0    1"]),
        ("uap-2", ["操作成功", "P978"]),
        ("uap-3", ["Parameter value  =  0"]),
    ],
)
def test_exec_read_only_prints_the_frame(
    inventory: Path, env: Env, host: str, texts: list[str]
) -> None:
    result = invoke("exec", "-i", inventory, host, READ)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("+++")
    assert f"%%{READ}%%" in result.output
    assert result.output.rstrip().endswith("---    END")
    for text in texts:
        assert text in result.output
    assert not env.audit.exists()  # reads are not audited


def test_exec_json(inventory: Path) -> None:
    result = invoke("exec", "-i", inventory, "uap-1", "LST SFP: ID=P978, BIT=0;", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["host"], body["retcode"], body["message"]) == ("uap-1", 0, "Operation succeeded")
    assert body["command"] == "LST SFP: ID=P978, BIT=0;"
    (report,) = body["reports"]
    assert report["ne"] == "UAP-1"
    (block,) = report["blocks"]
    assert block["layout"] == "table"
    assert block["records"] == [{"Parameter ID": "P978", "Bit": "0", "Bit value": "1"}]


def test_exec_retcode_failure_exits_1(inventory: Path) -> None:
    result = invoke("exec", "-i", inventory, "uap-1", "LST SFP: ID=P999;", "--json")
    assert result.exit_code == 1
    assert json.loads(result.output)["retcode"] == 1006


@pytest.mark.parametrize("host", ["garbage-1", "refused-1"])
def test_exec_on_a_broken_host_exits_1(inventory: Path, host: str) -> None:
    result = invoke("exec", "-i", inventory, host, READ)
    assert result.exit_code == 1
    assert result.output.startswith("error:")
    assert host in result.output


def test_exec_write_refused_without_allow_write(lab: Lab, inventory: Path, env: Env) -> None:
    result = invoke("exec", "-i", inventory, "uap-1", MOD_0, "--yes")
    assert result.exit_code == 2
    assert "--allow-write" in result.output
    assert p978(lab) == START
    assert not env.audit.exists()


def test_exec_write_without_yes_and_without_terminal_refuses(
    lab: Lab, inventory: Path, env: Env
) -> None:
    result = invoke("exec", "-i", inventory, "uap-1", MOD_0, "--allow-write")
    assert result.exit_code == 1
    assert "--yes" in result.output
    assert p978(lab) == START
    assert not env.audit.exists()


def test_exec_write_is_audited(lab: Lab, inventory: Path, env: Env) -> None:
    result = invoke("exec", "-i", inventory, "uap-2", MOD_0, "--allow-write", "--yes")
    assert result.exit_code == 0, result.output
    assert p978(lab)["uap-2"] == 0
    records = audit.read(env.audit)
    assert [(r.action, r.host, r.command, r.outcome, r.retcode) for r in records] == [
        ("exec", "uap-2", MOD_0, "sending", None),
        ("exec", "uap-2", MOD_0, "ok", 0),
    ]
    assert {r.operator for r in records} == {"op-bob"}


def test_operator_and_lock_dir_options_win_over_the_environment(
    lab: Lab, inventory: Path, env: Env
) -> None:
    locks = env.tmp / "other-locks"
    result = invoke(
        "--operator", "op-dave", "exec", "-i", inventory, "uap-2", MOD_0,
        "--allow-write", "--yes", "--lock-dir", locks,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {r.operator for r in audit.read(env.audit)} == {"op-dave"}
    assert any(locks.iterdir())  # the host's lock was taken there, not in $MML_TOOL_LOCKS
    assert not (env.tmp / "locks").exists()


def test_exec_write_with_lost_reply_is_audited_as_unknown(
    lab: Lab, inventory: Path, env: Env
) -> None:
    transcript = env.tmp / "t.txt"
    result = invoke(
        "exec",
        "-i",
        inventory,
        "drop-1",
        MOD_0,
        "--allow-write",
        "--yes",
        "--transcript",
        transcript,
    )
    assert result.exit_code == 1  # the reply was lost: not a clean "done"
    assert "connection lost" in result.output
    assert p978(lab)["drop-1"] == 0  # it did take effect
    # "unknown" when the reply is lost, then settled by a fresh read in a session of its own,
    # as apply settles a lost reply: a third audit line says what the element holds now.
    records = audit.read(env.audit)
    assert [r.outcome for r in records] == ["sending", "unknown", "ok"]
    assert "settled by a fresh read: P978 bit 0 = 0, took effect" in records[-1].message
    assert "took effect" in result.output and "do not send it again" in result.output
    assert f">>> {MOD_0}" in transcript.read_text(encoding="utf-8")


def test_exec_write_with_unwritable_audit_sends_nothing(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    (env.tmp / "file").write_text("")  # a file where the trail's folder should be
    monkeypatch.setenv("MML_TOOL_AUDIT", str(env.tmp / "file" / "audit.jsonl"))
    result = invoke("exec", "-i", inventory, "uap-1", MOD_0, "--allow-write", "--yes")
    assert result.exit_code == 1
    assert "cannot write the audit trail" in result.output
    assert p978(lab) == START
    # $MML_TOOL_AUDIT is the --audit option's value: naming a folder is the same usage error.
    (env.tmp / "dir").mkdir()
    monkeypatch.setenv("MML_TOOL_AUDIT", str(env.tmp / "dir"))
    result = invoke("exec", "-i", inventory, "uap-1", MOD_0, "--allow-write", "--yes")
    assert result.exit_code == 2
    assert "MML_TOOL_AUDIT" in result.output or "--audit" in result.output
    assert p978(lab) == START


@pytest.mark.parametrize(
    "text",
    [
        f"{READ}MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;",
        f"{READ}\r\n{MOD_0}",
        'LST SFP: ID="P978;MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0";',
    ],
    ids=["two-commands", "crlf", "quoted"],
)
@pytest.mark.parametrize("allow_write", [False, True])
def test_exec_injection_is_refused_and_nothing_sent(
    lab: Lab, inventory: Path, env: Env, text: str, allow_write: bool
) -> None:
    extra = ["--allow-write", "--yes"] if allow_write else []
    result = invoke("exec", "-i", inventory, "uap-1", text, *extra)
    assert result.exit_code == 2  # a bad COMMAND value is a usage error
    assert result.output.startswith("error:") or "Error" in result.output
    assert p978(lab) == START
    assert not env.audit.exists()


def test_exec_host_must_name_one_host(inventory: Path) -> None:
    result = invoke("exec", "-i", inventory, "uap-*", READ)
    assert result.exit_code == 2
    assert "one host" in result.output


# -- parse ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sample", ["table_en", "table_zh", "vertical_en", "vertical_zh", "value_en", "value_zh"]
)
def test_parse_json_matches_the_sample(sample: str) -> None:
    raw = SAMPLES / f"{sample}.raw"
    expected = yaml.safe_load((SAMPLES / f"{sample}.yml").read_text(encoding="utf-8"))
    result = invoke("parse", "--command", READ, raw, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == expected["parsed_sample"]


def test_parse_table_and_stdin() -> None:
    raw = (SAMPLES / "table_en.raw").read_text(encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["parse", "--command", READ, "-"], input=raw, env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "BIT_VALUE" in result.output and "P978" in result.output


def test_parse_garbage_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.raw"
    # Text that rich would read as markup ([/] even crashed it) is printed as it is.
    bad.write_text("[/] not an MML reply [bold]x\n", encoding="utf-8")
    result = invoke("parse", "--command", READ, bad, "--json")
    assert result.exit_code == 1
    assert result.output.startswith("error:")
    assert "[/] not an MML reply [bold]x" in result.output


# -- secrets --------------------------------------------------------------------------------


def test_password_never_leaks(
    lab: Lab, inventory: Path, env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """check, plan, apply, rollback and exec (also failing ones) at -vv with DEBUG logging:
    the lab password is in no output, file or log record."""
    caplog.set_level(logging.DEBUG)
    out = env.tmp / "out"
    plan = out / "plan.json"
    reports = f"json:{out / 'r.json'},junit:{out / 'r.xml'},md:{out / 'r.md'}"
    apply_reports = f"json:{out / 'a.json'},md:{out / 'a.md'}"
    runs = [
        ("check", "-i", inventory, "--report", reports),
        ("plan", "-i", inventory, "--limit", "uap-*,drop-1", "-o", plan, "--change-id", "C1"),
        ("plan", "--show", plan),
        ("apply", plan, "-i", inventory, "--yes", "--report", apply_reports),
        ("rollback", out / "plan.record.json", "-i", inventory, "--yes"),
        ("exec", "-i", inventory, "uap-1", READ, "--transcript", out / "t1.txt"),
        ("exec", "-i", inventory, "uap-1", READ, "--json"),
        ("exec", "-i", inventory, "refused-1", READ, "--transcript", out / "t2.txt"),
        ("exec", "-i", inventory, "garbage-1", READ),
        ("exec", "-i", inventory, "drop-1", MOD_0, "--allow-write", "--yes"),
        ("exec", "-i", inventory, "uap-1", f'LGI: OP="admin", PWD="{PASSWORD}";', "--json"),
    ]
    codes = []
    for args in runs:
        result = invoke("-vv", *args)
        codes.append(result.exit_code)
        assert PASSWORD not in result.output, args
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
    assert codes[:5] == [1, 0, 0, 0, 0]  # check: refused-1 and garbage-1 cannot be decided
    assert p978(lab)["uap-1"] == 1 and p978(lab)["drop-1"] == 0
    files = [p for p in env.tmp.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    expected = {"r.json", "r.xml", "r.md", "plan.json", "plan.record.json"}
    expected |= {"plan.record.rollback.json", "a.json", "a.md", "t1.txt", "t2.txt"}
    assert expected | {"audit.jsonl"} <= names
    for path in files:
        assert PASSWORD not in path.read_text(encoding="utf-8", errors="replace"), path
    assert 'PWD="*****"' in (out / "t1.txt").read_text(encoding="utf-8")
    assert caplog.records
    for record in caplog.records:
        assert PASSWORD not in record.getMessage()
    assert PASSWORD not in caplog.text


def test_sigterm_is_handled_like_ctrl_c() -> None:
    """A scheduler's SIGTERM must run the same cleanup as Ctrl-C (sign-out, apply record)."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        handle_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_lost_write_exec_cannot_read_back_stays_unknown() -> None:
    """Only a one-bit MOD SFP (what apply sends) is read back; for any other write the user
    is told to read the setting before sending it again, and nothing more is audited."""
    from mml_tool.inventory import host_from_fields
    from mml_tool.mml.command import MmlCommand
    from mml_tool.oneshot import _settle

    fields = {
        "hostname": "127.0.0.1",
        "port": 9,
        "transport": "tcp",
        "username": "u",
        "password": "p",
    }
    host = host_from_fields("x", fields)
    recorded: list[object] = []
    for text in ("MOD SFP: ID=P978, MODTYPE=P2, VALUE=0;", "SET ALMLVL: ID=1, LVL=2;"):
        said = _settle(host, MmlCommand.parse(text), lambda *a: recorded.append(a), None)
        assert said == "it may have taken effect: read the setting back before sending it again"
    assert recorded == []
