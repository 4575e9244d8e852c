"""Policy values that YAML 1.1 reads differently from how they are written (``0x10`` as 16,
``010`` as 8, ``on`` as true, ``12:30`` as 750) are refused at load, where they would be
compared as text with what a device prints; ``range`` bounds are numbers, and
``policy from-snapshot`` writes a policy that loads back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mml_tool import yamlload
from mml_tool.cli import cli
from mml_tool.errors import PolicyError
from mml_tool.policy import load_policy
from mml_tool.policy.rules import CommandRule, SfpValueRule
from mml_tool.snapshot import Snapshot, bits_of
from mml_tool.snapshot_policy import policy_from_snapshot


@pytest.fixture(params=["libyaml", "python"], autouse=True)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both of load_yaml's parsers compose the nodes the written text is read from."""
    if request.param == "python":
        monkeypatch.setattr(yamlload, "_CSafeLoader", None)
    elif yamlload._CSafeLoader is None:
        pytest.skip("PyYAML without libyaml")
    return str(request.param)


def policy_text(rule: str, version: str = "1") -> str:
    """A one-control policy whose command rule is ``rule`` (YAML, indented for ``command:``)."""
    return (
        f"policy: {{name: scalars, version: {version}}}\n"
        "controls:\n"
        "  - id: CTL-1\n"
        "    title: a value as written\n"
        "    severity: low\n"
        "    rule:\n"
        "      command:\n"
        '        run: "LST OFI:;"\n'
        f"{rule}"
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return str(info.value)


def line_of(path: Path, fragment: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i + 1 for i, line in enumerate(lines) if fragment in line)


# written, what YAML 1.1 (PyYAML) makes of it
MISREAD = [
    ("0x10", "the number 16"),
    ("010", "the number 8"),
    ("1_000", "the number 1000"),
    ("+16", "the number 16"),
    ("-0", "the number 0"),
    ("0b101", "the number 5"),
    ("12:30", "the number 750"),
    ("on", "the boolean true"),
    ("yes", "the boolean true"),
    ("no", "the boolean false"),
    ("true", "the boolean true"),
    ("1.0e+3", "the number 1000.0"),
    ("1.50", "the number 1.5"),
    ("2026-01-02", "the date 2026-01-02"),
]


@pytest.mark.parametrize(("written", "made"), MISREAD, ids=[w for w, _ in MISREAD])
def test_an_equals_value_yaml_reads_otherwise_is_refused(
    tmp_path: Path, written: str, made: str
) -> None:
    path = write(
        tmp_path, policy_text(f"        expect:\n          VALUE: {{equals: {written}}}\n")
    )
    message = refused(path)
    line = line_of(path, "VALUE:")
    assert message.startswith(
        f"{path}: control CTL-1, field 'rule.command.expect.VALUE.equals': "
        f"is written {written} (line {line}), which YAML reads as {made}"
    ), message
    assert f'quote it to compare the text as written: equals: "{written}"' in message, message


@pytest.mark.parametrize(
    ("rule", "fld", "fix"),
    [
        (
            "        expect:\n          VALUE: {in: [1, 0x10, 2]}\n",
            "rule.command.expect.VALUE.in[1]",
            '"0x10"',
        ),
        (
            "        match: {PORT: 010}\n        count: {min: 1}\n",
            "rule.command.match.PORT",
            'PORT: "010"',
        ),
        (
            "        expect:\n          VALUE: {regex: 010}\n",
            "rule.command.expect.VALUE.regex",
            'regex: "010"',
        ),
        (  # a merge key: the text is still found from the nodes
            "        expect:\n          VALUE: {<<: {equals: on}}\n",
            "rule.command.expect.VALUE.equals",
            'equals: "on"',
        ),
        (
            "        count: {min: 1}\n"
            '        remediation: ["MOD OFI: V=1;", 0x10]\n'
            '        rollback: ["MOD OFI: V=2;"]\n',
            "rule.command.remediation[1]",
            '"0x10"',
        ),
    ],
    ids=["in", "match", "regex", "merged", "remediation"],
)
def test_every_value_compared_as_text_is_checked(
    tmp_path: Path, rule: str, fld: str, fix: str
) -> None:
    message = refused(write(tmp_path, policy_text(rule)))
    assert f"control CTL-1, field {fld!r}: is written " in message, message
    assert f"quote it to compare the text as written: {fix}" in message, message


def test_a_policy_version_yaml_reads_otherwise_is_refused(tmp_path: Path) -> None:
    rule = "        expect:\n          VALUE: {equals: 1}\n"
    message = refused(write(tmp_path, policy_text(rule, version="1.10")))
    assert "field 'policy.version': is written 1.10 (line 1)" in message, message
    assert 'version: "1.10"' in message
    message = refused(write(tmp_path, policy_text(rule, version="010")))
    assert "which YAML reads as the number 8" in message, message


def test_canonical_numbers_and_quoted_values_load_as_written(tmp_path: Path) -> None:
    rule = (
        "        match: {PORT: 7, NAME: '010'}\n"
        "        expect:\n"
        "          A: {equals: 16}\n"
        "          B: {equals: -3}\n"
        '          C: {equals: "0x10"}\n'
        "          D: {in: [0, 1, 16, 'on', \"1e3\", 1e3, 1.0e3]}\n"
    )
    policy = load_policy(write(tmp_path, policy_text(rule, version="'1.10'")))
    assert policy.version == "1.10"
    command = policy.controls[0].rule
    assert isinstance(command, CommandRule)
    assert command.match == (("PORT", "7"), ("NAME", "010"))
    equals = {e.field: e.text for e in command.expect if e.op == "equals"}
    assert equals == {"A": "16", "B": "-3", "C": "0x10"}
    options = next(e.options for e in command.expect if e.op == "in")
    assert options == ("0", "1", "16", "on", "1e3", "1e3", "1.0e3")  # 1e3: text to YAML 1.1
    records = [{"PORT": "7", "NAME": "010", "A": "16", "B": "-3", "C": "0x10", "D": "on"}]
    assert command.judge(records).passed


def test_the_builtin_and_example_policies_still_load() -> None:
    assert load_policy().controls
    example = Path(__file__).parent.parent / "inventories" / "policy-rules.example.yaml"
    assert len(load_policy(example).controls) == 6


def test_a_misread_value_is_a_usage_error_before_connecting(tmp_path: Path) -> None:
    # Port 9 on 127.0.0.1: nothing listens; a connection attempt would exit 1, not 2.
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "hosts:\n  uap-1: {hostname: 127.0.0.1, port: 9, transport: tcp, username: u, "
        "password: '${SCALARS_TEST_PASSWORD}'}\n",
        encoding="utf-8",
    )
    path = write(tmp_path, policy_text("        expect:\n          VALUE: {equals: 0x10}\n"))
    env = {"SCALARS_TEST_PASSWORD": "p"}
    result = CliRunner().invoke(cli, ["check", "-i", str(inventory), "-p", str(path)], env=env)
    assert result.exit_code == 2, result.output
    assert "is written 0x10" in result.output and 'equals: "0x10"' in result.output
    assert "Traceback" not in result.output
    quoted = write(tmp_path, policy_text('        expect:\n          VALUE: {equals: "0x10"}\n'))
    tried = CliRunner().invoke(cli, ["check", "-i", str(inventory), "-p", str(quoted)], env=env)
    assert tried.exit_code == 1, tried.output  # the same inventory: it connects, and cannot
    assert "connection refused" in tried.output


# --- range: numbers by design ----------------------------------------------------------------


def range_rule(bounds: str) -> str:
    return f"        expect:\n          CALLS: {{range: {{{bounds}}}}}\n"


@pytest.mark.parametrize(
    ("bounds", "low", "high"),
    [
        ("min: 0x10, max: 0xFF", 16, 255),
        ("min: 1_000, max: 2_000.5", 1000, 2000.5),
        ("min: 0b101", 5, None),
        ("min: 0, max: 1.0e+3", 0, 1000),
        ("min: -5, max: +5", -5, 5),
    ],
)
def test_range_bounds_in_hex_binary_or_with_underscores_are_numbers(
    tmp_path: Path, bounds: str, low: float, high: float | None
) -> None:
    rule = load_policy(write(tmp_path, policy_text(range_rule(bounds)))).controls[0].rule
    assert isinstance(rule, CommandRule)
    (expect,) = rule.expect
    assert (expect.low, expect.high) == (low, high)


@pytest.mark.parametrize(
    ("bounds", "fld", "words"),
    [
        ("min: 010", "min", "is written 010 (line 10), which YAML 1.1 reads as the octal number 8"),
        ("max: 12:30", "max", "is written 12:30 (line 10), which YAML 1.1 reads as a base-60"),
        ("max: 1e3", "max", "is written 1e3 (line 10), which YAML 1.1 reads as text"),
        ("max: 1.5e3", "max", "which YAML 1.1 reads as text; write 1500, or with a dot"),
        ("min: .nan", "min", "is NaN"),
        ("min: on", "min", "is True; expected a number"),
    ],
)
def test_range_bounds_yaml_reads_otherwise_are_refused(
    tmp_path: Path, bounds: str, fld: str, words: str
) -> None:
    message = refused(write(tmp_path, policy_text(range_rule(bounds))))
    assert f"field 'rule.command.expect.CALLS.range.{fld}': " in message, message
    assert words in message, message


# --- policy from-snapshot --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0x10", "010", "on", "1e3", "no", "1_000"])
def test_policy_from_snapshot_loads_back_exactly(tmp_path: Path, host: str) -> None:
    """Host names and values that look like numbers or booleans come back as they were."""
    values = {"P978": 0x10, "P917": 0o10, "P100": 1000, "P4": 0}
    snapshot = Snapshot(
        host=host,
        address="127.0.0.1:2222",
        transport="ssh",
        platform="uap9600",
        taken="2026-11-30T12:30:00Z",
        parameters={pid: bits_of(v) for pid, v in values.items()},
        raw="",
    )
    text = policy_from_snapshot(snapshot, list(values), tmp_path / "0x10.json")
    policy = load_policy(write(tmp_path, text))
    assert policy.name == f"baseline-{host}"
    got = {}
    for control in policy.controls:
        assert isinstance(control.rule, SfpValueRule)
        assert control.id == f"BASELINE-{host}-{control.rule.parameter}"
        got[control.rule.parameter] = control.rule.value
    assert got == values
    assert yaml.safe_load(text)["policy"]["name"] == f"baseline-{host}"
    assert json.dumps(values)  # values are whole numbers: written as Python writes them


def test_names_yaml_reads_otherwise_are_refused_with_the_same_advice(tmp_path: Path) -> None:
    rule = "        expect:\n          VALUE: {equals: 1}\n"
    waiver = "waivers:\n  - {host: 010, control: CTL-1, reason: r, expires: 2099-01-01}\n"
    message = refused(write(tmp_path, policy_text(rule) + waiver))
    assert "waiver #1, field 'host': is written 010 (line 12)" in message, message
    assert 'host: "010"' in message
    targets = policy_text(rule).replace("    rule:\n", "    targets: {hosts: [on]}\n    rule:\n")
    message = refused(write(tmp_path, targets))
    assert "field 'targets.hosts[0]': is written on (line 6)" in message, message


def test_the_numbers_of_a_rule_follow_the_range_bounds(tmp_path: Path) -> None:
    """bit, mask, value and count are numbers too: hex works, 010 is refused, 007 is 7."""

    def sfp(body: str) -> Path:
        text = policy_text("").replace(
            '      command:\n        run: "LST OFI:;"\n', f"      software_parameter: {body}\n"
        )
        return write(tmp_path, text)

    rule = load_policy(sfp("{id: P917, mask: 0x0005, value: 0b1}")).controls[0].rule
    assert (rule.mask, rule.value) == (5, 1)  # type: ignore[union-attr]
    assert load_policy(sfp("{id: P100, value: 007}")).controls[0].rule.value == 7  # type: ignore[union-attr]
    message = refused(sfp("{id: P100, value: 010}"))
    assert "field 'rule.software_parameter.value': is written 010 (line 7)" in message, message
    assert "octal number 8; write it without the leading 0" in message
    message = refused(sfp("{id: P978, bit: 1e1, value: 0}"))
    assert "field 'rule.software_parameter.bit': is written 1e1" in message, message
    assert "write 10, or" in message
    count = refused(write(tmp_path, policy_text("        count: {min: 1:10}\n")))
    assert "field 'rule.command.count.min': is written 1:10 (line 9)" in count, count
    assert "base-60 number (70)" in count


def test_a_value_left_empty_keeps_its_own_message(tmp_path: Path) -> None:
    message = refused(
        write(tmp_path, policy_text("        match: {PORT: }\n        count: {min: 1}\n"))
    )
    assert "field 'rule.command.match.PORT': is None; expected text or a whole number" in message


def test_an_aliased_value_is_named_where_it_was_written(tmp_path: Path) -> None:
    rule = "        expect:\n          VALUE: {equals: *hex}\n"
    message = refused(write(tmp_path, policy_text(rule, version="1, description: &hex 0x10")))
    assert "field 'rule.command.expect.VALUE.equals': is written 0x10 (line 1)" in message
