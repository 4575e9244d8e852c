"""A plan sends only what was approved: forged, re-hashed plans and records are refused before
anything is sent (proven on the lab nodes' stores and an empty audit trail); optional HMAC
signing; malformed plan/record files give typed errors, not tracebacks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import invoke, module_lab, set_command_env, write_lab_inventory

from mml_tool import audit
from mml_tool.change import ApplyRecord, ChangeContext, apply_plan, load_plan, load_record
from mml_tool.change.record import RecordJournal
from mml_tool.errors import InventoryError, PlanError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import Lab
from mml_tool.lab.uap import NodeConfig

PASSWORD = "Plan-Integrity-Lab-7q"
KEY = "k3y-" + "9f" * 20  # 44 characters
OTHER_KEY = "other-" + "ab" * 20
START = {"uap-1": 1, "uap-2": 1, "uap-3": 0}
MOD_0 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    nodes = [
        NodeConfig("uap-1", layout="table"),
        NodeConfig("uap-2", layout="value"),
        NodeConfig("uap-3", layout="vertical"),
    ]
    yield from module_lab(tmp_path_factory, "plan-integrity-lab", nodes, PASSWORD)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=5, connect_timeout=5)


@pytest.fixture(autouse=True)
def env(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    set_command_env(monkeypatch, tmp_path, password=PASSWORD, operator="op-alice")
    monkeypatch.setenv("MML_PLAN_KEY", KEY)
    monkeypatch.setenv("MML_OTHER_KEY", OTHER_KEY)
    for node in lab.nodes:
        node.store.set_value("P978", START[node.name])
        node.store.set_value("P917", 8192)
    return tmp_path


def stores(lab: Lab) -> dict[str, dict[str, int]]:
    return {node.name: node.store.snapshot() for node in lab.nodes}


def make_plan(tmp: Path, inventory: Path, limit: str = "uap-1,uap-2", *extra: str | Path) -> Path:
    plan = tmp / "plan.json"
    result = invoke(
        "plan", "-i", inventory, "--limit", limit, "--change-id", "CHG-9", "-o", plan, *extra
    )
    assert result.exit_code == 0, result.output
    return plan


def reseal(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit a sealed file and recompute its sha256, as anyone who can write it can."""
    body = json.loads(path.read_text(encoding="utf-8"))
    body.pop("sha256")
    signature = body.pop("hmac_sha256", None)  # the seal covers the content, not the signature
    edit(body)
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    body["sha256"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    if signature is not None:
        body["hmac_sha256"] = signature
    path.write_text(json.dumps(body, indent=2), encoding="utf-8")


def assert_nothing_sent(lab: Lab, before: dict[str, dict[str, int]], tmp: Path) -> None:
    assert stores(lab) == before
    assert audit.read(tmp / "audit.jsonl") == []


def _other_commands(body: dict[str, Any]) -> None:
    step = body["steps"][0]
    step["commands"] = ["MOD SFP: ID=P917, MODTYPE=P1, BIT=13, BITVAL=0;", "RMV SFP: ID=P978;"]


def _other_parameter(body: dict[str, Any]) -> None:
    # Consistent in itself: the commands match the (forged) parameter; the control says P978.
    step = body["steps"][0]
    step["parameter"], step["bit"], step["start_value"] = "P917", 13, 1
    step["check_command"] = "LST SFP: ID=P917;"
    step["commands"] = ["MOD SFP: ID=P917, MODTYPE=P1, BIT=13, BITVAL=0;"]
    step["undo_commands"] = ["MOD SFP: ID=P917, MODTYPE=P1, BIT=13, BITVAL=1;"]


def _write_as_check(body: dict[str, Any]) -> None:
    body["steps"][0]["check_command"] = "MOD SFP: ID=P917, MODTYPE=P1, BIT=13, BITVAL=0;"


def _other_target(body: dict[str, Any]) -> None:
    step = body["steps"][0]
    step["target_value"], step["start_value"] = 1, 0
    step["commands"] = ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"]
    step["undo_commands"] = [MOD_0]


def _unknown_control(body: dict[str, Any]) -> None:
    body["steps"][0]["control_id"] = "NO-SUCH-CONTROL"


def _other_policy(body: dict[str, Any]) -> None:
    body["policy_sha256"] = "0" * 64


def _bit_as_text(body: dict[str, Any]) -> None:
    body["steps"][0]["bit"] = "0"


def _extra_undo(body: dict[str, Any]) -> None:
    # A MOD SFP (the right verb) that no rule derives: bit 1 of the same parameter.
    body["steps"][0]["undo_commands"].append("MOD SFP: ID=P978, MODTYPE=P1, BIT=1, BITVAL=1;")


FORGERIES = {
    "other commands": (_other_commands, "RMV SFP"),
    "other parameter": (_other_parameter, "P978"),
    "a write as the check command": (_write_as_check, "check_command"),
    "other target value": (_other_target, "value"),
    "unknown control": (_unknown_control, "NO-SUCH-CONTROL"),
    "other policy": (_other_policy, "-p"),
    "bit as text": (_bit_as_text, "bit"),
    "extra rollback command": (_extra_undo, "undo_commands"),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_resealed_plan_is_refused_and_nothing_sent(
    lab: Lab, inventory: Path, env: Path, name: str
) -> None:
    edit, hint = FORGERIES[name]
    plan = make_plan(env, inventory)
    before = stores(lab)
    reseal(plan, edit)
    result = invoke("apply", plan, "-i", inventory, "--yes")
    assert result.exit_code == 2, result.output
    assert str(plan) in result.output.replace("\n", "")
    assert hint in result.output
    assert "Traceback" not in result.output
    assert_nothing_sent(lab, before, env)
    assert not plan.with_suffix(".record.json").exists()


def test_forged_plan_is_refused_by_the_library_too(lab: Lab, inventory: Path, env: Path) -> None:
    plan_path = make_plan(env, inventory)
    before = stores(lab)
    reseal(plan_path, _other_commands)
    plan = load_plan(plan_path)  # the seal holds: it was recomputed
    ctx = ChangeContext(
        inventory=load_inventory(inventory),
        audit=audit.AuditTrail(env / "audit.jsonl"),
        operator="op-alice",
        change_id="CHG-9",
        lock_dir=env / "locks",
    )
    with pytest.raises(PlanError, match="RMV SFP"):
        apply_plan(plan, ctx)
    assert_nothing_sent(lab, before, env)


def test_step_for_a_host_the_control_does_not_target_is_refused(
    lab: Lab, inventory: Path, env: Path
) -> None:
    policy = env / "targeted.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "policy": {"name": "only-uap-1"},
                "controls": [
                    {
                        "id": "P978-B0",
                        "title": "P978 bit 0 is 0",
                        "severity": "high",
                        "targets": {"hosts": ["uap-1"]},
                        "rule": {"software_parameter": {"id": "P978", "bit": 0, "value": 0}},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    plan = make_plan(env, inventory, "uap-1,uap-2", "-p", policy)
    assert [s.host for s in load_plan(plan).steps] == ["uap-1"]
    before = stores(lab)

    def to_uap2(body: dict[str, Any]) -> None:
        body["steps"][0]["host"] = "uap-2"

    reseal(plan, to_uap2)
    result = invoke("apply", plan, "-i", inventory, "--yes", "-p", policy)
    assert result.exit_code == 2, result.output
    assert "does not apply to uap-2" in result.output
    assert_nothing_sent(lab, before, env)


def test_plan_made_with_a_policy_file_is_applied_with_it(
    lab: Lab, inventory: Path, env: Path
) -> None:
    policy = env / "p978.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "policy": {"name": "own-copy"},
                "controls": [
                    {
                        "id": "MY-P978",
                        "title": "P978 bit 0 is 0",
                        "severity": "high",
                        "rule": {"software_parameter": {"id": "P978", "bit": 0, "value": 0}},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    plan = make_plan(env, inventory, "uap-1", "-p", policy)
    before = stores(lab)
    refused = invoke("apply", plan, "-i", inventory, "--yes")  # the built-in policy
    assert refused.exit_code == 2
    assert "own-copy" in refused.output and "-p" in refused.output
    assert_nothing_sent(lab, before, env)
    applied = invoke("apply", plan, "-i", inventory, "--yes", "-p", policy)
    assert applied.exit_code == 0, applied.output
    assert lab.node("uap-1").store.get("P978") == 0


def test_forged_resealed_record_is_refused_by_rollback(
    lab: Lab, inventory: Path, env: Path
) -> None:
    plan = make_plan(env, inventory, "uap-1")
    assert invoke("apply", plan, "-i", inventory, "--yes").exit_code == 0
    record = plan.with_suffix(".record.json")
    before = stores(lab)
    lines = len(audit.read(env / "audit.jsonl"))

    def undo_removes(body: dict[str, Any]) -> None:
        body["results"][0]["step"]["undo_commands"] = ["RMV SFP: ID=P978;"]
        body["results"][0]["rollback"] = ["RMV SFP: ID=P978;"]

    reseal(record, undo_removes)
    result = invoke("rollback", record, "-i", inventory, "--yes")
    assert result.exit_code == 2, result.output
    assert "RMV SFP" in result.output and str(record) in result.output.replace("\n", "")
    assert stores(lab) == before
    assert len(audit.read(env / "audit.jsonl")) == lines


def test_a_rollback_record_can_still_be_rolled_back(lab: Lab, inventory: Path, env: Path) -> None:
    """Its steps are the plan's reversed: the check reverses them back before deriving."""
    plan = make_plan(env, inventory, "uap-1")
    assert invoke("apply", plan, "-i", inventory, "--yes").exit_code == 0
    record = plan.with_suffix(".record.json")
    assert invoke("rollback", record, "-i", inventory, "--yes").exit_code == 0
    assert lab.node("uap-1").store.get("P978") == 1
    again = invoke("rollback", env / "plan.record.rollback.json", "-i", inventory, "--yes")
    assert again.exit_code == 0, again.output
    assert lab.node("uap-1").store.get("P978") == 0


# -- signing -----------------------------------------------------------------------------------


def keyed_inventory(inventory: Path, tmp: Path, name: str = "signed.yaml", **top: Any) -> Path:
    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    doc.update(top)
    path = inventory.parent / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_signed_plan_round_trip_and_the_key_never_shows(
    lab: Lab, inventory: Path, env: Path
) -> None:
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    plan = env / "plan.json"
    made = invoke("plan", "-i", signed, "--limit", "uap-1", "-o", plan)
    assert made.exit_code == 0, made.output
    assert "signed" in made.output
    text = plan.read_text(encoding="utf-8")
    body = json.loads(text)
    assert len(body["hmac_sha256"]) == 64
    assert KEY not in text and KEY not in made.output
    applied = invoke("apply", plan, "-i", signed, "--yes")
    assert applied.exit_code == 0, applied.output
    assert KEY not in applied.output
    assert KEY not in plan.with_suffix(".record.json").read_text(encoding="utf-8")
    assert lab.node("uap-1").store.get("P978") == 0


def test_unsigned_plan_is_refused_when_a_key_is_configured(
    lab: Lab, inventory: Path, env: Path
) -> None:
    plan = make_plan(env, inventory, "uap-1")  # no key in this inventory
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    before = stores(lab)
    result = invoke("apply", plan, "-i", signed, "--yes")
    assert result.exit_code == 2
    assert "not signed" in result.output and str(plan) in result.output.replace("\n", "")
    assert_nothing_sent(lab, before, env)


def test_wrongly_signed_or_forged_signed_plan_is_refused(
    lab: Lab, inventory: Path, env: Path
) -> None:
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    other = keyed_inventory(inventory, env, "other.yaml", plan_signing_key="${MML_OTHER_KEY}")
    plan = env / "plan.json"
    assert invoke("plan", "-i", signed, "--limit", "uap-1", "-o", plan).exit_code == 0
    before = stores(lab)
    result = invoke("apply", plan, "-i", other, "--yes")
    assert result.exit_code == 2
    assert "signature does not match" in result.output
    assert KEY not in result.output and OTHER_KEY not in result.output

    def later(body: dict[str, Any]) -> None:  # a harmless-looking edit, re-hashed
        body["change_id"] = "CHG-OTHER"

    reseal(plan, later)
    result = invoke("apply", plan, "-i", signed, "--yes")
    assert result.exit_code == 2
    assert "signature does not match" in result.output
    assert_nothing_sent(lab, before, env)


def test_signed_plan_with_a_keyless_inventory_warns_that_it_was_not_checked(
    lab: Lab, inventory: Path, env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    plan = env / "plan.json"
    assert invoke("plan", "-i", signed, "--limit", "uap-1", "-o", plan).exit_code == 0
    with caplog.at_level("WARNING"):
        result = invoke("apply", plan, "-i", inventory, "--yes")
    assert result.exit_code == 0, result.output
    assert "signature was not checked" in caplog.text and str(plan) in caplog.text


def test_signing_key_from_a_file(lab: Lab, inventory: Path, env: Path) -> None:
    key_file = inventory.parent / "plan.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    by_file = keyed_inventory(inventory, env, "by-file.yaml", plan_signing_key_file="plan.key")
    by_var = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    plan = env / "plan.json"
    assert invoke("plan", "-i", by_file, "--limit", "uap-1", "-o", plan).exit_code == 0
    result = invoke("apply", plan, "-i", by_var, "--yes")  # the same key, another source
    assert result.exit_code == 0, result.output
    inv = load_inventory(by_file)
    assert inv.plan_signing_key is not None
    assert KEY not in repr(inv) and KEY not in str(inv.plan_signing_key)
    assert KEY not in json.dumps(dataclasses.asdict(inv), default=str)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"plan_signing_key": "short"}, "at least 32"),
        ({"plan_signing_key": "${MML_NO_SUCH_KEY}"}, "MML_NO_SUCH_KEY"),
        ({"plan_signing_key_file": "missing.key"}, "missing.key"),
        ({"plan_signing_key": "${MML_PLAN_KEY}", "plan_signing_key_file": "x"}, "only one"),
    ],
)
def test_bad_signing_key_settings_are_inventory_errors(
    inventory: Path, env: Path, fields: dict[str, str], message: str
) -> None:
    path = keyed_inventory(inventory, env, "bad-key.yaml", **fields)
    loaded = load_inventory(path)  # read-only commands (check) do not need the key
    assert loaded.hosts
    with pytest.raises(InventoryError, match=message) as caught:
        _ = loaded.plan_signing_key
    assert "plan_signing_key" in str(caught.value) and str(path) in str(caught.value)
    assert "'short'" not in str(caught.value)  # a key, even a bad one, is never shown
    plan = env / "plan.json"
    for args in (["plan", "-i", path, "-o", plan], ["apply", plan, "-i", path, "--yes"]):
        if args[0] == "apply":
            assert invoke("plan", "-i", inventory, "--limit", "uap-1", "-o", plan).exit_code == 0
        result = invoke(*args)
        assert result.exit_code == 2, result.output  # an inventory error: usage, nothing sent
        assert "plan_signing_key" in result.output
    assert audit.read(env / "audit.jsonl") == []


# -- malformed files ---------------------------------------------------------------------------


def test_plan_with_a_naive_created_time_is_a_plan_error(inventory: Path, env: Path) -> None:
    plan = make_plan(env, inventory, "uap-1")

    def naive(body: dict[str, Any]) -> None:
        body["created"] = body["created"].replace("+00:00", "")

    reseal(plan, naive)
    with pytest.raises(PlanError, match="time zone"):
        load_plan(plan)
    result = invoke("apply", plan, "-i", inventory, "--yes")
    assert result.exit_code == 2 and "time zone" in result.output
    assert "Traceback" not in result.output


def test_plan_created_in_the_future_is_refused(inventory: Path, env: Path) -> None:
    """A forged `created` far ahead would never grow older than --max-age."""
    plan = make_plan(env, inventory, "uap-1")

    def ahead(body: dict[str, Any]) -> None:
        body["created"] = "2999-01-01T00:00:00+00:00"

    reseal(plan, ahead)
    with pytest.raises(PlanError, match="in the future"):
        load_plan(plan)


def test_malformed_command_in_a_plan_names_the_file(inventory: Path, env: Path) -> None:
    plan = make_plan(env, inventory, "uap-1")

    def two_commands(body: dict[str, Any]) -> None:
        body["steps"][0]["commands"] = [MOD_0 + " RMV SFP: ID=P978;"]

    reseal(plan, two_commands)
    with pytest.raises(PlanError, match=r"plan\.json: step for uap-1"):
        load_plan(plan)


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"\xff\xfe not json",
    ],
    ids=["deep-list", "deep-object", "not-utf8"],
)
def test_deep_or_broken_json_is_a_plan_error(inventory: Path, env: Path, content: bytes) -> None:
    path = env / "odd.json"
    path.write_bytes(content)
    with pytest.raises(PlanError, match=r"odd\.json"):
        load_plan(path)
    with pytest.raises(PlanError, match=r"odd\.json"):
        load_record(path)
    for args in (
        ["apply", path, "-i", inventory, "--yes"],
        ["rollback", path, "-i", inventory, "--yes"],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "odd.json" in result.output and "Traceback" not in result.output


# -- signed records ----------------------------------------------------------------------------


def _claim_changed(body: dict[str, Any]) -> None:
    """The forgery the signature is for: a step that changed nothing, re-labelled `changed`,
    so that rollback "undoes" it: sets a compliant host's bit back to the non-compliant value.
    Every step still derives from the policy, so only a signature can tell."""
    for result in body["results"]:
        if result["status"] == "already-compliant":
            result["status"] = "changed"


def test_records_are_signed_and_the_key_appears_nowhere(
    lab: Lab, inventory: Path, env: Path
) -> None:
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    plan = env / "plan.json"
    assert invoke("plan", "-i", signed, "--limit", "uap-1", "-o", plan).exit_code == 0
    applied = invoke("apply", plan, "-i", signed, "--yes")
    assert applied.exit_code == 0, applied.output
    record = plan.with_suffix(".record.json")
    rolled = invoke("rollback", record, "-i", signed, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert lab.node("uap-1").store.get("P978") == 1
    undo = env / "plan.record.rollback.json"
    for path in (record, undo):
        body = json.loads(path.read_text(encoding="utf-8"))
        assert len(body["hmac_sha256"]) == 64, path
    # A rollback record is obeyed too: rolling it back checks its signature.
    again = invoke("rollback", undo, "-i", signed, "--yes")
    assert again.exit_code == 0, again.output
    written = [p for p in env.rglob("*") if p.is_file()]
    assert record in written and undo in written
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    for result in (applied, rolled, again):
        assert KEY not in result.output


def test_write_ahead_and_fallback_records_are_signed(lab: Lab, inventory: Path, env: Path) -> None:
    """Each write-ahead rewrite is signed, and so is the fallback file when the record's folder
    is replaced by a file under a run."""
    key = load_inventory(keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}"))
    folder = env / "gone"
    folder.mkdir()
    spare = env / "spare"
    journal = RecordJournal(
        folder / "r.json",
        plan_sha256="d" * 64,
        fallback_dirs=[spare],
        say=lambda line: None,
        signing_key=key.plan_signing_key,
    )
    empty = ApplyRecord("apply", "CHG-9", "d" * 64, "op", "2026-01-01T00:00:00+00:00", "", [])
    journal.begin(lambda: empty)
    assert journal.flush()  # a write-ahead rewrite (one line, compact): signed too
    ahead = (folder / "r.json").read_text(encoding="utf-8")
    assert ahead.count("\n") == 1 and '"hmac_sha256":' in ahead
    load_record(folder / "r.json", signing_key=key.plan_signing_key)
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    folder.write_text("not a folder any more\n", encoding="utf-8")
    journal.finish(empty)
    assert journal.fallback is not None and journal.fallback.parent == spare
    assert load_record(journal.fallback, signing_key=key.plan_signing_key).change_id == "CHG-9"
    assert len(json.loads(journal.fallback.read_text(encoding="utf-8"))["hmac_sha256"]) == 64
    assert KEY not in journal.fallback.read_text(encoding="utf-8")


@pytest.mark.parametrize("how", ["resealed", "unsigned", "other key"])
def test_forged_or_unsigned_record_is_refused_by_rollback_with_exit_2(
    lab: Lab, inventory: Path, env: Path, how: str
) -> None:
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    other = keyed_inventory(inventory, env, "other.yaml", plan_signing_key="${MML_OTHER_KEY}")
    maker = {"resealed": signed, "unsigned": inventory, "other key": other}[how]
    plan = env / "plan.json"
    made = invoke("plan", "-i", maker, "--limit", "uap-1,uap-2", "-o", plan)
    assert made.exit_code == 0, made.output
    lab.node("uap-2").store.set_value("P978", 0)  # fixed by hand after the plan
    applied = invoke("apply", plan, "-i", maker, "--yes")
    assert applied.exit_code == 0, applied.output
    record = plan.with_suffix(".record.json")
    reseal(record, _claim_changed)
    before = stores(lab)
    lines = len(audit.read(env / "audit.jsonl"))
    result = invoke("rollback", record, "-i", signed, "--yes")
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert str(record) in flat and "Traceback" not in flat
    assert ("not signed" if how == "unsigned" else "signature does not match") in flat
    assert "mml-tool check" in flat  # what to do
    assert KEY not in flat and OTHER_KEY not in flat
    assert stores(lab) == before and len(audit.read(env / "audit.jsonl")) == lines
    assert not (env / "plan.record.rollback.json").exists()


def test_without_a_key_a_resealed_record_is_obeyed(lab: Lab, inventory: Path, env: Path) -> None:
    """What the signature is for (docs/threat-model.md): without a key, a re-hashed record
    whose steps still derive from the policy is rolled back as it says."""
    plan = make_plan(env, inventory, "uap-1,uap-2")
    lab.node("uap-2").store.set_value("P978", 0)
    assert invoke("apply", plan, "-i", inventory, "--yes").exit_code == 0
    record = plan.with_suffix(".record.json")
    reseal(record, _claim_changed)
    result = invoke("rollback", record, "-i", inventory, "--yes")
    assert result.exit_code == 0, result.output
    assert lab.node("uap-2").store.get("P978") == 1  # set back to the non-compliant value


def test_reapply_refuses_a_forged_earlier_record_before_connecting(
    lab: Lab, inventory: Path, env: Path
) -> None:
    """apply merges the earlier record of the plan into the new one: a forged one would pass
    its forgery on, signed. It is refused (exit 2) before anything is sent."""
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    plan = env / "plan.json"
    assert invoke("plan", "-i", signed, "--limit", "uap-1,uap-2", "-o", plan).exit_code == 0
    lab.node("uap-2").store.set_value("P978", 0)
    assert invoke("apply", plan, "-i", signed, "--yes").exit_code == 0
    record = plan.with_suffix(".record.json")
    reseal(record, _claim_changed)
    kept = record.read_bytes()
    before = stores(lab)
    lines = len(audit.read(env / "audit.jsonl"))
    result = invoke("apply", plan, "-i", signed, "--yes")
    assert result.exit_code == 2, result.output
    assert "signature does not match" in " ".join(result.output.split())
    assert record.read_bytes() == kept
    assert stores(lab) == before and len(audit.read(env / "audit.jsonl")) == lines


def test_signed_record_with_a_keyless_inventory_warns_that_it_was_not_checked(
    lab: Lab, inventory: Path, env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signed = keyed_inventory(inventory, env, plan_signing_key="${MML_PLAN_KEY}")
    plan = env / "plan.json"
    assert invoke("plan", "-i", signed, "--limit", "uap-1", "-o", plan).exit_code == 0
    assert invoke("apply", plan, "-i", signed, "--yes").exit_code == 0
    with caplog.at_level("WARNING"):
        result = invoke("rollback", plan.with_suffix(".record.json"), "-i", inventory, "--yes")
    assert result.exit_code == 0, result.output
    assert "signature was not checked" in caplog.text and "plan.record.json" in caplog.text
