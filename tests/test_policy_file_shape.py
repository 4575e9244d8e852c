"""A policy file (-p) that is not a policy document: every command that takes -p refuses it as
a usage error (exit 2) naming the file and the shape expected, before connecting to a host."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mml_tool.cli import cli
from mml_tool.errors import PolicyError
from mml_tool.policy import load_policy

NOT_MAPPINGS = {
    "list": "- policy: x\n- controls: []\n",
    "text": "controls\n",
    "number": "42\n",
    "empty": "",
    "comments-only": "# the controls come later\n",
    "null": "null\n",
}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """The inventory's host: a socket that only listens, so that a connection attempt stays in
    its backlog and can be seen."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _inventory(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "hosts:\n"
        "  uap-1:\n"
        "    hostname: 127.0.0.1\n"
        f"    port: {port}\n"
        "    transport: tcp\n"
        "    username: admin\n"
        "    password: ${MML_LAB_PASSWORD}\n",
        encoding="utf-8",
    )
    return path


def _commands(tmp_path: Path, inventory: Path) -> dict[str, list[str]]:
    dummy = tmp_path / "dummy.json"  # never read: the policy is refused first
    dummy.write_text("{}", encoding="utf-8")
    inv = ["-i", str(inventory)]
    return {
        "check": ["check", *inv],
        "plan": ["plan", *inv, "-o", str(tmp_path / "plan.json"), "--change-id", "CHG1"],
        "apply": ["apply", str(dummy), *inv, "--yes"],
        "rollback": ["rollback", str(dummy), *inv, "--yes"],
        "run": ["run", *inv, "--change-id", "CHG1", "--yes", "--evidence", str(tmp_path / "ev")],
        "watch": ["watch", *inv, "--rounds", "1"],
    }


@pytest.mark.parametrize("shape", list(NOT_MAPPINGS))
def test_a_policy_that_is_not_a_mapping_is_a_usage_error_of_every_command(
    shape: str, tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MML_LAB_PASSWORD", "not-used-1")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    policy = tmp_path / f"{shape}.yaml"
    policy.write_text(NOT_MAPPINGS[shape], encoding="utf-8")
    inventory = _inventory(tmp_path, listener.getsockname()[1])
    for name, args in _commands(tmp_path, inventory).items():
        result: Result = CliRunner().invoke(cli, [*args, "-p", str(policy)])
        assert result.exit_code == 2, (name, result.output)
        assert isinstance(result.exception, SystemExit), (name, result.exception)
        assert str(policy) in result.output, (name, result.output)
        assert "mapping" in result.output and "controls:" in result.output, (name, result.output)
        with pytest.raises(BlockingIOError):  # nothing connected to the host
            listener.accept()
    assert not (tmp_path / "plan.json").exists() and not (tmp_path / "ev").exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [("42\n", "a whole number"), ("1.5\n", "a number"), ("true\n", "a boolean")],
)
def test_the_shape_is_said_in_words(text: str, words: str, tmp_path: Path) -> None:
    """Not "the file is a int": a Python type name is not what the author wrote."""
    policy = tmp_path / "p.yaml"
    policy.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=f"the file is {words}, not a policy"):
        load_policy(policy)
