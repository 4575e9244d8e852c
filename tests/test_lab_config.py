"""LAB.yaml validation by the pydantic models of ``mml_tool.lab.config``: our messages (file,
node, field, "did you mean"), never pydantic's texts or the values it quotes."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from mml_tool.errors import ConfigError
from mml_tool.lab.config import FaultSettings, NodeSettings, load_lab_config
from mml_tool.lab.uap import FaultConfig, NodeConfig

VALUE = "Zq-only-in-the-file-91"  # a value that must not be quoted back


def _load(tmp_path: Path, text: str) -> str:
    path = tmp_path / "LAB.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_lab_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "pydantic" not in message and "validation error" not in message, message
    assert VALUE not in message, message
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "nodes:\n  uap-1: {layuot: table}\n",
            "node uap-1: unknown field 'layuot' (did you mean 'layout'?)",
        ),
        (
            "nodes:\n  uap-1: {faults: {lateny: 1}}\n",
            "node uap-1: unknown field 'faults.lateny' (did you mean 'latency'?)",
        ),
        (
            "defaults: {pagesize: 3}\nnodes: {uap-1: {}}\n",
            "node defaults: unknown field 'pagesize' (did you mean 'page_size'?)",
        ),
        (
            f"nodes:\n  uap-1: {{hex_line: {VALUE}}}\n",
            "node uap-1: hex_line must be true or false, not str",
        ),
        (
            f"nodes:\n  uap-1: {{page_size: {VALUE}}}\n",
            "node uap-1: page_size must be an integer, not str",
        ),
        (
            f"nodes:\n  uap-1: {{faults: {{latency: {VALUE}}}}}\n",
            "node uap-1: faults.latency must be a number, not str",
        ),
        ("nodes:\n  uap-1: {faults: [latency]}\n", "node uap-1: 'faults' must be a mapping"),
        (
            "nodes:\n  uap-1: {params: [P978]}\n",
            "node uap-1: params must be a mapping like {P978: 1}, not list",
        ),
        (
            "nodes:\n  uap-1: {state_file: [a]}\n",
            "node uap-1: state_file must be a string (a path, as text), not list",
        ),
        (
            "nodes:\n  uap-1: {authorized_keys: [1]}\n",
            "node uap-1: authorized_keys.0 must be a string, not int",
        ),
        ("nodes:\n  uap-1: [a]\n", "node uap-1: settings must be a mapping"),
        ("nodes: []\n", "'nodes' must be a non-empty mapping of node name -> settings"),
        ("nodes: {}\n", "'nodes' must be a non-empty mapping of node name -> settings"),
        ("defaults: {}\n", "'nodes' must be a non-empty mapping of node name -> settings"),
        ("defaults: [a]\nnodes: {uap-1: {}}\n", "'defaults' must be a mapping"),
        (
            "nodes: {uap-1: {}}\nnoeds: {}\n",
            "unknown top-level field 'noeds' (expected defaults, nodes, gateway)",
        ),
        ("- a\n", "expected a mapping with 'nodes:'"),
    ],
)
def test_a_bad_lab_file_is_named_in_our_words(tmp_path: Path, text: str, expected: str) -> None:
    assert _load(tmp_path, text) == expected


def test_value_checks_stay_with_the_node_config(tmp_path: Path) -> None:
    # the models check shapes; NodeConfig checks values, for files and code alike
    message = _load(tmp_path, "nodes:\n  uap-1: {params: {P978: 70000}}\n")
    assert message == "node uap-1: node uap-1: P978 must be in 0..65535"
    message = _load(tmp_path, "nodes:\n  uap-1: {faults: {latency: -1}}\n")
    assert message == "node uap-1: faults.latency must be >= 0 seconds"


def test_a_good_file_resolves_as_before(tmp_path: Path) -> None:
    path = tmp_path / "LAB.yaml"
    path.write_text(
        "defaults: {layout: value, hex_line: true, faults: {alarms: true}}\n"
        "nodes:\n  1: {meid: 7, ne_name: null}\n  uap-2: {faults: {latency: 0}, serial_start: 5}\n",
        encoding="utf-8",
    )
    one, two = load_lab_config(path)
    assert (one.name, one.ne_name, one.meid, one.layout, one.hex_line) == (
        "1",
        "1",
        7,
        "value",
        True,
    )
    assert one.faults == FaultConfig(alarms=True)
    assert (two.meid, two.serial_start, two.faults) == (2, 5, FaultConfig(latency=0.0))


def test_the_models_know_every_setting_of_the_dataclasses() -> None:
    assert set(FaultSettings.model_fields) == {f.name for f in fields(FaultConfig)}
    node_fields = {f.name for f in fields(NodeConfig)} - {"name"}
    assert set(NodeSettings.model_fields) == node_fields | {"replace_params"}
