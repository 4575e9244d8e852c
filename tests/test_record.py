"""Records and settling: a record is never lost or overwritten, and every command that may have
reached the device is settled, audited and undoable. Everything on the lab over loopback; kills
and interrupts hit a real `mml-tool` subprocess."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import invoke, module_lab, write_lab_inventory

from mml_tool import audit, record
from mml_tool.change import (
    ApplyRecord,
    ChangeContext,
    CommandRun,
    Step,
    StepResult,
    apply_plan,
    host_lock,
    load_plan,
    load_record,
    plan_sha256,
    record_json,
    rollback_record,
)
from mml_tool.errors import RecordError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import PASSWORD_ENV, Lab
from mml_tool.lab.uap import FaultConfig, NodeConfig

PASSWORD = "S3cr3t-Rec-Pass-4k"
OPERATOR = "op-bob"
MOD_0 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
MOD_1 = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"
START = {
    "uap-1": 1,
    "uap-2": 3,
    "uap-3": 1,
    "garbage-1": 1,
    "middrop-1": 1,
    "stall-1": 1,
}


def _nodes() -> list[NodeConfig]:
    return [
        NodeConfig("uap-1", layout="table"),
        NodeConfig("uap-2", layout="vertical", language="zh"),
        NodeConfig("uap-3", layout="value"),
        # Every MOD's reply is damaged; the MOD itself is executed (the lab's rule).
        NodeConfig("garbage-1", faults=FaultConfig(garbage_reply="MOD")),
        NodeConfig("middrop-1", layout="value", faults=FaultConfig(drop_mid_response="MOD")),
        # The reply to a MOD never ends: the client waits until its timeout.
        NodeConfig("stall-1", faults=FaultConfig(never_end="MOD")),
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from module_lab(tmp_path_factory, "record-lab", _nodes(), PASSWORD)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=3, connect_timeout=3)


@dataclass
class Env:
    audit: Path
    locks: Path
    tmp: Path

    def variables(self) -> dict[str, str]:
        return {
            PASSWORD_ENV: PASSWORD,
            "MML_TOOL_AUDIT": str(self.audit),
            "MML_TOOL_LOCKS": str(self.locks),
            "MML_TOOL_OPERATOR": OPERATOR,
            "HOME": str(self.tmp / "home"),  # where a fallback record would go
        }


@pytest.fixture(autouse=True)
def env(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    result = Env(tmp_path / "audit.jsonl", tmp_path / "locks", tmp_path)
    for key, value in result.variables().items():
        monkeypatch.setenv(key, value)
    for name, value in START.items():
        lab.node(name).store.set_value("P978", value)
    return result


def p978(lab: Lab) -> dict[str, int | None]:
    return {name: lab.node(name).store.get("P978") for name in START}


def make_plan(env: Env, inventory: Path, limit: str, name: str = "plan.json") -> Path:
    plan = env.tmp / name
    result = invoke("plan", "-i", inventory, "--limit", limit, "--change-id", "CHG-9", "-o", plan)
    assert result.exit_code == 0, result.output
    return plan


def trail(env: Env, host: str | None = None) -> list[tuple[str, str, str]]:
    """(action, outcome, command) of every audit line, optionally of one host."""
    return [
        (r.action, r.outcome, r.command) for r in audit.read(env.audit) if host in (None, r.host)
    ]


def _context(env: Env, inventory: Path, **kw: Any) -> ChangeContext:
    return ChangeContext(
        inventory=load_inventory(inventory),
        audit=audit.AuditTrail(env.audit),
        operator=OPERATOR,
        change_id="CHG-9",
        lock_dir=env.locks,
        **kw,
    )


# -- re-applying a plan accumulates its record ---------------------------------------------------


def test_reapply_after_a_partial_apply_keeps_every_change_and_rollback_restores_all(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "uap-1,uap-2")
    record_path = plan_path.with_suffix(".record.json")
    with host_lock(env.locks, "uap-2"):  # another change holds uap-2: the first apply is partial
        first = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert first.exit_code == 1, first.output
    assert p978(lab)["uap-1"] == 0 and p978(lab)["uap-2"] == 3

    second = invoke("apply", plan_path, "-i", inventory, "--yes")  # the natural next step
    assert second.exit_code == 0, second.output
    assert p978(lab)["uap-2"] == 2
    merged = load_record(record_path)
    assert merged.ok
    by_host = {r.step.host: r for r in merged.results}
    # uap-1 was changed by the first run: it stays "changed", with the state read before it.
    assert (by_host["uap-1"].status, by_host["uap-1"].before) == ("changed", 1)
    assert [c.command for c in by_host["uap-1"].commands] == [MOD_0]
    assert [h["status"] for h in by_host["uap-1"].history] == ["changed", "already-compliant"]
    assert (by_host["uap-2"].status, by_host["uap-2"].before) == ("changed", 1)
    assert [h["status"] for h in by_host["uap-2"].history] == ["locked", "changed"]
    body = json.loads(record_path.read_text(encoding="utf-8"))
    assert len(body["runs"]) == 2 and body["finished"]

    rolled = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab) == START


def test_record_of_another_plan_is_never_overwritten(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    record_path = plan_path.with_suffix(".record.json")
    kept = record_path.read_bytes()
    lab.node("uap-3").store.set_value("P978", 1)
    other = make_plan(env, inventory, "uap-3", name="other.json")
    lines = len(audit.read(env.audit))
    result = invoke("apply", other, "-i", inventory, "--yes", "--record", record_path)
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert str(record_path) in flat and "another plan" in flat and "--record" in flat
    assert record_path.read_bytes() == kept
    assert len(audit.read(env.audit)) == lines and p978(lab)["uap-3"] == 1


def test_record_without_history_from_an_earlier_version_still_accumulates(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    record_path = plan_path.with_suffix(".record.json")
    body = json.loads(record_path.read_text(encoding="utf-8"))
    for key in ("sha256", "runs"):
        del body[key]
    for result in body["results"]:
        del result["history"]
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    body["sha256"] = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    record_path.write_text(json.dumps(body), encoding="utf-8")  # as 0.x wrote it

    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    (only,) = load_record(record_path).results
    assert (only.status, only.before) == ("changed", 1)
    assert [h["status"] for h in only.history] == ["changed", "already-compliant"]
    assert invoke("rollback", record_path, "-i", inventory, "--yes").exit_code == 0
    assert p978(lab)["uap-1"] == 1


# -- a reply to a MOD that is not a clean RETCODE answer ----------------------------------------


@pytest.mark.parametrize("host", ["garbage-1", "middrop-1"])
def test_damaged_reply_to_a_mod_is_unknown_settled_audited_and_undone(
    lab: Lab, inventory: Path, env: Env, host: str
) -> None:
    plan_path = make_plan(env, inventory, host)
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert p978(lab)[host] == 0  # the device changed
    assert result.exit_code == 0, result.output
    (only,) = load_record(plan_path.with_suffix(".record.json")).results
    assert only.status == "changed", only
    assert "a fresh read confirmed the change" in (only.error or "")
    assert [c.outcome for c in only.commands] == ["unknown"]  # sent once, never re-sent
    # The settled outcome is in the audit trail, not only "sending".
    assert trail(env, host) == [
        ("apply", "sending", MOD_0),
        ("apply", "unknown", MOD_0),
        ("apply", "ok", MOD_0),
    ]
    settled = audit.read(env.audit)[-1]
    assert "settled by a fresh read" in settled.message

    rolled = invoke("rollback", plan_path.with_suffix(".record.json"), "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab)[host] == 1
    assert [o for a, o, _ in trail(env, host) if a == "rollback"] == ["sending", "unknown", "ok"]


def test_mod_reply_that_never_completes_times_out_unknown_and_is_settled(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = load_plan(make_plan(env, inventory, "stall-1"))
    ctx = _context(env, inventory)
    ctx.inventory.hosts["stall-1"] = dataclasses.replace(ctx.inventory.hosts["stall-1"], timeout=1)
    (only,) = apply_plan(plan, ctx).results
    assert p978(lab)["stall-1"] == 0
    assert only.status == "changed" and "no complete reply" in (only.error or "")
    assert [c.outcome for c in only.commands] == ["unknown"]
    assert [o for _, o, _ in trail(env, "stall-1")] == ["sending", "unknown", "ok"]
    no_faults(lab, "stall-1", monkeypatch)
    assert [r.status for r in rollback_record(bare_record(only), ctx).results] == ["changed"]
    assert p978(lab)["stall-1"] == 1


def bare_record(*results: StepResult, digest: str = "d" * 64) -> ApplyRecord:
    """An apply record of ``results`` only, as a test builds it."""
    started = "2026-01-01T00:00:00+00:00"
    return ApplyRecord("apply", "CHG-9", digest, OPERATOR, started, "", [*results])


# -- refusals and skips are audited -------------------------------------------------------------


def test_drift_lock_and_skip_are_audited(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory, "uap-1,uap-2,uap-3")
    lab.node("uap-1").store.set_bit("P978", 4, 1)  # drift
    lab.node("uap-3").store.set_value("P978", 0)  # fixed by hand: skipped
    with host_lock(env.locks, "uap-2"):
        result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 1, result.output
    lines = {r.host: r for r in audit.read(env.audit)}
    assert len(audit.read(env.audit)) == 3  # nothing was sent
    assert (lines["uap-1"].outcome, lines["uap-1"].command) == ("refused", MOD_0)
    assert "changed since the plan" in lines["uap-1"].message
    assert lines["uap-2"].outcome == "refused"
    assert "another mml-tool change holds" in lines["uap-2"].message
    assert (lines["uap-3"].outcome, lines["uap-3"].command) == ("skipped", MOD_0)
    assert "already compliant" in lines["uap-3"].message
    assert all(r.action == "apply" and r.change_id == "CHG-9" for r in lines.values())


# -- never silently replace an earlier file -----------------------------------------------------


def test_plan_output_is_never_silently_replaced(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    kept = plan_path.read_bytes()
    again = invoke("plan", "-i", inventory, "--limit", "uap-1,uap-3", "-o", plan_path)
    assert again.exit_code == 2, again.output
    flat = " ".join(again.output.split())
    assert str(plan_path) in flat and "--force" in flat
    assert plan_path.read_bytes() == kept
    forced = invoke("plan", "-i", inventory, "--limit", "uap-1,uap-3", "-o", plan_path, "--force")
    assert forced.exit_code == 0, forced.output
    assert plan_path.read_bytes() != kept


def test_second_rollback_writes_a_new_record(lab: Lab, inventory: Path, env: Env) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    record_path = plan_path.with_suffix(".record.json")
    first = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert first.exit_code == 0, first.output
    first_out = env.tmp / "plan.record.rollback.json"
    kept = first_out.read_bytes()
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    second = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert second.exit_code == 0, second.output
    assert first_out.read_bytes() == kept
    second_out = env.tmp / "plan.record.rollback.2.json"
    assert f"rollback record: {second_out}" in " ".join(second.output.split())
    assert load_record(second_out).action == "rollback"
    assert p978(lab)["uap-1"] == 1
    # An explicit --record that exists is refused, naming the file and the option.
    third = invoke("rollback", record_path, "-i", inventory, "--yes", "--record", first_out)
    assert third.exit_code == 2, third.output
    assert str(first_out) in " ".join(third.output.split()) and "--record" in third.output
    assert first_out.read_bytes() == kept


def test_plan_into_a_read_only_folder_is_a_typed_error(lab: Lab, inventory: Path, env: Env) -> None:
    folder = env.tmp / "ro"
    with read_only_folder(folder):
        result = invoke("plan", "-i", inventory, "--limit", "uap-1", "-o", folder / "plan.json")
    assert result.exit_code == 2, result.output
    assert str(folder) in " ".join(result.output.split())
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


# -- helpers: mounts, subprocesses --------------------------------------------------------------


def _mount(*args: str) -> None:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}); the fault-injection tests cover it")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "64k") -> Iterator[Path]:
    """A small tmpfs mounted at ``folder`` (root only: skipped otherwise)."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[Path]:
    """A read-only folder (a read-only tmpfs): chmod does not stop root."""
    with tmpfs(folder):
        _mount("-o", "remount,ro", str(folder))
        yield folder


def fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the brim."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd := os.open(folder / "filler", os.O_WRONLY | os.O_APPEND), b"x")
            os.close(fd)


def watch_mods(lab: Lab, host: str, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set when a MOD reaches ``host``'s store (the device executed it)."""
    store = lab.node(host).store
    arrived = threading.Event()
    original = store.set_bit

    def set_bit(pid: str, bit: int, val: int) -> int:
        try:
            return original(pid, bit, val)
        finally:
            arrived.set()

    monkeypatch.setattr(store, "set_bit", set_bit)
    return arrived


def spawn(env: Env, *args: str | Path, unbuffered: bool = False) -> subprocess.Popen[bytes]:
    """A real `mml-tool` process (its own signal handling, its own death)."""
    more = {"PYTHONUNBUFFERED": "1"} if unbuffered else {}
    return subprocess.Popen(
        [sys.executable, "-c", "from mml_tool.cli import main; main()", *map(str, args)],
        env={**os.environ, **env.variables(), "COLUMNS": "250", **more},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_until(
    proc: subprocess.Popen[bytes], text: str, timeout: float = 20.0, stream: Any = None
) -> str:
    """Read the process's stderr (or ``stream``) until ``text`` appears (a read with a
    deadline)."""
    stream = proc.stderr if stream is None else stream
    assert stream is not None
    deadline = time.monotonic() + timeout
    seen = b""
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {text!r} within {timeout} s: {seen!r}"
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"closed before {text!r}: {seen!r}"
            seen += chunk
    return seen.decode()


def no_faults(lab: Lab, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab.node(host).config, "faults", FaultConfig())


# -- written ahead: kill -9 and a second interrupt while a MOD is in flight ---------------------


def test_kill_9_while_a_mod_is_in_flight_leaves_a_record_that_rollback_uses(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = make_plan(env, inventory, "uap-1,stall-1")
    record_path = plan_path.with_suffix(".record.json")
    arrived = watch_mods(lab, "stall-1", monkeypatch)
    proc = spawn(env, "apply", plan_path, "-i", inventory, "--yes", "--workers", "1")
    try:
        assert arrived.wait(30), "the MOD never reached stall-1"
        # The reply to that MOD never comes: the process waits for it, and dies now.
        proc.kill()
    finally:
        proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    assert p978(lab)["uap-1"] == 0 and p978(lab)["stall-1"] == 0

    killed = load_record(record_path)  # whole, sealed: written atomically
    assert killed.finished == "" and not killed.ok
    by_host = {r.step.host: r for r in killed.results}
    assert by_host["uap-1"].status == "changed"
    assert by_host["stall-1"].status == "unknown"  # in flight, never "not attempted"
    assert "in flight" in (by_host["stall-1"].error or "")
    assert [c.command for c in by_host["stall-1"].commands] == [MOD_0]

    # Re-applying (the device now answers) adds to the record: the host already has the
    # target, so the MOD in flight took effect; it is "changed", with the state read before.
    no_faults(lab, "stall-1", monkeypatch)
    again = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert again.exit_code == 0, again.output
    merged = {r.step.host: r for r in load_record(record_path).results}
    assert {h: (r.status, r.before) for h, r in merged.items()} == {
        "uap-1": ("changed", 1),
        "stall-1": ("changed", 1),
    }
    assert len([line for line in trail(env) if line[1] == "sending"]) == 2  # nothing re-sent

    rolled = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab) == START


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_second_interrupt_while_a_mod_is_in_flight_never_records_not_attempted(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    plan_path = make_plan(env, inventory, "stall-1")
    record_path = plan_path.with_suffix(".record.json")
    arrived = watch_mods(lab, "stall-1", monkeypatch)
    proc = spawn(env, "apply", plan_path, "-i", inventory, "--yes")
    try:
        assert arrived.wait(30), "the MOD never reached stall-1"
        proc.send_signal(sig)
        read_until(proc, "interrupted: no further command is sent")
        cut = load_record(record_path)  # written when the first interrupt arrived
        assert [r.status for r in cut.results] == ["unknown"]
        proc.send_signal(sig)  # stop waiting for the reply
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = out.decode() + err.decode()
    assert "not attempted" not in text, text
    assert "unknown" in out.decode(), text
    assert proc.returncode == 1
    # The thread that waited settles the MOD by a fresh read before the process ends, and
    # updates the record and the audit trail.
    (only,) = load_record(record_path).results
    assert only.status == "changed", only
    assert [o for _, o, _ in trail(env, "stall-1")] == ["sending", "unknown", "ok"]
    # The lock kept while that thread settled the MOD is released and removed when it is done.
    assert not [p.name for p in env.tmp.iterdir() if p.name.endswith(".lock")]

    no_faults(lab, "stall-1", monkeypatch)
    rolled = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab)["stall-1"] == 1


def test_third_interrupt_while_a_mod_is_in_flight_exits_130_without_a_traceback(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the second Ctrl-C the record is printed and the process waits, saying nothing,
    for the thread that settles the MOD in flight; a third one ends it at once: one line,
    exit 130, no traceback, and the record still holds the step."""
    plan_path = make_plan(env, inventory, "stall-1")
    record_path = plan_path.with_suffix(".record.json")
    # The MOD's reply is awaited 20 s: the thread is surely still waiting at the third Ctrl-C.
    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    doc["defaults"]["timeout"] = 20
    patient = inventory.with_name("patient.yaml")  # beside it: its relative paths hold
    patient.write_text(yaml.safe_dump(doc), encoding="utf-8")
    arrived = watch_mods(lab, "stall-1", monkeypatch)
    proc = spawn(env, "apply", plan_path, "-i", patient, "--yes", "--no-history", unbuffered=True)
    try:
        assert arrived.wait(30), "the MOD never reached stall-1"
        proc.send_signal(signal.SIGINT)
        read_until(proc, "interrupted: no further command is sent")
        proc.send_signal(signal.SIGINT)
        # Printed last before the exit (no history to write): the exit then joins the thread.
        read_until(proc, "apply record:", stream=proc.stdout)
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert took < 5, took  # at once, not when the reply times out
    text = err.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    assert proc.returncode == 130, text
    last = text[text.rindex("stopped waiting") :].splitlines()[1:]
    assert len(last) == 1 and "interrupted again" in last[0], text
    (only,) = load_record(record_path).results  # whole and sealed: the MOD is never lost
    assert only.status == "unknown", only


# -- the record's folder full or read-only ------------------------------------------------------


def test_record_folder_full_or_read_only_is_refused_before_anything_is_sent(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    plan = load_plan(plan_path)
    for name, reason in (("full", "No space left"), ("ro", "Read-only file system")):
        folder = env.tmp / name
        with contextlib.ExitStack() as stack:
            if name == "full":
                stack.enter_context(tmpfs(folder))
                fill(folder)
            else:
                stack.enter_context(read_only_folder(folder))
            result = invoke(
                "apply", plan_path, "-i", inventory, "--yes", "--record", folder / "r.json"
            )
            assert result.exit_code == 2, result.output
            flat = " ".join(result.output.split())
            assert str(folder) in flat and reason in flat and "nothing was sent" in flat
            # The library finds it too, before the first command (RecordError, not a traceback).
            journal = record.RecordJournal(folder / "r.json", plan_sha256=plan_sha256(plan))
            with pytest.raises(RecordError, match=reason):
                apply_plan(plan, _context(env, inventory, journal=journal))
        assert p978(lab) == START
        assert not env.audit.exists()


def test_record_folder_filling_up_after_a_mod_went_out_falls_back_to_a_named_file(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = load_plan(make_plan(env, inventory, "uap-1"))
    folder = env.tmp / "small"
    said: list[str] = []
    with tmpfs(folder, "256k"):
        store = lab.node("uap-1").store
        original = store.set_bit

        def set_bit(pid: str, bit: int, val: int) -> int:
            value = original(pid, bit, val)
            fill(folder)  # the disk fills up while the MOD is out
            return value

        monkeypatch.setattr(store, "set_bit", set_bit)
        journal = record.RecordJournal(
            folder / "r.json",
            plan_sha256=plan_sha256(plan),
            say=said.append,
            fallback_dirs=[env.tmp / "fallback"],
        )
        applied = apply_plan(plan, _context(env, inventory, journal=journal))
        stale = load_record(folder / "r.json")  # the last write that fit: the step in flight
    assert p978(lab)["uap-1"] == 0
    assert [r.status for r in stale.results] == ["unknown"]
    assert journal.fallback is not None and journal.fallback.parent == env.tmp / "fallback"
    assert any(str(journal.fallback) in line and "No space left" in line for line in said)
    kept = load_record(journal.fallback)
    assert [r.status for r in kept.results] == ["changed"] == [r.status for r in applied.results]
    monkeypatch.setattr(store, "set_bit", original)
    rollback_record(kept, _context(env, inventory))
    assert p978(lab)["uap-1"] == 1


class _WritesFail:
    """Fault injected at the record's write function: every write into ``folders`` fails with
    ENOSPC once ``armed`` is set (where a tmpfs cannot be mounted, this covers the logic)."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.armed = threading.Event()
        self.real_atomic = record.write_text_atomic
        self.real_new = record.write_text_new

    def _check(self, path: Path) -> None:
        if self.armed.is_set() and path.parent in self.folders:
            raise OSError(28, "No space left on device", str(path))

    def atomic(self, path: Path, text: str, mode: int | None = None) -> None:
        self._check(path)
        self.real_atomic(path, text, mode)

    def new(self, path: Path, text: str, mode: int = 0o644) -> None:
        self._check(path)
        self.real_new(path, text, mode)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(record, "write_text_atomic", self.atomic)
        monkeypatch.setattr(record, "write_text_new", self.new)

    def remove(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(record, "write_text_atomic", self.real_atomic)
        monkeypatch.setattr(record, "write_text_new", self.real_new)


def test_record_write_failing_after_a_mod_goes_to_a_fallback_named_on_stderr(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    fault = _WritesFail(env.tmp)
    fault.install(monkeypatch)
    arrived = watch_mods(lab, "uap-1", monkeypatch)
    monkeypatch.setattr(arrived, "set", fault.armed.set)  # the MOD arms the fault
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "Traceback" not in flat
    fallback_dir = env.audit.parent / "records"  # beside the audit trail
    (fallback,) = fallback_dir.glob("plan.record.*.json")
    assert f"written to {fallback} instead" in flat and "No space left" in flat
    assert f"apply record: {fallback}" in flat
    assert [r.status for r in load_record(fallback).results] == ["changed"]
    fault.remove(monkeypatch)
    rolled = invoke("rollback", fallback, "-i", inventory, "--yes", "--record", env.tmp / "rb.json")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab)["uap-1"] == 1


def test_record_written_nowhere_stops_sending_and_prints_the_record(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = load_plan(make_plan(env, inventory, "uap-1,uap-3"))
    fallback = env.tmp / "fallback"
    fault = _WritesFail(env.tmp, fallback)
    fault.install(monkeypatch)
    arrived = watch_mods(lab, "uap-1", monkeypatch)
    monkeypatch.setattr(arrived, "set", fault.armed.set)
    said: list[str] = []
    journal = record.RecordJournal(
        env.tmp / "r.json", plan_sha256=plan_sha256(plan), say=said.append, fallback_dirs=[fallback]
    )
    applied = apply_plan(plan, _context(env, inventory, journal=journal), workers=1)
    statuses = {r.step.host: r.status for r in applied.results}
    assert statuses == {"uap-1": "changed", "uap-3": "skipped"}
    assert p978(lab)["uap-1"] == 0 and p978(lab)["uap-3"] == 1  # nothing sent unrecorded
    assert [o for _, o, _ in trail(env, "uap-3")] == ["skipped"]
    dumped = said[-1]
    assert "written nowhere" in dumped
    # What was printed is a whole record: saved as a file, rollback takes it.
    saved = env.tmp / "saved.json"
    saved.write_text(dumped[dumped.index("{") :], encoding="utf-8")
    fault.remove(monkeypatch)
    rollback_record(load_record(saved), _context(env, inventory))
    assert p978(lab) == START


def test_two_runs_never_write_one_record_at_once(lab: Lab, inventory: Path, env: Env) -> None:
    plan = load_plan(make_plan(env, inventory, "uap-1"))
    first = record.RecordJournal(env.tmp / "r.json", plan_sha256=plan_sha256(plan))
    second = record.RecordJournal(env.tmp / "r.json", plan_sha256=plan_sha256(plan))
    first.begin(lambda: bare_record(digest=plan_sha256(plan)))
    try:
        with pytest.raises(RecordError, match="another mml-tool run is writing"):
            apply_plan(plan, _context(env, inventory, journal=second))
    finally:
        first.finish(bare_record(digest=plan_sha256(plan)))
    assert p978(lab) == START and not env.audit.exists()


def test_no_lock_file_is_left_beside_records_after_apply_and_rollback(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    record_path = plan_path.with_suffix(".record.json")
    rolled = invoke("rollback", record_path, "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab)["uap-1"] == 1
    names = sorted(p.name for p in env.tmp.iterdir())
    assert not [n for n in names if n.endswith(".lock")], names
    assert {"plan.record.json", "plan.record.rollback.json"} <= set(names)


def test_a_record_lock_file_that_is_no_longer_ours_is_not_removed(
    lab: Lab, inventory: Path, env: Env
) -> None:
    """Removed on release only while the path still names the file this run locked: a lock
    file someone put there meanwhile (a run that found ours gone) is left alone."""
    digest = "d" * 64
    journal = record.RecordJournal(env.tmp / "r.json", plan_sha256=digest)
    journal.begin(lambda: bare_record(digest=digest))
    lock = env.tmp / ".r.json.lock"
    assert lock.exists()
    lock.unlink()
    lock.write_text("", encoding="utf-8")  # another run's lock file, made meanwhile
    theirs = lock.stat().st_ino
    journal.finish(bare_record(digest=digest))
    assert lock.exists() and lock.stat().st_ino == theirs


def test_a_run_that_opened_the_lock_file_as_it_was_removed_locks_the_new_one(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race that removing the lock file on release opens: B opens the file, A releases and
    removes it, B's flock then succeeds on a file no longer at the path. B must notice and lock
    the file that is there, or a third run C would lock a new file and write beside B. The
    interleaving is forced at B's first flock (it cannot be timed from outside)."""
    digest = "d" * 64
    path = env.tmp / "r.json"
    first = record.RecordJournal(path, plan_sha256=digest)
    first.begin(lambda: bare_record(digest=digest))
    real = fcntl.flock
    forced: list[int] = []

    def flock(fd: int, operation: int) -> None:
        if not forced:
            forced.append(fd)
            first.finish(bare_record(digest=digest))  # releases and removes what B opened
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    second = record.RecordJournal(path, plan_sha256=digest)
    second.begin(lambda: bare_record(digest=digest))
    monkeypatch.setattr(fcntl, "flock", real)
    try:
        third = record.RecordJournal(path, plan_sha256=digest)
        with pytest.raises(RecordError, match="another mml-tool run is writing"):
            third.begin(lambda: bare_record(digest=digest))
    finally:
        second.finish(bare_record(digest=digest))
    assert not (env.tmp / ".r.json.lock").exists()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_planted_at_the_record_lock_is_not_followed(
    lab: Lab, inventory: Path, env: Env, dangling: bool
) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    outside = env.tmp / "outside"
    outside.mkdir()
    target = outside / "victim"
    if not dangling:
        target.write_text("keep me\n", encoding="utf-8")
    lock = env.tmp / ".plan.record.json.lock"
    lock.symlink_to(target)
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert str(lock) in flat and "symbolic link" in flat and "Traceback" not in flat
    assert p978(lab) == START and not env.audit.exists()
    assert not (plan_path.with_suffix(".record.json")).exists()
    # The library refuses it when it takes the lock, too (a link planted after the check).
    journal = record.RecordJournal(env.tmp / "plan.record.json", plan_sha256="d" * 64)
    with pytest.raises(RecordError, match="symbolic link"):
        journal.begin(lambda: bare_record())
    assert lock.is_symlink()
    if dangling:
        assert not target.exists()  # O_CREAT through the link would have made it
    else:
        assert target.read_text(encoding="utf-8") == "keep me\n"


def test_compact_record_text_reuses_unchanged_steps_and_matches_the_full_encoding(
    lab: Lab, inventory: Path, env: Env
) -> None:
    plan_path = make_plan(env, inventory, "uap-1,uap-2,uap-3")
    assert invoke("apply", plan_path, "-i", inventory, "--yes").exit_code == 0
    earlier = load_record(plan_path.with_suffix(".record.json"))
    memo = record._Memo()
    current = earlier
    for previous in (None, earlier):
        first = record.merge(previous, current, memo)
        again = record.merge(previous, current, memo)
        assert all(a is b for a, b in zip(first.results, again.results, strict=True))
        text = record._compact_json(again, memo)
        assert text == record_json(record.merge(previous, current), compact=True)
        saved = env.tmp / "compact.json"
        saved.write_text(text, encoding="utf-8")
        assert load_record(saved).to_dict() == first.to_dict()


def test_record_written_nowhere_is_printed_whole_on_stderr_by_the_cli(
    lab: Lab, inventory: Path, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_path = make_plan(env, inventory, "uap-1")
    fault = _WritesFail(env.tmp, *record.default_fallback_dirs(env.audit))
    fault.install(monkeypatch)
    arrived = watch_mods(lab, "uap-1", monkeypatch)
    monkeypatch.setattr(arrived, "set", fault.armed.set)
    result = invoke("apply", plan_path, "-i", inventory, "--yes")
    assert result.exit_code == 0, result.output  # the change itself went through
    assert "Traceback" not in result.output
    text = result.stderr
    at = text.rindex("written nowhere")
    body, _ = json.JSONDecoder().raw_decode(text, text.index("{", at))
    saved = env.tmp / "saved" / "record.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps(body), encoding="utf-8")
    (only,) = load_record(saved).results  # whole and sealed, as printed
    assert only.status == "changed"
    fault.remove(monkeypatch)
    rolled = invoke("rollback", saved, "-i", inventory, "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert p978(lab)["uap-1"] == 1


def test_merge_rules_keep_every_step_a_run_may_have_changed() -> None:
    step = load_plan_step()
    sent = [CommandRun(MOD_0, 0, "ok", 0.1, "ok")]
    lost = [CommandRun(MOD_0, None, "connection lost", 0.1, "unknown")]

    def merged(old: StepResult, new: StepResult) -> StepResult:
        (only,) = record.merge(bare_record(old), bare_record(new)).results
        return only

    changed = StepResult(step, "changed", 1, 0, sent, after_state="value=0")
    compliant = StepResult(step, "already-compliant", 0, 0, after_state="value=0")
    # Changed by an earlier run, compliant now: still changed, with the state read before.
    assert (merged(changed, compliant).status, merged(changed, compliant).before) == ("changed", 1)
    # In flight when the earlier run died, the target now: it took effect.
    unknown = StepResult(step, "unknown", 1, None, lost)
    assert merged(unknown, compliant).status == "changed"
    # Changed, then reverted by hand with another bit set (drift): the drift is reported and
    # the earlier command kept, so rollback still re-reads the host.
    drifted = StepResult(step, "drifted", 1, None, error="changed since the plan")
    both = merged(changed, drifted)
    assert both.status == "drifted" and both.commands == sent and both.may_have_changed
    # This run never reached the host (locked, stopped): what the earlier run did stands.
    for untouched in (StepResult(step, "locked"), StepResult(step, "skipped")):
        assert merged(changed, untouched).status == "changed"
    # Nothing sent before, compliant now (fixed by hand): already compliant, nothing to undo.
    refused = StepResult(step, "drifted", 1, None)
    assert merged(refused, compliant).status == "already-compliant"
    assert not merged(refused, compliant).may_have_changed
    # Sent again after an earlier failure: this run's outcome, both commands kept.
    failed = StepResult(step, "failed", 1, 1, [CommandRun(MOD_0, 1, "busy", 0.1, "failed")])
    again = merged(failed, changed)
    assert again.status == "changed" and [c.outcome for c in again.commands] == ["failed", "ok"]


def load_plan_step() -> Step:
    return Step(
        "uap-1", "UAP-SFP-P978-B0", "P978", 0, 1, 0, "LST SFP: ID=P978;", (MOD_0,), (MOD_1,)
    )
