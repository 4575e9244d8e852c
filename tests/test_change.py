"""plan -> apply -> rollback against a lab fleet, through the CLI: state proven on the simulator
nodes' stores, refusals proven by an untouched state and an empty audit trail."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CommandEnv as Env
from conftest import invoke, module_lab, set_command_env, write_lab_inventory

from mml_tool import audit
from mml_tool.change import (
    ChangeContext,
    apply_plan,
    host_lock,
    load_plan,
    load_record,
    rollback_record,
    save_plan,
)
from mml_tool.errors import AuditError, ParseError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import Lab
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.response import MmlResponse
from mml_tool.mml.session import MmlSession

PASSWORD = "S3cr3t-Lab-Pass-9x"
OPERATOR = "op-alice"
MOD_0 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
MOD_1 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"
# P978 = 3: bit 1 is set too, and must survive apply and rollback untouched.
START = {"uap-1": 1, "uap-2": 3, "uap-3": 0, "uap-4": 1, "drop-1": 1, "bad-1": 1}
NON_COMPLIANT = ["uap-1", "uap-2", "uap-4"]


def _nodes() -> list[NodeConfig]:
    return [
        NodeConfig("uap-1", layout="table", language="en"),
        NodeConfig("uap-2", layout="vertical", language="zh"),
        NodeConfig("uap-3", layout="value", language="en"),
        NodeConfig("uap-4", layout="value", language="zh"),
        NodeConfig(
            "drop-1", layout="table", language="zh", faults=FaultConfig(drop_after_mod=True)
        ),
        NodeConfig("bad-1", faults=FaultConfig(login_refused=True)),
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from module_lab(tmp_path_factory, "change-lab", _nodes(), PASSWORD)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=5, connect_timeout=5)


@pytest.fixture(autouse=True)
def env(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Credentials, audit trail and locks of this test only; every node back at START."""
    for name, value in START.items():
        lab.node(name).store.set_value("P978", value)
    return set_command_env(monkeypatch, tmp_path, password=PASSWORD, operator=OPERATOR)


def p978(lab: Lab) -> dict[str, int | None]:
    return {name: lab.node(name).store.get("P978") for name in START}


def mods(env: Env, host: str | None = None) -> list[audit.AuditRecord]:
    """The write-ahead lines of MOD commands: one per MOD that went (or may have gone) out."""
    return [
        r
        for r in audit.read(env.audit)
        if r.outcome == "sending" and r.command.startswith("MOD") and host in (None, r.host)
    ]


def make_plan(env: Env, inventory: Path, limit: str = "uap-*", **kw: str) -> Path:
    plan = env.tmp / "plan.json"
    args: list[str | Path] = ["plan", "-i", inventory, "--limit", limit]
    args += ["--change-id", "CHG-7", "-o", plan]
    if "policy" in kw:
        args += ["-p", kw["policy"]]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return plan


def test_plan_apply_rollback_round_trip(lab: Lab, inventory: Path, env: Env) -> None:
    before_all = {n: lab.node(n).store.snapshot() for n in START}
    plan_path = make_plan(env, inventory)
    assert p978(lab) == START  # planning changes nothing

    body = json.loads(plan_path.read_text(encoding="utf-8"))
    claimed = body.pop("sha256")
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert claimed == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert body["kind"] == "mml-tool-plan"
    assert body["schema_version"] == 1
    assert (body["change_id"], body["created_by"]) == ("CHG-7", OPERATOR)
    steps = {s["host"]: s for s in body["steps"]}
    assert sorted(steps) == NON_COMPLIANT  # uap-3 is compliant: no step
    for host, step in steps.items():
        assert (step["parameter"], step["bit"]) == ("P978", 0)
        assert (step["start_value"], step["target_value"]) == (1, 0)
        assert step["check_command"] == "LST SFP: ID=P978;"
        assert step["commands"] == [MOD_0]
        assert step["undo_commands"] == [MOD_1]
        assert "P978" in step["evidence"]  # the state read before, as the device printed it
        assert lab.node(host).config.ne_name in step["evidence"]
        # ... and as parsed: the records the decision was made from, and the whole parameter.
        assert any(r["ID"] == "P978" for r in step["before_records"])
        assert step["start_state"]

    applied = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert applied.exit_code == 0, applied.output
    assert p978(lab) == {**START, "uap-1": 0, "uap-2": 2, "uap-4": 0}
    record_path = plan_path.with_suffix(".record.json")
    record = load_record(record_path)
    assert record.action == "apply" and record.ok
    assert {r.step.host: (r.status, r.before, r.after) for r in record.results} == {
        h: ("changed", 1, 0) for h in NON_COMPLIANT
    }

    rolled = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab) == START
    assert {n: lab.node(n).store.snapshot() for n in START} == before_all
    back = load_record(record_path.with_name("plan.record.rollback.json"))
    assert back.action == "rollback"
    assert {r.step.host: (r.status, r.before, r.after) for r in back.results} == {
        h: ("changed", 0, 1) for h in NON_COMPLIANT
    }
    actions = [(r.action, r.host, r.outcome, r.command) for r in audit.read(env.audit)]
    for host in NON_COMPLIANT:
        assert [a for a in actions if a[1] == host] == [
            ("apply", host, "sending", MOD_0),
            ("apply", host, "ok", MOD_0),
            ("rollback", host, "sending", MOD_1),
            ("rollback", host, "ok", MOD_1),
        ]


def test_audit_trail_contents(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory, "uap-1,uap-4")
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    records = audit.read(env.audit)
    assert len(records) == 4
    for record in records:
        assert record.time.endswith("Z")  # ISO 8601 UTC, milliseconds
        stamp = datetime.fromisoformat(record.time.replace("Z", "+00:00"))
        assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=5)
        assert (record.operator, record.change_id, record.action) == (OPERATOR, "CHG-7", "apply")
        assert record.command == MOD_0
    by_host = {(r.host, r.outcome): r for r in records}
    assert set(by_host) == {(h, o) for h in ("uap-1", "uap-4") for o in ("sending", "ok")}
    assert by_host["uap-1", "sending"].time <= by_host["uap-1", "ok"].time
    assert by_host["uap-1", "sending"].retcode is None
    assert by_host["uap-1", "ok"].retcode == 0
    assert by_host["uap-4", "ok"].message == "操作成功"  # the Chinese node's own text
    lines = env.audit.read_text(encoding="utf-8").splitlines()
    assert all(json.loads(line)["host"] in ("uap-1", "uap-4") for line in lines)


def test_plan_show_prints_the_plan_without_an_inventory(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    result = invoke("plan", "--show", plan_path)
    assert result.exit_code == 0, result.output
    assert "change CHG-7" in result.output
    assert "uap-1" in result.output and "P978 bit 0 1 -> 0" in result.output
    assert f"send     {MOD_0}" in result.output
    assert f"rollback {MOD_1}" in result.output


def test_plan_of_compliant_hosts_has_nothing_to_do(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory, "uap-3")
    assert load_plan(plan_path).steps == ()
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 0
    assert "Nothing to change" in result.output
    assert not env.audit.exists()


def test_plan_with_an_unreachable_host_plans_the_others_and_exits_1(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = env.tmp / "plan.json"
    result = invoke("plan", "-i", inventory, "--limit", "uap-1,bad-1", "-o", plan_path)
    assert result.exit_code == 1
    assert "not planned bad-1" in result.output
    assert [s.host for s in load_plan(plan_path).steps] == ["uap-1"]


def test_plan_of_only_unreadable_hosts_does_not_call_them_compliant(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = env.tmp / "plan.json"
    result = invoke("plan", "-i", inventory, "--limit", "bad-1", "-o", plan_path)
    assert result.exit_code == 1
    assert "not planned bad-1" in result.output
    assert "compliant" not in result.output.replace("non-compliant", "")


def test_tampered_plan_is_refused_and_nothing_sent(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory)
    text = plan_path.read_text(encoding="utf-8")
    # One byte: the rollback of uap-1 would now set the bit to 0.
    at = text.index("BITVAL=1;")
    plan_path.write_text(text[:at] + "BITVAL=0;" + text[at + len("BITVAL=1;") :], "utf-8")
    runs: list[list[str | Path]] = [
        ["apply", plan_path, "-i", inventory, "--yes"],
        ["plan", "--show", plan_path],
    ]
    for args in runs:
        result = invoke(*args)
        assert result.exit_code == 2
        assert "sha256 does not match" in result.output
        assert "never edit it by hand" in result.output
    assert not env.audit.exists()
    assert p978(lab) == START


def test_plan_older_than_max_age_is_refused(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory)
    plan = load_plan(plan_path)
    old = (datetime.now(timezone.utc) - timedelta(hours=3)).isoformat(timespec="seconds")
    save_plan(replace(plan, created=old), plan_path)  # properly sealed, just old
    result = invoke("apply", plan_path, "-i", inventory, "--yes", "--max-age", "2")
    assert result.exit_code == 2
    assert "older than" in result.output and "mml-tool plan" in result.output
    assert not env.audit.exists()
    assert p978(lab) == START
    # Within a larger --max-age the same plan is accepted.
    result = invoke("apply", plan_path, "-i", inventory, "--yes", "--max-age", "4")
    assert result.exit_code == 0, result.output
    assert p978(lab)["uap-1"] == 0


def test_state_changed_since_the_plan_is_not_sent_again(
    lab: Lab, inventory: Path, env: Env
) -> None:
    """Someone fixed uap-1 by hand between plan and apply: re-read, skipped, nothing sent."""
    plan_path = make_plan(env, inventory, "uap-1,uap-4")
    lab.node("uap-1").store.set_bit("P978", 0, 0)
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 0, result.output
    record = load_record(plan_path.with_suffix(".record.json"))
    assert {r.step.host: r.status for r in record.results} == {
        "uap-1": "already-compliant",
        "uap-4": "changed",
    }
    assert mods(env, "uap-1") == []
    assert len(mods(env, "uap-4")) == 1


@pytest.mark.parametrize("host", ["uap-1", "uap-4"])  # per-bit table; whole value (zh)
def test_drifted_parameter_is_refused(lab: Lab, inventory: Path, env: Env, host: str) -> None:
    """Another bit of P978 changed since the plan: the parameter drifted, nothing is sent."""
    plan_path = make_plan(env, inventory, host)
    lab.node(host).store.set_bit("P978", 3, 1)
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 1, result.output
    (step,) = load_record(plan_path.with_suffix(".record.json")).results
    assert step.status == "drifted"
    assert "changed since the plan" in (step.error or "")
    assert mods(env) == []
    assert p978(lab)[host] == START[host] | 0b1000


def test_second_apply_is_idempotent(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory)
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    assert len(mods(env)) == 3
    second = env.tmp / "second.json"
    result = invoke("apply", plan_path, "-i", inventory, "--yes", "--record", second)
    assert result.exit_code == 0, result.output
    assert {r.status for r in load_record(second).results} == {"already-compliant"}
    assert len(mods(env)) == 3  # no MOD the second time
    # Rolling back the no-op record does nothing either.
    result = invoke("rollback", second, "-i", inventory, "--yes")
    assert result.exit_code == 0
    assert "Nothing to roll back" in result.output
    assert p978(lab) == {**START, "uap-1": 0, "uap-2": 2, "uap-4": 0}


def test_locked_host_is_reported_and_the_others_proceed(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "uap-1,uap-2")
    with host_lock(env.locks, "uap-1"):
        result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 1
    assert "locked" in result.output
    record = load_record(plan_path.with_suffix(".record.json"))
    statuses = {r.step.host: r.status for r in record.results}
    assert statuses == {"uap-1": "locked", "uap-2": "changed"}
    assert "another mml-tool change holds" in (record.results[0].error or "")
    assert p978(lab)["uap-1"] == 1 and p978(lab)["uap-2"] == 2
    assert mods(env, "uap-1") == []
    # The lock is free again; rollback undoes only what was changed.
    rolled = invoke("rollback", plan_path.with_suffix(".record.json"), "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab) == START


def test_connection_dropped_after_mod_is_settled_by_a_fresh_read(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "drop-1")
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 0, result.output
    assert p978(lab)["drop-1"] == 0
    record = load_record(plan_path.with_suffix(".record.json"))
    (only,) = record.results
    assert only.status == "changed"
    assert "a fresh read confirmed the change" in (only.error or "")
    assert [c.outcome for c in only.commands] == ["unknown"]  # sent once, never re-sent
    # ... and the outcome a fresh read settled is audited after the "unknown" line.
    assert [r.outcome for r in audit.read(env.audit)] == ["sending", "unknown", "ok"]
    assert len(mods(env, "drop-1")) == 1

    rolled = invoke("rollback", plan_path.with_suffix(".record.json"), "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab)["drop-1"] == 1
    assert len(mods(env, "drop-1")) == 2


def test_steps_after_a_dropped_connection_go_on_in_a_new_session(
    lab: Lab, inventory: Path, env: Env
) -> None:
    """Two controls on the dropping host: the second step must not fail on the dead session."""
    policy = env.tmp / "two.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "policy": {"name": "two-bits", "version": 1},
                "controls": [
                    {
                        "id": f"{pid}-B0",
                        "title": f"{pid} bit 0 is 0",
                        "severity": "high",
                        "rule": {"software_parameter": {"id": pid, "bit": 0, "value": 0}},
                    }
                    for pid in ("P978", "P002")
                ],
            }
        ),
        encoding="utf-8",
    )
    node = lab.node("drop-1")
    node.store.set_value("P002", 1)
    try:
        plan_path = make_plan(env, inventory, "drop-1", policy=str(policy))
        assert len(load_plan(plan_path).steps) == 2
        result = invoke("apply", plan_path, "-i", inventory, "--yes", "-p", policy)
        assert result.exit_code == 0, result.output
        record = load_record(plan_path.with_suffix(".record.json"))
        assert [r.status for r in record.results] == ["changed", "changed"]
        assert (node.store.get("P978"), node.store.get("P002")) == (0, 0)
        assert [r.command.split(",")[0] for r in mods(env)] == [
            "MOD SFP: ID=P978",
            "MOD SFP: ID=P002",
        ]
    finally:
        node.store.set_value("P002", 1)


def test_unwritable_audit_stops_the_change_before_any_command(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = make_plan(env, inventory)
    not_a_folder = env.tmp / "a-file"
    not_a_folder.write_text("")  # the trail cannot be created below a regular file
    monkeypatch.setenv("MML_TOOL_AUDIT", str(not_a_folder / "audit.jsonl"))
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 1
    assert "cannot write the audit trail" in result.output
    assert p978(lab) == START
    # --audit (or $MML_TOOL_AUDIT, its variable) naming a directory is refused as a usage
    # error, before anything.
    trail_dir = env.tmp / "audit-is-a-directory"
    trail_dir.mkdir()
    result = invoke("apply", plan_path, "-i", inventory, "--yes", "--audit", trail_dir)
    assert result.exit_code == 2
    monkeypatch.setenv("MML_TOOL_AUDIT", str(trail_dir))
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 2
    assert p978(lab) == START
    assert list(trail_dir.iterdir()) == []


def test_apply_without_yes_and_without_a_terminal_refuses(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory)
    result = invoke("apply", plan_path, "-i", inventory)
    assert result.exit_code == 1
    assert "--yes" in result.output
    assert p978(lab) == START
    assert not env.audit.exists()
    assert not plan_path.with_suffix(".record.json").exists()


def test_malformed_inventory_at_apply_sends_nothing(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory)
    broken = env.tmp / "inventory.yaml"
    doc: dict[str, Any] = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    doc["hosts"]["uap-2"]["port"] = "twenty-two"
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = invoke("apply", plan_path, "-i", broken, "--yes")
    assert result.exit_code in (1, 2)
    flat = result.output.replace("\n", "")
    assert str(broken) in flat and "uap-2" in flat and "port" in flat
    assert p978(lab) == START
    assert not env.audit.exists()


def test_tampered_record_is_refused_by_rollback(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    record_path = plan_path.with_suffix(".record.json")
    record_path.write_text(
        record_path.read_text(encoding="utf-8").replace('"uap-1"', '"uap-3"', 1), "utf-8"
    )
    lines = len(audit.read(env.audit))
    result = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert result.exit_code == 2
    assert "sha256 does not match" in result.output
    assert len(audit.read(env.audit)) == lines
    assert p978(lab)["uap-1"] == 0 and p978(lab)["uap-3"] == 0


def _context(env: Env, inventory: Path, **kw: Any) -> ChangeContext:
    return ChangeContext(
        inventory=load_inventory(inventory),
        audit=kw.pop("audit", audit.AuditTrail(env.audit)),
        operator=OPERATOR,
        change_id="CHG-7",
        lock_dir=env.locks,
        **kw,
    )


class _AuditFailsAfterSending(audit.AuditTrail):
    """Writes the write-ahead line, then fails: the disk filled up while the MOD was out."""

    def append(self, record: audit.AuditRecord) -> None:
        if record.outcome != "sending":
            raise AuditError(f"cannot write the audit trail {self.path}: No space left on device")
        super().append(record)


def test_audit_failing_after_a_command_went_out_keeps_it_in_the_record(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan = load_plan(make_plan(env, inventory, "uap-1"))
    ctx = _context(env, inventory, audit=_AuditFailsAfterSending(env.audit))
    record = apply_plan(plan, ctx)
    (only,) = record.results
    assert p978(lab)["uap-1"] == 0  # the MOD did go out
    assert only.status == "unknown" and "No space left" in (only.error or "")
    assert [c.command for c in only.commands] == [MOD_0]
    # ... so that rollback (with a working trail) undoes it.
    back = rollback_record(record, _context(env, inventory))
    assert [r.status for r in back.results] == ["changed"]
    assert p978(lab)["uap-1"] == 1


class _PostCheckFails(MmlSession):
    """The read after a MOD fails (as a parse error would): the MOD itself succeeded."""

    def run(self, command: MmlCommand | str, timeout: float | None = None) -> MmlResponse:
        text = command.render() if isinstance(command, MmlCommand) else command
        if text.startswith("LST") and any(
            r.outcome == "ok" and r.command.startswith("MOD") for r in audit.read(self.trail)
        ):
            raise ParseError("post-check reply could not be parsed")
        return super().run(command, timeout)

    trail = Path()


def test_post_check_failure_after_a_sent_mod_is_unknown_not_failed(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan = load_plan(make_plan(env, inventory, "uap-1"))
    _PostCheckFails.trail = env.audit
    record = apply_plan(plan, _context(env, inventory, session_factory=_PostCheckFails))
    (only,) = record.results
    assert p978(lab)["uap-1"] == 0
    # Not "failed" (which rollback skips): the MOD went out and the state could not be read.
    assert only.status == "unknown", only
    assert "post-check failed" in (only.error or "")
    assert [c.outcome for c in only.commands] == ["ok"]
    assert [r.step.host for r in rollback_record(record, _context(env, inventory)).results] == [
        "uap-1"
    ]
    assert p978(lab)["uap-1"] == 1


class _InterruptAfterFirstHost:
    """Progress sink that delivers Ctrl-C in the main thread when the first host is done."""

    def started(self, total: int) -> None:
        pass

    def host_done(self, host: str, ok: bool) -> None:
        raise KeyboardInterrupt

    def finished(self) -> None:
        pass


def test_ctrl_c_during_apply_stops_sending_and_keeps_the_record(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan = load_plan(make_plan(env, inventory))
    assert plan.hosts == NON_COMPLIANT
    record = apply_plan(
        plan, _context(env, inventory), workers=1, progress=_InterruptAfterFirstHost()
    )
    assert not record.ok
    statuses = {r.step.host: r.status for r in record.results}
    assert sorted(statuses) == NON_COMPLIANT
    assert "changed" in statuses.values() and "skipped" in statuses.values()
    sent = {r.host for r in mods(env)}
    for host, status in statuses.items():
        assert status in ("changed", "skipped"), (host, status)
        # The record and the devices agree: what it says was changed was, and nothing else.
        assert (host in sent) == (status == "changed") == (p978(lab)[host] != START[host])
