"""A value whose explicit YAML tag it does not fit (``!!int x``, ``!!bool maybe``,
``!!timestamp soon``): PyYAML's constructor raises ValueError, KeyError or AttributeError
there, not a YAMLError. The inventory and policy loaders must still give their usage error
naming file, line and tag (exit 2), never a traceback, and never the value (it may be a
password written out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mml_tool.cli import cli

SECRET = "pw-Tagged-secret-1234"
TAGGED = ["!!int", "!!float", "!!bool", "!!timestamp"]

POLICY = """\
policy: {{name: tagged, version: "1"}}
controls:
  - id: C1
    title: t
    severity: low
    rule:
      software_parameter: {{id: P978, bit: 0, value: {tag} {value}}}
"""

INVENTORY = """\
hosts:
  uap-1:
    hostname: 127.0.0.1
    username: op
    password: {tag} {value}
"""


@pytest.mark.parametrize("tag", TAGGED)
@pytest.mark.parametrize("kind", ["inventory", "policy"])
def test_a_value_its_tag_does_not_fit_is_a_usage_error_naming_the_line(
    kind: str, tag: str, tmp_path: Path
) -> None:
    inventory, policy = tmp_path / "inv.yaml", tmp_path / "pol.yaml"
    inventory.write_text(INVENTORY.format(tag="", value="${MML_PW}"), encoding="utf-8")
    policy.write_text(POLICY.format(tag="", value="0"), encoding="utf-8")
    bad = inventory if kind == "inventory" else policy
    template = INVENTORY if kind == "inventory" else POLICY
    bad.write_text(template.format(tag=tag, value=SECRET), encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["check", "-i", str(inventory), "-p", str(policy)], env={"MML_PW": "x"}
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    line = 5 if kind == "inventory" else 7
    assert str(bad) in result.stderr and f"line {line}" in result.stderr, result.stderr
    assert tag in result.stderr, result.stderr
    assert SECRET not in result.output + result.stderr
