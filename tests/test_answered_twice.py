"""A write whose session turns out, at logout, to have been answered twice (issue 7 part 6):
the session's answers are not trusted, so the step is never a clean "changed": it is
"unknown", settled by a fresh read in a new session, and both are audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from conftest import RunningLab, StartLab, invoke_on, lab_env
from hostile import Connection, HostileServer, frame, inventory_with_hostile, sfp_table

from mml_tool import audit
from mml_tool.change import ChangeContext, apply_plan, load_plan
from mml_tool.inventory import load_inventory
from mml_tool.lab.uap import NodeConfig
from mml_tool.mml.session import MmlSession

MOD_0 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"


class TwiceAtLogout:
    """An element holding P978 bit 0. On the first connection that sends a MOD, its logout
    comes with a second copy of the MOD's answer. ``applies``: whether the MOD takes effect
    (if not, that connection still reads back the value it was asked for)."""

    def __init__(self, applies: bool) -> None:
        self.applies = applies
        self.value = "1"
        self.repeated = False
        self.armed = False  # repeat the answer to a read at the next logout

    def __call__(self, conn: Connection, command: str) -> str | None:
        upper = command.upper()
        wrote = any(c.upper().startswith("MOD") for c in conn.commands[:-1])
        if upper.startswith("LST SFP"):
            shown = "0" if wrote and not self.applies else self.value
            return frame(command, conn.next_serial(), body=sfp_table(shown))
        if upper.startswith("MOD SFP"):
            if self.applies:
                self.value = "0"
            return frame(command, conn.next_serial())
        if upper.startswith("LGO") and wrote and not self.repeated:
            self.repeated = True
            mod = next(c for c in conn.commands if c.upper().startswith("MOD"))
            return frame(mod, conn.next_serial()) + frame(command, conn.next_serial())
        if upper.startswith("LGO") and self.armed and not self.repeated:
            self.repeated = True  # the read, answered twice
            lst = next(c for c in conn.commands if c.upper().startswith("LST"))
            return frame(lst, conn.next_serial(), body=sfp_table(self.value)) + frame(
                command, conn.next_serial()
            )
        return None


@pytest.fixture(scope="module")
def normal(start_lab: StartLab) -> RunningLab:
    return start_lab([NodeConfig("uap-ok")])


def invoke(normal: RunningLab, tmp_path: Path, *args: str | Path) -> Result:
    return invoke_on(normal, tmp_path, *args, MML_TOOL_OPERATOR="op-dora")


def inventory_with(normal: RunningLab, server: HostileServer, folder: Path) -> Path:
    return inventory_with_hostile(normal.inventory_path, server, folder / "inventory.yaml")


@pytest.mark.parametrize("applies", [True, False], ids=["took-effect", "no-effect"])
def test_a_write_answered_twice_is_unknown_settled_by_a_fresh_read_and_audited(
    normal: RunningLab, tmp_path: Path, applies: bool
) -> None:
    element = TwiceAtLogout(applies)
    with HostileServer(element) as server:
        inventory = inventory_with(normal, server, tmp_path)
        plan = tmp_path / "plan.json"
        made = invoke(normal, tmp_path, "plan", "-i", inventory, "--limit", "odd-1", "-o", plan)
        assert made.exit_code == 0, made.output
        result = invoke(normal, tmp_path, "apply", plan, "-i", inventory, "--yes")
    assert "Traceback" not in result.output
    assert element.repeated  # the fault happened
    record = json.loads(plan.with_suffix(".record.json").read_text(encoding="utf-8"))
    (step,) = record["results"]
    assert "a second answer" in step["error"], step
    if applies:
        assert step["status"] == "changed"
        assert "a fresh read confirmed the change" in step["error"]
        assert step["after"] == 0
    else:
        # The session's own post-check said 0; the fresh read says nothing changed.
        assert step["status"] == "failed"
        assert "a fresh read shows nothing changed" in step["error"]
        assert step["after"] == 1
        assert result.exit_code == 1, result.output
    outcomes = [(r.outcome, r.command) for r in audit.read(tmp_path / "audit.jsonl")]
    settled = "ok" if applies else "failed"
    assert outcomes == [("sending", MOD_0), ("ok", MOD_0), ("unknown", MOD_0), (settled, MOD_0)]
    lines = audit.read(tmp_path / "audit.jsonl")
    assert "a second answer" in lines[2].message
    assert "settled by a fresh read" in lines[3].message


class RaisingAtEnd(MmlSession):
    """A session that raises the refusal it saw at logout as it closes, as a caller's own
    session class may: the only way to make an AnswerError come after the last step."""

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if self.refused is not None and exc[0] is None:
            raise self.refused


def test_an_answer_error_after_the_last_step_is_settled_not_a_crash(
    normal: RunningLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in lab_env(normal.inventory_path).items():
        monkeypatch.setenv(key, value)
    element = TwiceAtLogout(applies=True)
    with HostileServer(element) as server:
        inventory = inventory_with(normal, server, tmp_path)
        plan = tmp_path / "plan.json"
        made = invoke(normal, tmp_path, "plan", "-i", inventory, "--limit", "odd-1", "-o", plan)
        assert made.exit_code == 0, made.output
        ctx = ChangeContext(
            inventory=load_inventory(inventory),
            audit=audit.AuditTrail(tmp_path / "audit.jsonl"),
            operator="op-dora",
            change_id="CHG-9",
            lock_dir=tmp_path / "locks",
            session_factory=RaisingAtEnd,
        )
        (only,) = apply_plan(load_plan(plan), ctx).results
    assert element.repeated
    assert only.status == "changed" and "a fresh read confirmed the change" in (only.error or "")
    assert [r.outcome for r in audit.read(tmp_path / "audit.jsonl")] == [
        "sending",
        "ok",
        "unknown",
        "ok",
    ]


def test_a_read_answered_twice_is_not_already_compliant(normal: RunningLab, tmp_path: Path) -> None:
    element = TwiceAtLogout(applies=True)
    with HostileServer(element) as server:
        inventory = inventory_with(normal, server, tmp_path)
        plan = tmp_path / "plan.json"
        made = invoke(normal, tmp_path, "plan", "-i", inventory, "--limit", "odd-1", "-o", plan)
        assert made.exit_code == 0, made.output
        element.value, element.armed = "0", True
        result = invoke(normal, tmp_path, "apply", plan, "-i", inventory, "--yes")
    assert element.repeated
    assert result.exit_code == 1, result.output
    (step,) = json.loads(plan.with_suffix(".record.json").read_text(encoding="utf-8"))["results"]
    assert step["status"] == "failed" and "a second answer" in step["error"], step
    assert step["commands"] == []  # nothing was sent


class TwiceWithTheNextStep:
    """P978 and P100 (bit 0 each, both 1). The answer to the next step's ``on`` command (its
    read, or its MOD) comes after a second copy of the first MOD's answer: the session refuses
    it there, one step later."""

    def __init__(self, on: str) -> None:
        self.values = {"P978": "1", "P100": "1"}
        self.repeated = False
        self.on = on

    def __call__(self, conn: Connection, command: str) -> str | None:
        upper = command.upper()
        pid = upper.split("ID=", 1)[-1].split(",")[0].split(";")[0].strip()
        if upper.startswith("LST SFP"):
            answer = frame(command, conn.next_serial(), body=sfp_table(self.values[pid], pid))
        elif upper.startswith("MOD SFP"):
            self.values[pid] = "0"
            answer = frame(command, conn.next_serial())
        else:
            return None
        mods = [c for c in conn.commands if c.upper().startswith("MOD")]
        if mods and upper.startswith(self.on) and pid not in mods[0] and not self.repeated:
            self.repeated = True
            return frame(mods[0], conn.next_serial()) + answer
        return answer


def two_controls(folder: Path) -> Path:
    rule = {"id": "P978", "bit": 0, "value": 0}
    controls = [
        {
            "id": f"{p}-B0",
            "title": f"{p} bit 0 is 0",
            "severity": "high",
            "rule": {"software_parameter": {**rule, "id": p}},
        }
        for p in ("P978", "P100")
    ]
    path = folder / "policy.yaml"
    path.write_text(
        yaml.safe_dump({"policy": {"name": "two"}, "controls": controls}), encoding="utf-8"
    )
    return path


@pytest.mark.parametrize("on", ["LST", "MOD"])
def test_an_earlier_write_is_settled_when_the_second_answer_comes_with_the_next_step(
    normal: RunningLab, tmp_path: Path, on: str
) -> None:
    element = TwiceWithTheNextStep(on)
    policy = two_controls(tmp_path)
    with HostileServer(element) as server:
        inventory = inventory_with(normal, server, tmp_path)
        plan = tmp_path / "plan.json"
        base = ["-i", inventory, "-p", policy]
        made = invoke(normal, tmp_path, "plan", *base, "--limit", "odd-1", "-o", plan)
        assert made.exit_code == 0, made.output
        result = invoke(normal, tmp_path, "apply", plan, *base, "--yes")
    assert element.repeated
    assert "Traceback" not in result.output
    record = json.loads(plan.with_suffix(".record.json").read_text(encoding="utf-8"))
    first, second = record["results"]
    assert first["parameter"] == "P978" and "a second answer" in first["error"], first
    assert first["status"] == "changed" and "a fresh read confirmed" in first["error"]
    if on == "LST":  # refused before the second step sent anything
        assert result.exit_code == 1, result.output
        assert second["status"] == "failed" and second["commands"] == []
    else:  # its MOD went out: settled by a fresh read like the first
        assert second["status"] == "changed" and "a fresh read confirmed" in second["error"]
    p978 = [r.outcome for r in audit.read(tmp_path / "audit.jsonl") if "P978" in r.command]
    assert p978 == ["sending", "ok", "unknown", "ok"]
