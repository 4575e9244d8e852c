"""The JSON Schemas of the inventory and the policy: shipped, in step with the models, true to
what the loaders accept and refuse, and the pydantic shape check words its errors itself."""

from __future__ import annotations

import copy
import json
import textwrap
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from test_inventory import FULL
from test_policy import VALID

from mml_tool.cli import cli
from mml_tool.errors import InventoryError, PolicyError
from mml_tool.inventory import HOST_KEYS, load_inventory
from mml_tool.inventory.schema import HostDoc
from mml_tool.policy import SEVERITIES, load_policy
from mml_tool.policy.loader import parse_policy
from mml_tool.policy.schema import ControlDoc
from mml_tool.schema_files import KINDS, schema_text, shipped_name

ROOT = Path(__file__).parent.parent
SECRET = "s3cret-Value-42"


def shipped(kind: str) -> dict[str, Any]:
    text = resources.files("mml_tool").joinpath("schemas").joinpath(shipped_name(kind))
    return json.loads(text.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def validator(kind: str) -> jsonschema.protocols.Validator:
    schema = shipped(kind)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_schema_is_the_models_schema(kind: str) -> None:
    # Regenerate with: mml-tool schema KIND > mml_tool/schemas/KIND.schema.json
    assert json.loads(schema_text(kind)) == shipped(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_command_prints_it(kind: str) -> None:
    result = CliRunner().invoke(cli, ["schema", kind])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == shipped(kind)


def test_schema_command_refuses_an_unknown_kind() -> None:
    result = CliRunner().invoke(cli, ["schema", "plan"])
    assert result.exit_code == 2
    assert "'plan' is not one of 'inventory', 'policy'" in result.output


def test_inventories_that_load_pass_the_schema(tmp_path: Path, lab_inventory_path: Path) -> None:
    check = validator("inventory")
    full = yaml.safe_load(textwrap.dedent(FULL))
    load_inventory(_write(tmp_path, full), env={"MML_PASSWORD": "x", "CCGW_AGENT_PASSWORD": "y"})
    check.validate(full)
    check.validate(yaml.safe_load(lab_inventory_path.read_text(encoding="utf-8")))
    example = ROOT / "inventories" / "production.example.yaml"
    check.validate(yaml.safe_load(example.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "change",
    [
        {"hosts": {"uap-1": {"pasword": "x"}}},
        {"defaults": {"tmeout": 3}},
        {"groups": {"slow": {"vars": {"groups": ["x"]}}}},
        {"hosts": {"uap-3": {"jump": {"prt": 1}}}},
        {"gateways": {"gw-1": {"agent_pasword": "x"}}},
        {"hosts": {"uap-1": {"transport": "telnet"}}},
        {"hosts": {"uap-1": {"port": 70000}}},
        {"lockdir": "x"},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(tmp_path: Path, change: dict[str, Any]) -> None:
    doc = _merged(yaml.safe_load(textwrap.dedent(FULL)), change)
    with pytest.raises(InventoryError):
        load_inventory(_write(tmp_path, doc), env={"MML_PASSWORD": "x", "CCGW_AGENT_PASSWORD": "y"})
    with pytest.raises(jsonschema.ValidationError):
        validator("inventory").validate(doc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults: {tmeout: 3}\nhosts: {}", ": defaults: unknown key 'tmeout': did you mean"),
        ("groups: {g: {vars: {pasword: x}}}", ": group 'g': unknown key 'pasword': did you"),
        ("groups: {g: {vars: [a]}}", ": group 'g': vars: must be a mapping (key: value), not a"),
        ("gateways: {g: {urll: x}}", ": gateway 'g': unknown key 'urll': did you mean 'url'"),
        ("colour: blue", ": top level: unknown key 'colour': known keys: defaults, groups,"),
        ("hosts: {1: {hostname: a}}", ": hosts: key 1 must be a string"),
        ("- a\n- b", ": top level: must be a mapping (key: value), not a list"),
    ],
)
def test_shape_errors_are_worded_like_the_loaders(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path, env={})
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        f"defaults: {SECRET}",
        f"hosts: {{a: {SECRET}}}",
        f"hosts: {{a: {{hostname: a, jump: {SECRET}}}}}",
        f"hosts: {{a: {{hostname: a, password: {SECRET}, {SECRET}: 1}}}}",
        f"plan_signing_key: [{SECRET}]\nbad_key: 1",
    ],
)
def test_shape_errors_never_quote_a_value(tmp_path: Path, text: str) -> None:
    # pydantic's own messages quote the input, which may be a secret: none is shown.
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    if f"{SECRET}:" not in text:  # a secret written as a key is the key the message names
        assert SECRET not in message
    assert "pydantic" not in message and "input_value" not in message


def test_policies_that_load_pass_the_schema() -> None:
    check = validator("policy")
    builtin = load_policy()
    check.validate(yaml.safe_load(Path(builtin.path).read_bytes()))
    doc = _jsonable(VALID)
    parse_policy(yaml.safe_dump(doc).encode(), "test", Path("test.yaml"))
    check.validate(doc)
    assert get_args(ControlDoc.model_fields["severity"].annotation) == SEVERITIES


@pytest.mark.parametrize(
    "change",
    [
        {"policy": {"nam": "x"}},
        {"controls": []},
        {"controls": [{"severity": "urgent"}]},
        {"controls": [{"rule": {"software_parameter": {"bit": 16}}}]},
        {"controls": [{"rule": {"software_parameter": {"value": 2}}}]},
        {"controls": [{"rule": {"software_parameter": {"id": "X978"}}}]},
        {"controls": [{"targets": {"host": ["a"]}}]},
        {"waivers": [{"expires": "31.12.2026"}]},
        {"extra": 1},
    ],
)
def test_the_policy_schema_refuses_what_the_loader_refuses(change: dict[str, Any]) -> None:
    doc = _jsonable(VALID)
    for key, value in change.items():
        if isinstance(value, list) and value and key in doc:
            doc[key][0] = _merged(doc[key][0], value[0])
        else:
            doc[key] = value
    with pytest.raises(PolicyError):
        parse_policy(yaml.safe_dump(doc).encode(), "test", Path("test.yaml"))
    with pytest.raises(jsonschema.ValidationError):
        validator("policy").validate(doc)


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _jsonable(doc: dict[str, Any]) -> dict[str, Any]:
    """The policy as a YAML file would give it to an editor (dates as text)."""
    return json.loads(
        json.dumps(doc, default=lambda d: d.isoformat() if isinstance(d, date) else d)
    )  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"extra": 1}, ": field 'extra': is not a known field; allowed: ['controls', 'policy',"),
        ({"policy": {"name": "x", "owner": "y"}}, "field 'policy.owner': is not a known field"),
        ({"policy": "x"}, ": field 'policy': is a text; expected a mapping"),
        (
            {"controls": [{"rule": [1]}]},
            ": control UAP-SFP-P978-B0, field 'rule': is a list; expected a mapping",
        ),
        (
            {"controls": [{"refs": [{"title": "t"}]}]},
            "control UAP-SFP-P978-B0, field 'refs[0].url_or_doc': is missing; it is required",
        ),
        (
            {"waivers": [{"by": "me"}]},
            "waiver #1, field 'by': is not a known field; allowed: ['control', 'expires', 'host',",
        ),
    ],
)
def test_policy_shape_errors_name_file_control_and_field(
    change: dict[str, Any], expected: str
) -> None:
    doc = _jsonable(VALID)
    for key, value in change.items():
        if isinstance(value, list) and key in doc:
            doc[key][0] = _merged(doc[key][0], value[0])
        else:
            doc[key] = value
    with pytest.raises(PolicyError) as info:
        parse_policy(yaml.safe_dump(doc).encode(), "my.yaml", Path("my.yaml"))
    assert str(info.value).startswith("my.yaml: ")
    assert expected in str(info.value)


def test_host_keys_are_the_models_keys() -> None:
    assert sorted(HOST_KEYS) == sorted(HostDoc.model_fields)
