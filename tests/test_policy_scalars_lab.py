"""On the lab: a device prints ``0x0010``; a policy's unquoted ``0x0010`` (16 to YAML) is
refused before anything is read, the quoted one matches; a policy made from the snapshot of a
node named ``on`` (true to YAML) loads back and holds on that node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import write_lab_inventory

from mml_tool.cli import cli
from mml_tool.lab.lab import PASSWORD_ENV, Lab
from mml_tool.lab.uap import NodeConfig
from mml_tool.policy import load_policy

PASSWORD = "S3cr3t-Scalars-7q"
HOST = "on"  # a host name YAML 1.1 reads as true when it stands alone


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    node = NodeConfig(HOST, layout="value", hex_line=True, params={"P978": 0x10, "P917": 0o10})
    workdir = tmp_path_factory.mktemp("scalars-lab")
    with Lab([node], workdir=workdir, password=PASSWORD, with_gateway=False) as running:
        yield running


@pytest.fixture
def inventory(lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv("MML_TOOL_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("MML_TOOL_LOCKS", str(tmp_path / "locks"))
    return write_lab_inventory(lab, timeout=5, connect_timeout=5)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "250"})


def hex_policy(path: Path, hex_value: str) -> Path:
    path.write_text(
        "policy: {name: hex, version: 1}\n"
        "controls:\n"
        "  - id: P978-HEX\n"
        "    title: P978 prints 0x0010\n"
        "    severity: low\n"
        "    rule:\n"
        "      command:\n"
        '        run: "LST SFP: ID=P978;"\n'
        "        match: {ID: P978}\n"
        f"        expect: {{HEX: {{equals: {hex_value}}}}}\n",
        encoding="utf-8",
    )
    return path


def test_a_hex_value_matches_as_written_once_quoted(inventory: Path, tmp_path: Path) -> None:
    bare = invoke("check", "-i", inventory, "-p", hex_policy(tmp_path / "bare.yaml", "0x0010"))
    assert bare.exit_code == 2, bare.output  # before: loaded as "16", a false FAIL (exit 100)
    assert "is written 0x0010 (line 10), which YAML reads as the number 16" in bare.output
    assert 'equals: "0x0010"' in bare.output
    quoted = hex_policy(tmp_path / "quoted.yaml", '"0x0010"')
    result = invoke("check", "-i", inventory, "-p", quoted)
    assert result.exit_code == 0, result.output


def test_a_policy_from_the_snapshot_of_a_node_named_on_holds_there(
    inventory: Path, tmp_path: Path
) -> None:
    snapshot = tmp_path / "golden.json"
    taken = invoke("snapshot", "-i", inventory, HOST, "-o", snapshot)
    assert taken.exit_code == 0, taken.output
    out = tmp_path / "policy.yaml"
    made = invoke("policy", "from-snapshot", snapshot, "--parameters", "P978,P917", "-o", out)
    assert made.exit_code == 0, made.output
    policy = load_policy(out)
    assert policy.name == f"baseline-{HOST}"
    assert [(c.id, c.rule.value) for c in policy.controls] == [  # type: ignore[union-attr]
        (f"BASELINE-{HOST}-P978", 16),
        (f"BASELINE-{HOST}-P917", 8),
    ]
    result = invoke("check", "-i", inventory, "-p", out, "--limit", HOST)
    assert result.exit_code == 0, result.output
