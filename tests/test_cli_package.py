"""The command-line package itself: commands load lazily, the --help summaries are the
commands' own, environment variables are visible options, the gateway is picked clearly."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from conftest import StartLab, lab_env

import mml_tool as mt
from mml_tool.cli import cli
from mml_tool.cli.app import COMMANDS
from mml_tool.errors import ConfigError
from mml_tool.gateway.pick import pick_gateway
from mml_tool.inventory import load_inventory


def test_help_imports_no_command_and_no_protocol() -> None:
    code = (
        "import sys\n"
        "from mml_tool.cli import cli\n"
        "cli.main(['--help'], prog_name='mml-tool', standalone_mode=False)\n"
        "print('LOADED', ' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "Commands:" in out
    loaded = set(out.split("LOADED", 1)[1].split())
    commands = {f"mml_tool.cli.{module}" for module, _, _ in COMMANDS.values()}
    assert not loaded & commands
    assert not loaded & {"paramiko", "mml_tool.change", "mml_tool.check", "mml_tool.lab.lab"}


def test_start_up_is_frozen_and_the_gc_runs_after_it() -> None:
    """Issue 14: what loading a command made is frozen out of the cyclic GC (~40 ms of CPU per
    process, most at exit); the GC is back on for the command's own work. A host program
    calling the click group itself (a test runner, a script) is left alone."""
    code = (
        "import atexit, gc, sys\n"
        "from mml_tool.cli import cli, main\n"
        "cli.main(['schema', 'policy'], prog_name='mml-tool', standalone_mode=False)\n"
        "print('HOST', gc.isenabled(), gc.get_freeze_count())\n"
        "atexit.register(lambda: print('MAIN', gc.isenabled(), gc.get_freeze_count()))\n"
        "main(['policy', '--help'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    enabled, frozen = out.split("HOST", 1)[1].split()[:2]
    assert enabled == "True" and int(frozen) == 0
    enabled, frozen = out.split("MAIN", 1)[1].split()[:2]
    assert enabled == "True" and int(frozen) > 10_000


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_summary_is_the_commands_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None and command.name == name
    assert (command.help or "").strip().splitlines()[0] == COMMANDS[name][2]


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["chek"])
    assert result.exit_code == 2
    assert "No such command 'chek'" in result.output


@pytest.mark.parametrize(
    ("args", "variables"),
    [
        ([], ["MML_TOOL_TEMPLATES", "MML_TOOL_OPERATOR"]),
        (["apply"], ["MML_TOOL_AUDIT", "MML_TOOL_LOCKS"]),
        (["rollback"], ["MML_TOOL_AUDIT", "MML_TOOL_LOCKS"]),
        (["exec"], ["MML_TOOL_AUDIT", "MML_TOOL_LOCKS"]),
        (["run"], ["MML_TOOL_AUDIT", "MML_TOOL_LOCKS"]),
    ],
)
def test_environment_variables_are_shown_in_help(args: list[str], variables: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # help is wrapped at the terminal width
    for variable in variables:
        assert f"env var: {variable}" in text


def test_templates_from_the_environment_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = CliRunner().invoke(
        cli, ["parse", "-"], input="", env={"MML_TOOL_TEMPLATES": str(missing)}
    )
    assert result.exit_code == 2
    assert str(missing) in result.output


def _inventory(tmp_path: Path, gateways: list[str], host_gateway: str | None) -> Path:
    gateway = {
        "url": "https://127.0.0.1:8043",
        "agent_id": "101",
        "agent_password": "${NOT_READ}",
        "phone_number": "40038",
        "called": "40040",
        "skill_id": 25,
    }
    host: dict[str, object] = {"hostname": "127.0.0.1", "username": "u", "password": "${NOT_READ}"}
    if host_gateway:
        host["gateway"] = host_gateway
    doc = {"hosts": {"uap-1": host}, "gateways": {name: gateway for name in gateways}}
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_pick_gateway_the_only_one_named_or_the_hosts(tmp_path: Path) -> None:
    one = load_inventory(_inventory(tmp_path, ["gw-a"], None), resolve_secrets=False)
    assert pick_gateway(one) == "gw-a"
    two = load_inventory(_inventory(tmp_path, ["gw-a", "gw-b"], "gw-b"), resolve_secrets=False)
    assert pick_gateway(two, host="uap-1") == "gw-b"
    assert pick_gateway(two, gateway="gw-a") == "gw-a"
    with pytest.raises(ConfigError, match=r"2 gateways \(gw-a, gw-b\): pick one with --gateway"):
        pick_gateway(two)
    with pytest.raises(ConfigError, match="not both"):
        pick_gateway(two, gateway="gw-a", host="uap-1")
    with pytest.raises(ConfigError, match="no gateway 'gw-c' in"):
        pick_gateway(two, gateway="gw-c")
    with pytest.raises(ConfigError, match="no host 'uap-9' in"):
        pick_gateway(two, host="uap-9")


def test_verify_without_a_gateway_choice_is_a_usage_error_before_any_secret(
    tmp_path: Path,
) -> None:
    path = _inventory(tmp_path, ["gw-a", "gw-b"], None)
    result = CliRunner().invoke(cli, ["verify", "-i", str(path)], env={"NOT_READ": None})
    assert result.exit_code == 2
    assert "pick one with --gateway NAME or --host UAP-HOST" in result.output
    result = CliRunner().invoke(cli, ["verify", "-i", str(path), "--host", "uap-1"])
    assert result.exit_code == 2
    assert "host 'uap-1' names no `gateway:`" in result.output


def test_cli_modules_import_at_the_top() -> None:
    """Imports inside functions hide real types from strict mypy (they were `Any`)."""
    folder = Path(__file__).parent.parent / "mml_tool" / "cli"
    inside: list[str] = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inside += [
                    f"{path.name}:{n.lineno}"
                    for n in ast.walk(node)
                    if isinstance(n, ast.Import | ast.ImportFrom)
                ]
    assert inside == []


@pytest.mark.parametrize("no_history", [False, True])
def test_check_imports_nothing_it_does_not_use(start_lab: StartLab, no_history: bool) -> None:
    """Issue 14: `check`'s start-up is part of its cost at fleet scale; the change runner and
    journal, the gateway client (httpx) and the policy's pydantic models (the built-in policy's
    shape is tested below) stay unloaded, while the check itself is real. With --no-history
    nothing of the history store (SQLAlchemy) or the metrics file is loaded either."""
    running = start_lab(1)
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('LOADED', ' '.join(sorted(sys.modules))))\n"
        "from mml_tool.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, **lab_env(running.inventory_path)}
    done = subprocess.run(
        [sys.executable, "-c", code, "check", "-i", str(running.inventory_path)]
        + (["--no-history"] if no_history else []),
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 100, done.stderr  # the lab's node is non-compliant: it was read
    loaded = set(done.stdout.split("LOADED", 1)[1].split())
    # The SSH layer is libssh2's; paramiko (~80 ms of imports) only reads key files.
    assert "ssh2.session" in loaded and "textfsm" in loaded and "paramiko" not in loaded
    unused = {
        "httpx",
        "mml_tool.change.runner",
        "mml_tool.change.steps",
        "mml_tool.change.record",
        "mml_tool.change.plan",  # plan, approval, audit, locks: commands that change hosts
        "mml_tool.change.approval",
        "mml_tool.change.lock",
        "mml_tool.audit",
        "mml_tool.report.junit",  # the report writers, for --report only
        "mml_tool.report.markdown",
        "mml_tool.gateway.client",
        "mml_tool.gateway.verify",
        "mml_tool.policy.schema",
        "mml_tool.inventory.schema",  # a well-formed inventory is checked without pydantic
        "pydantic",
    }
    if no_history:
        unused |= {"sqlalchemy", "mml_tool.history.store", "mml_tool.metrics", "prometheus_client"}
    assert not loaded & unused


def test_check_records_its_history_without_sqlalchemy(start_lab: StartLab, tmp_path: Path) -> None:
    """Issue 14: importing SQLAlchemy costs ~0.2 s of CPU per check. Into an SQLite store at
    the current schema version (every run but a store's first) a check records its run, and
    compares with the previous one, with sqlite3 alone; --no-history with $MML_TOOL_HISTORY
    set to a file loads nothing of it either."""
    running = start_lab(1)
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('LOADED', ' '.join(sorted(sys.modules))))\n"
        "from mml_tool.cli import main\n"
        "main()\n"
    )
    store = tmp_path / "h.sqlite"
    env = {**os.environ, **lab_env(running.inventory_path), "MML_TOOL_HISTORY": str(store)}

    def check(*args: str) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-c", code, "check", "-i", str(running.inventory_path), *args],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 100, done.stderr
        assert "history not recorded" not in done.stderr
        return set(done.stdout.split("LOADED", 1)[1].split())

    assert "sqlalchemy" in check()  # the store's first run creates it
    loaded = check("--report", f"json:{tmp_path / 'r.json'}")
    assert not loaded & {"sqlalchemy", "mml_tool.history.store", "mml_tool.history.schema"}
    assert "mml_tool.history.lite" in loaded
    since = json.loads((tmp_path / "r.json").read_text())["since_last"]
    assert since["previous_run"] == 1  # recorded as run 2, compared with run 1
    assert "sqlalchemy" not in check("--no-history")


def test_the_built_in_policy_has_the_models_shape() -> None:
    """`load_policy()` skips the pydantic shape check for the built-in file; this is it."""
    from importlib import resources

    from mml_tool.policy.loader import BUILTIN_POLICY
    from mml_tool.policy.schema import shape_error

    text = resources.files("mml_tool").joinpath("policies").joinpath(BUILTIN_POLICY).read_text()
    assert shape_error(yaml.safe_load(text)) is None


def test_the_api_chooses_the_gateway_by_the_same_rule_in_its_own_words(tmp_path: Path) -> None:
    two = load_inventory(_inventory(tmp_path, ["gw-a", "gw-b"], None), resolve_secrets=False)
    with pytest.raises(ConfigError, match="pick one with gateway= NAME or host= UAP-HOST"):
        mt.verify(two)
    with pytest.raises(ConfigError, match="give gateway= or host=, not both"):
        mt.verify(two, gateway="gw-a", host="uap-1")
    with pytest.raises(ConfigError, match="host 'uap-1' names no `gateway:`"):
        mt.verify(two, host="uap-1")
