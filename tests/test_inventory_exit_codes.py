"""A bad inventory is a usage error (exit 2) in every command, as a bad policy file is: it is
found before anything is connected to, and its message is the loader's, unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mml_tool.cli import cli
from mml_tool.errors import InventoryError
from mml_tool.inventory import load_inventory

READ = "LST SFP: ID=P978;"
UNSET = "MML_TEST_INVENTORY_UNSET_PW"
BROKEN = "hosts:\n  uap-1:\n    hostname: 127.0.0.1\n    prot: 22\n"
# Port 1: were anything connected to, the command would end in a connection error (exit 1).
NO_SECRET = (
    "defaults:\n  transport: tcp\nhosts:\n  uap-1:\n    hostname: 127.0.0.1\n    port: 1\n"
    f"    username: u\n    password: ${{{UNSET}}}\n"
)


# (diff reads its --baseline file first: a bad one is exit 2 too, naming that file)
ALL = ["check", "plan", "apply", "rollback", "run", "watch", "exec", "capture", "snapshot",
       "verify", "history"]  # fmt: skip


def commands(tmp: Path, inventory: Path) -> dict[str, list[str | Path]]:
    some_file = tmp / "some.json"
    some_file.write_text("{}")
    return {
        "check": ["check", "-i", inventory, "--no-history"],
        "plan": ["plan", "-i", inventory, "-o", tmp / "plan.json"],
        "apply": ["apply", some_file, "-i", inventory, "--yes", "--no-history"],
        "rollback": ["rollback", some_file, "-i", inventory, "--yes", "--no-history"],
        "run": [
            "run",
            "-i",
            inventory,
            "--change-id",
            "CHG-1",
            "--yes",
            "--evidence",
            tmp / "ev",
            "--no-history",
        ],
        "watch": ["watch", "-i", inventory, "--rounds", "1", "--no-history"],
        "exec": ["exec", "-i", inventory, "uap-1", READ],
        "capture": ["capture", "-i", inventory, "uap-1", READ, "-o", tmp / "cap"],
        "snapshot": ["snapshot", "-i", inventory, "uap-1", "-o", tmp / "s.json"],
        "verify": ["verify", "-i", inventory, "--no-history"],
        "history": ["history", "runs", "-i", inventory],
    }


def loader_message(inventory: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(InventoryError) as caught:
        loaded = load_inventory(inventory, env=env if env is not None else {})
        loaded.with_secrets(hosts=list(loaded.hosts))
    return str(caught.value)


@pytest.mark.parametrize("command", ALL)
def test_a_broken_inventory_exits_2_with_the_loaders_message(command: str, tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(BROKEN)
    result = CliRunner().invoke(cli, [str(a) for a in commands(tmp_path, inventory)[command]])
    assert result.exit_code == 2, result.output
    assert f"error: {loader_message(inventory)}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["check", "plan", "watch", "exec", "capture", "snapshot"])
def test_a_secret_that_cannot_be_read_exits_2_before_connecting(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(NO_SECRET)
    result = CliRunner().invoke(cli, [str(a) for a in commands(tmp_path, inventory)[command]])
    assert result.exit_code == 2, result.output
    assert f"error: {loader_message(inventory)}" in result.output
    assert f"export {UNSET}=..." in result.output


def test_run_for_a_host_without_a_gateway_exits_2(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(NO_SECRET.replace(f"${{{UNSET}}}", "${MML_LAB_PASSWORD:-x}"))
    result = CliRunner().invoke(cli, [str(a) for a in commands(tmp_path, inventory)["run"]])
    assert result.exit_code == 2, result.output
    assert "host(s) uap-1 name no `gateway`" in result.output
