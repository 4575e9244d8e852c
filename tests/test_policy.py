"""policy.py: loading and validation, targets, bit derivation and evaluation."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from mml_tool.errors import ParseError, PolicyError
from mml_tool.parsing import parse_output
from mml_tool.policy import (
    Control,
    Waiver,
    bit_from_records,
    evaluate,
    load_policy,
)

SAMPLES = Path(__file__).parent / "templates" / "huawei_uap9600" / "lst_sfp"
TODAY = date(2026, 6, 1)
VALID: dict[str, Any] = {
    "policy": {"name": "test-policy", "version": 2},
    "controls": [
        {
            "id": "UAP-SFP-P978-B0",
            "title": "P978 bit 0 is 0",
            "severity": "high",
            "description": "one-way video",
            "refs": [{"title": "vendor", "url_or_doc": "https://example.invalid/doc"}],
            "rule": {"software_parameter": {"id": "P978", "bit": 0, "value": 0}},
        },
        {
            "id": "UAP-SFP-P100-B3",
            "title": "P100 bit 3 is 1",
            "severity": "low",
            "targets": {"hosts": ["uap-1*"], "groups": ["video-cc"]},
            "rule": {"software_parameter": {"id": "P100", "bit": 3, "value": 1}},
        },
    ],
    "waivers": [
        {
            "host": "uap-3",
            "control": "UAP-SFP-P978-B0",
            "reason": "CHG-42 pending",
            "expires": date(2026, 12, 31),
        }
    ],
}


@dataclass(frozen=True)
class Host:
    name: str
    groups: tuple[str, ...] = ()


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _control() -> Control:
    return load_policy(None).controls[0]


# --- loading -----------------------------------------------------------------------------------


def test_builtin_policy() -> None:
    policy = load_policy(None)
    assert policy.name == "uap9600-one-way-video"
    assert policy.sha256 == hashlib.sha256(policy.path.read_bytes()).hexdigest()
    (control,) = policy.controls
    assert control.id == "UAP-SFP-P978-B0"
    assert (control.rule.parameter, control.rule.bit, control.rule.value) == ("P978", 0, 0)
    assert control.severity == "high"
    assert any("cec_07_1249" in ref.url_or_doc for ref in control.refs)
    assert any("Switching Between Voice and Video Calls" in ref.title for ref in control.refs)
    assert control.check_command.render() == "LST SFP: ID=P978;"
    assert control.remediation().render() == "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
    assert control.rollback(1).render() == "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"


def test_valid_policy_file(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    policy = load_policy(path)
    assert policy.path == path and policy.version == "2"
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [c.id for c in policy.controls] == ["UAP-SFP-P978-B0", "UAP-SFP-P100-B3"]
    waiver = policy.waiver_for("uap-3", "UAP-SFP-P978-B0")
    assert waiver is not None and waiver.expires == date(2026, 12, 31)
    assert policy.waiver_for("uap-1", "UAP-SFP-P978-B0") is None
    assert policy.control("UAP-SFP-P100-B3").rule.bit == 3


def test_controls_for_honours_targets(tmp_path: Path) -> None:
    policy = load_policy(_write(tmp_path, VALID))
    ids = lambda host: [c.id for c in policy.controls_for(host)]  # noqa: E731
    assert ids(Host("uap-2")) == ["UAP-SFP-P978-B0"]
    assert ids(Host("uap-12")) == ["UAP-SFP-P978-B0", "UAP-SFP-P100-B3"]
    assert ids(Host("core-9", ("video-cc",))) == ["UAP-SFP-P978-B0", "UAP-SFP-P100-B3"]


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = doc
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()
P = "controls.0.rule.software_parameter"
BAD_CASES = [
    # (test id, path to change, new value, expected fragments of the message)
    (
        "unknown-control-field",
        "controls.0.severty",
        "high",
        ["UAP-SFP-P978-B0", "'severty'", "allowed: ["],
    ),
    ("unknown-top-field", "extra", 1, ["'extra'", "allowed: ['controls', 'policy', 'waivers']"]),
    (
        "unknown-rule-field",
        f"{P}.bitval",
        0,
        [
            "UAP-SFP-P978-B0",
            "'rule.software_parameter.bitval'",
            "allowed: ['bit', 'id', 'mask', 'remediation', 'rollback', 'value']",
        ],
    ),
    (
        "bit-wrong-type",
        f"{P}.bit",
        "0",
        ["UAP-SFP-P978-B0", "'rule.software_parameter.bit'", "(text)", "integer in 0..15"],
    ),
    (
        "bit-too-big",
        f"{P}.bit",
        16,
        ["UAP-SFP-P978-B0", "'rule.software_parameter.bit'", "is 16", "0..15"],
    ),
    ("bit-negative", f"{P}.bit", -1, ["'rule.software_parameter.bit'", "is -1", "0..15"]),
    ("bit-bool", f"{P}.bit", True, ["'rule.software_parameter.bit'", "integer in 0..15"]),
    (
        "value-not-bit",
        f"{P}.value",
        2,
        ["UAP-SFP-P978-B0", "'rule.software_parameter.value'", "is 2", "0 or 1"],
    ),
    (
        "parameter-id",
        f"{P}.id",
        "978",
        ["UAP-SFP-P978-B0", "'rule.software_parameter.id'", "'978'", "P + digits"],
    ),
    (
        "parameter-id-injection",
        f"{P}.id",
        "P978;RMV",
        ["'rule.software_parameter.id'", "P + digits"],
    ),
    (
        "missing-value",
        f"{P}.value",
        _DELETE,
        ["'rule.software_parameter.value'", "missing", "required"],
    ),
    (
        "severity",
        "controls.0.severity",
        "urgent",
        ["UAP-SFP-P978-B0", "'severity'", "'urgent'", "low, medium, high, critical"],
    ),
    ("missing-title", "controls.0.title", _DELETE, ["UAP-SFP-P978-B0", "'title'", "missing"]),
    ("empty-title", "controls.0.title", " ", ["UAP-SFP-P978-B0", "'title'", "non-empty text"]),
    ("control-id-chars", "controls.0.id", "A B", ["control A B", "'id'", "letters, digits"]),
    ("control-id-missing", "controls.1.id", _DELETE, ["control #2", "'id'", "missing"]),
    (
        "duplicate-id",
        "controls.1.id",
        "UAP-SFP-P978-B0",
        ["control #2", "'id'", "repeats 'UAP-SFP-P978-B0'", "unique"],
    ),
    (
        "targets-hosts",
        "controls.1.targets.hosts",
        "uap-1",
        ["UAP-SFP-P100-B3", "'targets.hosts'", "list"],
    ),
    (
        "targets-unknown",
        "controls.1.targets.sites",
        ["x"],
        ["UAP-SFP-P100-B3", "'targets.sites'", "allowed: ['groups', 'hosts']"],
    ),
    ("ref-field", "controls.0.refs.0.url", "x", ["UAP-SFP-P978-B0", "'refs[0].url'", "allowed"]),
    (
        "waiver-bad-date",
        "waivers.0.expires",
        "31/12/2026",
        ["waiver #1", "'expires'", "'31/12/2026'", "YYYY-MM-DD"],
    ),
    ("waiver-no-reason", "waivers.0.reason", _DELETE, ["waiver #1", "'reason'", "missing"]),
    ("no-controls", "controls", [], ["'controls'", "non-empty list"]),
    ("policy-name", "policy.name", 5, ["'policy.name'", "non-empty text"]),
]


@pytest.mark.parametrize(
    ("path", "value", "fragments"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_invalid_policy(tmp_path: Path, path: str, value: Any, fragments: list[str]) -> None:
    doc = copy.deepcopy(VALID)
    _set(doc, path, value)
    file = _write(tmp_path, doc)
    with pytest.raises(PolicyError) as info:
        load_policy(file)
    message = str(info.value)
    assert message.startswith(f"{file}: ")
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_duplicate_waiver(tmp_path: Path) -> None:
    doc = copy.deepcopy(VALID)
    doc["waivers"].append(dict(doc["waivers"][0]))
    with pytest.raises(PolicyError, match=r"waiver #2.*one waiver per host and control"):
        load_policy(_write(tmp_path, doc))


def test_waiver_date_as_text_is_accepted(tmp_path: Path) -> None:
    doc = copy.deepcopy(VALID)
    doc["waivers"][0]["expires"] = "2027-01-31"
    assert load_policy(_write(tmp_path, doc)).waivers[0].expires == date(2027, 1, 31)


def test_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("controls: [\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "absent.yaml")


# --- bit derivation --------------------------------------------------------------------------


def _bits(*rows: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"ID": i, "BIT": b, "BIT_VALUE": v, "VALUE": ""} for i, b, v in rows]


def _value(pid: str, value: str) -> list[dict[str, str]]:
    return [{"ID": pid, "BIT": "", "BIT_VALUE": "", "VALUE": value}]


def test_bit_from_per_bit_records() -> None:
    records = _bits(("P978", "0", "1"), ("P978", "1", "0"), ("P100", "0", "0"))
    assert bit_from_records(records, "P978", 0) == 1
    assert bit_from_records(records, "P978", 1) == 0
    assert bit_from_records(records, "p978", 0) == 1


@pytest.mark.parametrize(
    ("value", "bit", "expected"),
    [("6", 0, 0), ("6", 1, 1), ("6", 2, 1), ("6", 3, 0), ("32768", 15, 1), ("1", 0, 1)],
)
def test_bit_from_whole_value(value: str, bit: int, expected: int) -> None:
    assert bit_from_records(_value("P978", value), "P978", bit) == expected


def test_bit_from_both_forms_when_they_agree() -> None:
    records = _bits(("P978", "0", "1")) + _value("P978", "5")
    assert bit_from_records(records, "P978", 0) == 1


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "P978 is not in the reply"),
        (_bits(("P100", "0", "0")), "P978 is not in the reply"),
        (_bits(("P978", "1", "0")), "P978 bit 0 is not in the reply"),
        (_bits(("P978", "0", "1"), ("P978", "0", "0")), "both 0 and 1"),
        (_bits(("P978", "0", "1")) + _value("P978", "4"), "both 0 and 1"),
        (_value("P978", "0x1"), "'0x1', not a decimal number"),
        (_value("P978", "-1"), "not a decimal number"),
        (_bits(("P978", "0", "on")), "'on', not a decimal number"),
        (_bits(("P978", "zero", "1")), "bit index is 'zero'"),
        (_bits(("P978", "0", "2")), "value 2, not 0 or 1"),
    ],
    ids=[
        "empty",
        "absent",
        "bit-absent",
        "contradict",
        "contradict-forms",
        "hex",
        "negative",
        "word",
        "bit-word",
        "not-a-bit",
    ],
)
def test_bit_unknown_is_an_error(records: list[dict[str, str]], message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        bit_from_records(records, "P978", 0)


# --- evaluation ------------------------------------------------------------------------------


def _evaluate(name: str, waiver: Waiver | None = None, **kwargs: Any) -> Any:
    raw = (SAMPLES / f"{name}.raw").read_text(encoding="utf-8")
    records = parse_output("LST SFP: ID=P978;", raw)
    return evaluate("uap-1", _control(), records, raw=raw, waiver=waiver, today=TODAY, **kwargs)


def test_pass() -> None:
    finding = _evaluate("table_zh")
    assert finding.status == "pass" and finding.compliant
    assert (finding.expected, finding.actual) == ("P978 bit 0 = 0", "P978 bit 0 = 0")
    assert finding.remediation == [] and finding.rollback == []
    assert finding.before_bit_value == 0 and finding.error is None
    assert "参数ID" in finding.evidence


def test_fail_gives_remediation_and_rollback() -> None:
    finding = _evaluate("vertical_en")
    assert finding.status == "fail" and not finding.compliant
    assert finding.actual == "P978 bit 0 = 1"
    assert finding.remediation == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"]
    assert finding.rollback == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"]
    assert finding.before_bit_value == 1
    assert (finding.title, finding.severity, finding.control_id) == (
        "P978 bit 0 is 0 so agents can switch calls to one-way video",
        "high",
        "UAP-SFP-P978-B0",
    )


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("value_en", "fail"),
        ("value_en_hex", "pass"),
        ("value_zh", "pass"),
        ("list_all_paged", "fail"),
        ("vertical_single_bit", "pass"),
        ("table_en", "fail"),
    ],
)
def test_every_layout_decides(name: str, status: str) -> None:
    assert _evaluate(name).status == status


@pytest.mark.parametrize("name", ["no_match", "no_match_zh", "retcode_failure"])
def test_nothing_to_read_is_an_error(name: str) -> None:
    finding = _evaluate(name)
    assert finding.status == "error" and not finding.compliant
    assert finding.error == "cannot decide: P978 is not in the reply"
    assert finding.actual is None and finding.remediation == [] and finding.before_bit_value is None


def test_error_from_the_caller() -> None:
    finding = evaluate(
        "uap-1", _control(), None, error='RETCODE = 1  LGI: PWD="x" refused', today=TODAY
    )
    assert finding.status == "error" and finding.remediation == []
    assert finding.error == 'RETCODE = 1  LGI: PWD="*****" refused'


def test_no_records_and_no_error_is_an_error() -> None:
    finding = evaluate("uap-1", _control(), None, today=TODAY)
    assert finding.status == "error" and finding.error == "no reply was parsed"


def test_active_waiver() -> None:
    waiver = Waiver("uap-1", "UAP-SFP-P978-B0", "CHG-42", date(2026, 6, 1))
    finding = _evaluate("table_en", waiver)
    assert finding.status == "waived" and finding.compliant
    assert finding.waiver_reason == "CHG-42"
    assert finding.actual == "P978 bit 0 = 1" and finding.remediation == []


def test_expired_waiver_is_evaluated_normally_and_noted() -> None:
    waiver = Waiver("uap-1", "UAP-SFP-P978-B0", "CHG-42", date(2026, 5, 31))
    finding = _evaluate("table_en", waiver)
    assert finding.status == "fail" and finding.waiver_reason is None
    assert finding.notes == ["waiver expired on 2026-05-31: CHG-42"]
    assert finding.remediation


def test_waiver_does_not_hide_an_error() -> None:
    waiver = Waiver("uap-1", "UAP-SFP-P978-B0", "CHG-42", date(2027, 1, 1))
    finding = _evaluate("no_match", waiver)
    assert finding.status == "error" and finding.notes


def test_evidence_is_masked_and_finding_is_json() -> None:
    raw = 'LGI: OP="admin", PWD="s3cret";\n'
    records = _bits(("P978", "0", "0"))
    finding = evaluate("uap-1", _control(), records, raw=raw, today=TODAY)
    assert "s3cret" not in finding.evidence
    data = json.loads(json.dumps(finding.to_dict()))
    assert data["status"] == "pass" and data["before_bit_value"] == 0 and data["notes"] == []


def test_rule_on_other_bit(tmp_path: Path) -> None:
    control = load_policy(_write(tmp_path, VALID)).control("UAP-SFP-P100-B3")
    finding = evaluate("uap-12", control, _value("P100", "8"), today=TODAY)
    assert (finding.status, finding.actual) == ("pass", "P100 bit 3 = 1")
    finding = evaluate("uap-12", control, _value("P100", "7"), today=TODAY)
    assert finding.rollback == ["MOD SFP: ID=P100, MODTYPE=P1, BIT=3, BITVAL=0;"]
    assert finding.remediation == ["MOD SFP: ID=P100, MODTYPE=P1, BIT=3, BITVAL=1;"]
