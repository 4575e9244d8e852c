"""Every rule kind and operator on the lab: software_parameter bit / mask / whole value, command
rules with match, equals, in, regex, range and count; mask and command remediation through
plan -> apply -> rollback (state proven on the simulator's store); one reading per command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from conftest import CommandEnv as Env
from conftest import invoke, module_lab, set_command_env, write_lab_inventory

from mml_tool import audit
from mml_tool.change import load_record
from mml_tool.compliance import check_host
from mml_tool.errors import PolicyError
from mml_tool.inventory import HostConfig, load_inventory
from mml_tool.lab.lab import Lab
from mml_tool.lab.uap import NodeConfig, OfficeConfig
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.response import MmlResponse
from mml_tool.mml.session import MmlSession
from mml_tool.policy import Finding, load_policy

PASSWORD = "S3cr3t-Lab-Pass-9x"
OFFICES = (
    OfficeConfig(1, "TO-CCGW-1", "CCGW", 480, "normal"),
    OfficeConfig(2, "TO-CCGW-2", "CCGW", 480, "blocked"),
    OfficeConfig(20, "TO-PSTN-GW", "PSTN", 240, "faulty"),
)
# P917 = 0x0004: under mask 0x0005 bit 0 must become 1 and bit 2 0 (two MODs); bit 13 is
# outside the mask and must survive apply and rollback.
START = {"P917": 0x2004, "P978": 1, "P100": 5}


def _nodes() -> list[NodeConfig]:
    return [
        NodeConfig("r-table", layout="table", language="en", offices=OFFICES),
        NodeConfig("r-vert", layout="vertical", language="zh", offices=OFFICES),
        NodeConfig("r-value", layout="value", language="en", offices=OFFICES),
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from module_lab(tmp_path_factory, "rules-lab", _nodes(), PASSWORD)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=5, connect_timeout=5)


@pytest.fixture(autouse=True)
def env(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    for node in ("r-table", "r-vert", "r-value"):
        for pid, value in START.items():
            lab.node(node).store.set_value(pid, value)
    return set_command_env(monkeypatch, tmp_path, password=PASSWORD, operator="op-bob")


def control(cid: str, rule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": cid, "title": cid, "severity": "high", "rule": rule, **extra}


def write_policy(path: Path, *controls: dict[str, Any]) -> Path:
    doc = {"policy": {"name": "rules", "version": 1}, "controls": list(controls)}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


MASK = control("MASK", {"software_parameter": {"id": "P917", "mask": 5, "value": 1}})
WHOLE = control("WHOLE", {"software_parameter": {"id": "P100", "value": 7}})
WHOLE_OK = control("WHOLE-OK", {"software_parameter": {"id": "P100", "value": 5}})
BIT = control("BIT", {"software_parameter": {"id": "P978", "bit": 0, "value": 1}})


def ofi(cid: str, **rule: Any) -> dict[str, Any]:
    return control(cid, {"command": {"run": "LST OFI:;", **rule}})


OFI_RULES = [
    # (control, expected status)
    (ofi("EQ-OK", match={"NAME": "TO-CCGW-1"}, expect={"STATUS": {"equals": "Normal"}}), "pass"),
    (ofi("EQ-BAD", match={"NAME": "TO-CCGW-2"}, expect={"STATUS": {"equals": "Normal"}}), "fail"),
    (ofi("IN-OK", expect={"PEER_TYPE": {"in": ["CCGW", "PSTN"]}}), "pass"),
    (ofi("IN-BAD", expect={"PEER_TYPE": {"in": ["CCGW"]}}), "fail"),
    (ofi("RE-OK", expect={"NAME": {"regex": "TO-[A-Z]+(-[A-Z0-9]+)?"}}), "pass"),
    (ofi("RE-BAD", expect={"NAME": {"regex": "TO-CCGW-[0-9]"}}), "fail"),
    (ofi("RANGE-OK", expect={"MAX_CALLS": {"range": {"min": 240, "max": 480}}}), "pass"),
    (ofi("RANGE-BAD", expect={"MAX_CALLS": {"range": {"min": 300}}}), "fail"),
    (ofi("COUNT-1", match={"PEER_TYPE": "CCGW"}, count={"equals": 2}), "pass"),
    (ofi("COUNT-NONE", match={"STATUS": "Faulty"}, count={"equals": 0}), "fail"),
    (ofi("COUNT-NONE-OK", match={"PEER_TYPE": "SIP"}, count={"equals": 0}), "pass"),
    (ofi("COUNT-MIN", count={"min": 4}), "fail"),
    # Unreadable: a range over text, a field the template does not give: errors, not passes.
    (ofi("RANGE-TEXT", expect={"NAME": {"range": {"max": 10}}}), "error"),
    (ofi("NO-FIELD", expect={"COLOUR": {"equals": "red"}}), "error"),
]


class CountingSession(MmlSession):
    """The real session, counting the commands it sends (to prove readings are shared)."""

    sent: ClassVar[list[str]] = []

    def run(self, command: MmlCommand | str, *args: Any, **kwargs: Any) -> MmlResponse:
        CountingSession.sent.append(str(command))
        return super().run(command, *args, **kwargs)


def _check(inventory: Path, policy: Path, host: str) -> dict[str, Finding]:
    hosts: dict[str, HostConfig] = load_inventory(inventory).hosts
    CountingSession.sent = []
    findings = check_host(
        hosts[host], load_policy(policy), today=date.today(), session_factory=CountingSession
    )
    return {f.control_id: f for f in findings}


@pytest.mark.parametrize("host", ["r-table", "r-vert"])
def test_every_operator_and_count_on_the_lab(inventory: Path, env: Env, host: str) -> None:
    policy = write_policy(env.tmp / "p.yaml", *(c for c, _ in OFI_RULES))
    found = _check(inventory, policy, host)
    if host == "r-vert":  # the Chinese node prints its own status words
        return _chinese(found)
    assert {cid: f.status for cid, f in found.items()} == {c["id"]: s for c, s in OFI_RULES}
    # Fourteen controls, one command: controls that read the same command share one reading.
    assert [c for c in CountingSession.sent if c.startswith("LST")] == ["LST OFI:;"]
    assert found["EQ-BAD"].actual == "NAME=TO-CCGW-2: STATUS=Blocked"
    assert found["COUNT-NONE"].actual is not None
    assert found["COUNT-NONE"].actual.startswith("1 record(s), expected no record")
    assert "not a number" in str(found["RANGE-TEXT"].error)
    assert "no field COLOUR" in str(found["NO-FIELD"].error)
    assert found["EQ-BAD"].remediation == []  # check-only: the policy names none
    assert any("check-only" in n for n in found["EQ-BAD"].notes)


def _chinese(found: dict[str, Finding]) -> None:
    # 正常/闭塞/故障: equals Normal fails on every record, counts by STATUS see none.
    assert found["EQ-OK"].status == "fail" and found["IN-OK"].status == "pass"
    assert found["COUNT-NONE"].status == "pass" and found["RANGE-OK"].status == "pass"


def test_software_parameter_kinds_are_judged_in_every_layout(inventory: Path, env: Env) -> None:
    policy = write_policy(env.tmp / "p.yaml", MASK, WHOLE, WHOLE_OK, BIT)
    for host in ("r-table", "r-vert", "r-value"):
        found = _check(inventory, policy, host)
        assert {cid: f.status for cid, f in found.items()} == {
            "MASK": "fail",
            "WHOLE": "fail",
            "WHOLE-OK": "pass",
            "BIT": "pass",
        }, host
        assert found["MASK"].actual == "P917 & 0x0005 = 0x0004"
        assert found["MASK"].remediation == [
            "MOD SFP: ID=P917, MODTYPE=P1, BIT=0, BITVAL=1;",
            "MOD SFP: ID=P917, MODTYPE=P1, BIT=2, BITVAL=0;",
        ]
        assert found["WHOLE"].actual == "P100 = 5" and found["WHOLE"].remediation == []
        assert sum(c == "LST SFP: ID=P917;" for c in CountingSession.sent) == 1


def test_an_absent_parameter_is_an_error_for_every_kind(inventory: Path, env: Env) -> None:
    rules = [
        control("M", {"software_parameter": {"id": "P4242", "mask": 3, "value": 1}}),
        control("V", {"software_parameter": {"id": "P4242", "value": 1}}),
        control(
            "C", {"command": {"run": "LST SFP: ID=P4242;", "expect": {"VALUE": {"equals": 1}}}}
        ),
    ]
    found = _check(inventory, write_policy(env.tmp / "p.yaml", *rules), "r-value")
    assert {f.status for f in found.values()} == {"error"}


def _plan(env: Env, inventory: Path, policy: Path, limit: str) -> dict[str, Any]:
    plan = env.tmp / "plan.json"
    result = invoke(
        "plan", "-i", inventory, "-p", policy, "--limit", limit, "--change-id", "CHG-11",
        "-o", plan,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(plan.read_text(encoding="utf-8"))
    body["_output"] = result.output
    return body


def _mods(env: Env) -> list[tuple[str, str]]:
    return [
        (r.action, r.command)
        for r in audit.read(env.audit)
        if r.outcome == "sending" and r.command.startswith("MOD")
    ]


def test_mask_rule_plans_two_mods_applies_and_rolls_back(
    lab: Lab, inventory: Path, env: Env
) -> None:
    policy = write_policy(env.tmp / "p.yaml", MASK, WHOLE)
    body = _plan(env, inventory, policy, "r-vert")
    (step,) = body["steps"]  # the whole-value rule is check-only: no step
    assert "not planned r-vert WHOLE: P100 = 5 (check-only" in body["_output"]
    assert (step["kind"], step["mask"], step["bit"]) == ("mask", 5, -1)
    assert (step["start_value"], step["target_value"]) == (4, 1)
    do = [
        "MOD SFP: ID=P917, MODTYPE=P1, BIT=0, BITVAL=1;",
        "MOD SFP: ID=P917, MODTYPE=P1, BIT=2, BITVAL=0;",
    ]
    undo = [
        "MOD SFP: ID=P917, MODTYPE=P1, BIT=0, BITVAL=0;",
        "MOD SFP: ID=P917, MODTYPE=P1, BIT=2, BITVAL=1;",
    ]
    assert (step["commands"], step["undo_commands"]) == (do, undo)
    shown = invoke("plan", "--show", env.tmp / "plan.json")
    assert all(c in shown.output for c in do), shown.output

    junit = env.tmp / "apply.xml"
    applied = invoke(
        "apply", env.tmp / "plan.json", "-i", inventory, "-p", policy, "--yes",
        "--report", f"junit:{junit}",
    )  # fmt: skip
    assert applied.exit_code == 0, applied.output
    assert "P917 &amp; 0x0005 -&gt; 1" in junit.read_text(encoding="utf-8")
    assert lab.node("r-vert").store.get("P917") == 0x2001  # bit 13 untouched
    assert lab.node("r-vert").store.get("P100") == 5  # check-only: never written
    record = load_record(env.tmp / "plan.record.json")
    assert [(r.status, r.before, r.after) for r in record.results] == [("changed", 4, 1)]
    assert record.results[0].diff == "P917 & 0x0005: 4 -> 1"

    rolled = invoke(
        "rollback", env.tmp / "plan.record.json", "-i", inventory, "-p", policy, "--yes"
    )
    assert rolled.exit_code == 0, rolled.output
    assert lab.node("r-vert").store.get("P917") == 0x2004
    assert _mods(env) == [("apply", c) for c in do] + [("rollback", c) for c in undo]


def test_mask_step_refuses_drift_in_the_parameter(lab: Lab, inventory: Path, env: Env) -> None:
    policy = write_policy(env.tmp / "p.yaml", MASK)
    _plan(env, inventory, policy, "r-table")
    lab.node("r-table").store.set_value("P917", 0x0004)  # bit 13 moved: someone else is at it
    applied = invoke("apply", env.tmp / "plan.json", "-i", inventory, "-p", policy, "--yes")
    assert applied.exit_code != 0
    assert "changed since the plan" in applied.output
    assert lab.node("r-table").store.get("P917") == 0x0004 and _mods(env) == []


# A command rule whose remediation is named: LST SFP:; (every parameter, every page) selects
# P978 and expects its whole value 0; the templates fill the bit from the record.
CMD_FIX = control(
    "CMD-FIX",
    {
        "command": {
            "run": "LST SFP:;",
            "match": {"ID": "P978"},
            "expect": {"VALUE": {"equals": 0}},
            "count": {"equals": 1},
            "remediation": ["MOD SFP: ID={ID}, MODTYPE=P1, BIT=0, BITVAL={expected};"],
            "rollback": ["MOD SFP: ID={ID}, MODTYPE=P1, BIT=0, BITVAL={VALUE};"],
        }
    },
)


def test_command_rule_remediation_applies_and_rolls_back(
    lab: Lab, inventory: Path, env: Env
) -> None:
    policy = write_policy(env.tmp / "p.yaml", CMD_FIX)
    body = _plan(env, inventory, policy, "r-value")
    (step,) = body["steps"]
    assert step["kind"] == "command" and (step["start_value"], step["target_value"]) == (0, 1)
    assert step["commands"] == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"]
    assert step["undo_commands"] == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"]

    applied = invoke("apply", env.tmp / "plan.json", "-i", inventory, "-p", policy, "--yes")
    assert applied.exit_code == 0, applied.output
    assert lab.node("r-value").store.get("P978") == 0
    rolled = invoke(
        "rollback", env.tmp / "plan.record.json", "-i", inventory, "-p", policy, "--yes"
    )
    assert rolled.exit_code == 0, rolled.output
    assert lab.node("r-value").store.get("P978") == 1


def test_command_rule_on_a_field_the_layout_leaves_empty_is_an_error(
    inventory: Path, env: Env
) -> None:
    # The per-bit layouts print no whole VALUE: the rule cannot judge it, and never passes.
    found = _check(inventory, write_policy(env.tmp / "p.yaml", CMD_FIX), "r-vert")
    assert found["CMD-FIX"].status == "error"
    assert "VALUE is empty" in str(found["CMD-FIX"].error)


def test_whole_value_rule_with_named_remediation(lab: Lab, inventory: Path, env: Env) -> None:
    rule = {
        "id": "P978",
        "value": 0,
        "remediation": ["MOD SFP: ID={ID}, MODTYPE=P1, BIT=0, BITVAL={expected};"],
        "rollback": ["MOD SFP: ID={ID}, MODTYPE=P1, BIT=0, BITVAL={before};"],
    }
    policy = write_policy(env.tmp / "p.yaml", control("NAMED", {"software_parameter": rule}))
    (step,) = _plan(env, inventory, policy, "r-table")["steps"]
    assert (step["kind"], step["start_value"], step["target_value"]) == ("value", 1, 0)
    applied = invoke("apply", env.tmp / "plan.json", "-i", inventory, "-p", policy, "--yes")
    assert applied.exit_code == 0, applied.output
    assert lab.node("r-table").store.get("P978") == 0


def _tamper(plan: Path, change: Any) -> None:
    body = json.loads(plan.read_text(encoding="utf-8"))
    body.pop("sha256")
    change(body["steps"][0])
    from mml_tool.change.plan import _sealed

    plan.write_text(json.dumps(_sealed(body)), encoding="utf-8")


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["commands"].append("MOD SFP: ID=P917, MODTYPE=P1, BIT=3, BITVAL=1;"),
        lambda s: s.update(mask=7),
        lambda s: s.update(kind="bit", bit=0),
        lambda s: s.update(start_value=1),
    ],
)
def test_an_edited_mask_step_is_refused(lab: Lab, inventory: Path, env: Env, change: Any) -> None:
    policy = write_policy(env.tmp / "p.yaml", MASK)
    _plan(env, inventory, policy, "r-table")
    _tamper(env.tmp / "plan.json", change)
    applied = invoke("apply", env.tmp / "plan.json", "-i", inventory, "-p", policy, "--yes")
    assert applied.exit_code == 2, applied.output  # refused before anything is sent
    assert "Nothing was sent" in applied.output and _mods(env) == []


def test_command_step_with_forged_records_is_refused(lab: Lab, inventory: Path, env: Env) -> None:
    policy = write_policy(env.tmp / "p.yaml", CMD_FIX)
    _plan(env, inventory, policy, "r-value")

    def forge(step: dict[str, Any]) -> None:  # the records, and commands to suit them
        for record in step["before_records"]:
            if record["ID"] == "P978":
                record["ID"] = "P979"
        step["commands"] = ["MOD SFP: ID=P979, MODTYPE=P1, BIT=0, BITVAL=0;"]
        step["undo_commands"] = ["MOD SFP: ID=P979, MODTYPE=P1, BIT=0, BITVAL=1;"]

    _tamper(env.tmp / "plan.json", forge)
    applied = invoke("apply", env.tmp / "plan.json", "-i", inventory, "-p", policy, "--yes")
    assert applied.exit_code != 0, applied.output
    assert _mods(env) == [] and lab.node("r-value").store.get("P978") == 1


# --- a policy error for each bad field --------------------------------------------------------

SFP = "rule.software_parameter"
CMD = "rule.command"
BAD = [
    ({"software_parameter": {"id": "P1", "bit": 0, "mask": 1, "value": 1}}, f"{SFP}.mask",
     "not both"),
    ({"software_parameter": {"id": "P1", "bit": 0, "value": 2}}, f"{SFP}.value", "0 or 1"),
    ({"software_parameter": {"id": "P1", "mask": 0, "value": 0}}, f"{SFP}.mask", "1..65535"),
    ({"software_parameter": {"id": "P1", "mask": 5, "value": 2}}, f"{SFP}.value", "outside mask"),
    ({"software_parameter": {"id": "P1", "value": 65536}}, f"{SFP}.value", "0..65535"),
    ({"software_parameter": {"id": "P1", "value": "x"}}, f"{SFP}.value", "integer"),
    ({"software_parameter": {"id": "P1", "value": 1, "remediation": ["MOD SFP: ID={ID};"]}},
     f"{SFP}.rollback", "come together"),
    ({"software_parameter": {"id": "P1", "value": 1, "remediation": ["LST SFP: ID={ID};"],
                             "rollback": ["MOD SFP: ID={ID};"]}},
     f"{SFP}.remediation[0]", "read-only"),
    ({"software_parameter": {"id": "P1", "value": 1, "remediation": ["MOD SFP: ID={NAME};"],
                             "rollback": ["MOD SFP: ID={ID};"]}},
     f"{SFP}.remediation[0]", "{NAME} is not one of ID, expected, before"),
    ({"software_parameter": {"id": "P1", "bit": 1, "value": 1, "remediation": ["MOD X:;"],
                             "rollback": ["MOD X:;"]}}, f"{SFP}.remediation", "bit or mask rule"),
    ({"software_parameter": {"id": "P1", "value": 1}, "command": {"run": "LST A:;", "count":
                                                                  {"min": 1}}},
     "rule", "exactly one"),
    ({}, "rule", "exactly one"),
    ({"command": {"run": "MOD OFI: ONO=1;", "count": {"min": 1}}}, f"{CMD}.run", "LST or DSP"),
    ({"command": {"run": "LST OFI", "count": {"min": 1}}}, f"{CMD}.run", "valid MML command"),
    ({"command": {"run": "LST OFI:;"}}, f"{CMD}.expect", "give either"),
    ({"command": {"run": "LST OFI:;", "match": {"name": "x"}, "count": {"min": 1}}},
     f"{CMD}.match", "UPPERCASE"),
    ({"command": {"run": "LST OFI:;", "match": {"NAME": [1]}, "count": {"min": 1}}},
     f"{CMD}.match.NAME", "text or a whole number"),
    ({"command": {"run": "LST OFI:;", "expect": {"NAME": {}}}}, f"{CMD}.expect.NAME",
     "exactly one of equals, in, regex, range"),
    ({"command": {"run": "LST OFI:;", "expect": {"NAME": {"equals": "a", "regex": "b"}}}},
     f"{CMD}.expect.NAME", "exactly one"),
    ({"command": {"run": "LST OFI:;", "expect": {"NAME": {"in": []}}}}, f"{CMD}.expect.NAME.in",
     "non-empty list"),
    ({"command": {"run": "LST OFI:;", "expect": {"NAME": {"regex": "("}}}},
     f"{CMD}.expect.NAME.regex", "not a regular expression"),
    ({"command": {"run": "LST OFI:;", "expect": {"N": {"range": {"min": "a"}}}}},
     f"{CMD}.expect.N.range.min", "number"),
    ({"command": {"run": "LST OFI:;", "expect": {"N": {"range": {"min": 5, "max": 1}}}}},
     f"{CMD}.expect.N.range", "min <= max"),
    ({"command": {"run": "LST OFI:;", "expect": {"N": {"range": {"mini": 5}}}}},
     f"{CMD}.expect.N.range.mini", "not a known field"),
    ({"command": {"run": "LST OFI:;", "count": {"equals": 1, "min": 0}}}, f"{CMD}.count",
     "equals, or min/max"),
    ({"command": {"run": "LST OFI:;", "count": {"equals": -1}}}, f"{CMD}.count.equals", "0.."),
    ({"command": {"run": "LST OFI:;", "count": {"min": 3, "max": 1}}}, f"{CMD}.count",
     "min <= max"),
    ({"command": {"run": "LST OFI:;", "count": {"min": 1},
                  "remediation": ['MOD OFI: NAME="{NAME}";'],
                  "rollback": ['MOD OFI: NAME="{NAME}"']}}, f"{CMD}.rollback[0]", "valid MML"),
    ({"command": {"run": "LST OFI:;", "expect": {"A": {"equals": 1}, "B": {"equals": 2}},
                  "remediation": ["MOD OFI: V={expected};"], "rollback": ["MOD OFI: V=1;"]}},
     f"{CMD}.remediation[0]", "{expected}"),
    ({"command": {"run": "LST OFI:;", "count": {"min": 1}, "colour": 1}}, f"{CMD}.colour",
     "not a known field"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "fld", "words"), BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)]
)
def test_each_bad_field_is_named(
    tmp_path: Path, rule: dict[str, Any], fld: str, words: str
) -> None:
    path = write_policy(tmp_path / "bad.yaml", control("CTL-1", rule))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: control CTL-1, field {fld!r}: "), message
    assert words in message, message


def test_the_example_policy_loads_and_passes_its_schema() -> None:
    import jsonschema

    from mml_tool.schema_files import schema_text

    path = Path(__file__).parent.parent / "inventories" / "policy-rules.example.yaml"
    policy = load_policy(path)
    assert {c.rule.kind for c in policy.controls} == {"bit", "mask", "value", "command"}
    schema = json.loads(schema_text("policy"))
    jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), schema)


def test_policy_from_snapshot_requires_the_golden_values(
    lab: Lab, inventory: Path, env: Env
) -> None:
    golden = env.tmp / "golden.json"
    taken = invoke("snapshot", "-i", inventory, "r-table", "-o", golden)
    assert taken.exit_code == 0, taken.output
    lab.node("r-vert").store.set_value("P917", 0x2005)  # differs from the golden element
    out = env.tmp / "policy.yaml"
    made = invoke("policy", "from-snapshot", golden, "--parameters", "p978, P917", "-o", out)
    assert made.exit_code == 0, made.output
    policy = load_policy(out)
    rules = [
        (c.rule.kind, c.rule.parameter, getattr(c.rule, "value", None)) for c in policy.controls
    ]
    assert rules == [("value", "P978", 1), ("value", "P917", 0x2004)]
    assert "r-table" in out.read_text(encoding="utf-8")  # says where the values came from

    assert invoke("check", "-i", inventory, "-p", out, "--limit", "r-table").exit_code == 0
    differs = invoke("check", "-i", inventory, "-p", out, "--limit", "r-vert,r-value")
    assert differs.exit_code == 100, differs.output
    found = _check(inventory, out, "r-vert")
    assert found["BASELINE-r-table-P917"].actual == "P917 = 8197"
    body = _plan(env, inventory, out, "r-vert")
    assert body["steps"] == []  # whole-value rules without templates are check-only
    assert "check-only" in body["_output"]

    # Usage errors, before anything is written: exit 2, the file and parameter named.
    again = invoke("policy", "from-snapshot", golden, "--parameters", "P978", "-o", out)
    assert again.exit_code == 2 and "exists" in again.output
    absent = invoke("policy", "from-snapshot", golden, "--parameters", "P978,P4242")
    assert absent.exit_code == 2 and "P4242 is not in the snapshot" in absent.output
    bad = invoke("policy", "from-snapshot", golden, "--parameters", "P978,X1")
    assert bad.exit_code == 2 and "'X1' is not a parameter id" in bad.output
    (env.tmp / "junk.json").write_text("{}", encoding="utf-8")
    junk = invoke("policy", "from-snapshot", env.tmp / "junk.json", "--parameters", "P978")
    assert junk.exit_code == 2 and "not a snapshot" in junk.output


@pytest.mark.parametrize(
    "value",
    ["1, BIT=3", '1"', "a;b", "", "x\nMOD SFP: ID=P1;", "%%"],
)
def test_a_value_read_never_changes_a_commands_shape(value: str) -> None:
    from mml_tool.errors import ParseError
    from mml_tool.policy.rules import fill

    with pytest.raises(ParseError):
        fill("MOD OFI: ONO={NUMBER}, VAL={VAL};", {"NUMBER": "1", "VAL": value})
    with pytest.raises(ParseError):
        fill('MOD OFI: NAME="{NAME}";', {"NAME": value + '", X=1, Y="'})
    assert fill('MOD OFI: NAME="{NAME}", V={V};', {"NAME": "A b", "V": 2}) == (
        'MOD OFI: NAME="A b", V=2;'
    )


def test_a_template_placeholder_with_a_format_is_refused(tmp_path: Path) -> None:
    templates = {"remediation": ["MOD OFI: V={V!r};"], "rollback": ["MOD OFI: V={V};"]}
    rule = {"command": {"run": "LST OFI:;", "count": {"min": 1}, **templates}}
    with pytest.raises(PolicyError, match=r"remediation\[0\]'.*has a format"):
        load_policy(write_policy(tmp_path / "p.yaml", control("C", rule)))
