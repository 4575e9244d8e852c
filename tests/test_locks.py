"""One change per host across processes and users: the lock folder comes from the inventory
(else a per-machine folder that is the same for every user), the holder is named to whoever
is refused, and an unusable lock folder is a typed error before anything is sent."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import invoke, module_lab, write_lab_inventory

import mml_tool as mt
from mml_tool import _api, audit
from mml_tool.change import load_record
from mml_tool.change.lock import lock_dir_for, shared_lock_dir
from mml_tool.errors import LockError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import PASSWORD_ENV, Lab
from mml_tool.lab.uap import NodeConfig
from mml_tool.locks import default_lock_dir, host_lock, prepare_lock_dir

PASSWORD = "Lock-Lab-Pass-4k"
START = {"uap-1": 1, "uap-2": 1}
CLI = "from mml_tool.cli import cli; cli()"
HOLDER = """
import sys
from pathlib import Path
from mml_tool.locks import host_lock
with host_lock(Path(sys.argv[1]), sys.argv[2], change_id="CHG-BOB", operator="bob",
               action="apply"):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    nodes = [NodeConfig("uap-1", layout="table"), NodeConfig("uap-2", layout="value")]
    yield from module_lab(tmp_path_factory, "locks-lab", nodes, PASSWORD)


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv("MML_TOOL_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.delenv("MML_TOOL_LOCKS", raising=False)  # the inventory's lock_dir decides
    monkeypatch.setenv("MML_TOOL_OPERATOR", "op-alice")
    return tmp_path


@pytest.fixture
def inventory(lab: Lab, env: Path) -> Path:
    """The lab inventory with ``lock_dir: shared-locks`` (relative to the inventory)."""
    for name, value in START.items():
        lab.node(name).store.set_value("P978", value)
    path = write_lab_inventory(lab, timeout=5, connect_timeout=5)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["lock_dir"] = str(env / "shared-locks")
    own = env / "inventory.yaml"
    shutil.copy(path.parent / "lab_known_hosts", env / "lab_known_hosts")
    own.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return own


def mods(trail: Path, host: str) -> list[audit.AuditRecord]:
    return [
        r
        for r in audit.read(trail)
        if r.host == host and r.outcome == "sending" and r.command.startswith("MOD")
    ]


def read_line(proc: subprocess.Popen[str], deadline: float = 15.0) -> str:
    """One line from ``proc``'s stdout, or fail after ``deadline`` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(deadline):
            proc.kill()
            pytest.fail(f"no line from pid {proc.pid} within {deadline} s")
    return proc.stdout.readline().strip()


@contextlib.contextmanager
def held_elsewhere(lock_dir: Path, host: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``host``'s lock (user bob, change CHG-BOB) until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), host],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc) == "locked"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=15)


def test_inventory_lock_dir_is_read_and_resolved(tmp_path: Path) -> None:
    base = {"hosts": {}}
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump({**base, "lock_dir": "locks/here"}), encoding="utf-8")
    assert load_inventory(path, env={}).lock_dir == tmp_path / "locks/here"
    path.write_text(yaml.safe_dump({**base, "lock_dir": "${LOCKS}"}), encoding="utf-8")
    assert load_inventory(path, env={"LOCKS": "/srv/x"}).lock_dir == Path("/srv/x")
    path.write_text(yaml.safe_dump(base), encoding="utf-8")
    assert load_inventory(path, env={}).lock_dir is None


def test_default_lock_dir_is_per_machine_not_per_user(tmp_path: Path) -> None:
    """Two users (other HOME, USER, TMPDIR) get the same folder, outside their homes."""
    seen = []
    for user in ("alice", "bob"):
        home = tmp_path / user
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("MML_TOOL_LOCKS", "XDG_STATE_HOME")}
        env.update(HOME=str(home), USER=user, LOGNAME=user, TMPDIR=str(home))
        out = subprocess.run(
            [sys.executable, "-c", "from mml_tool.locks import *; print(default_lock_dir())"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        seen.append(Path(out.stdout.strip()))
    assert seen[0] == seen[1]
    assert not seen[0].is_relative_to(tmp_path)
    mode = seen[0].parent.stat().st_mode
    assert mode & stat.S_ISVTX and mode & stat.S_IWOTH  # a shared sticky folder (/run/lock...)


def test_lock_dir_precedence_is_one_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library reads no MML_TOOL_LOCKS (the CLI's --lock-dir does); the inventory's
    # lock_dir wins over a given folder, in the CLI and in mml_tool.apply alike.
    monkeypatch.setenv("MML_TOOL_LOCKS", "/srv/mml-locks")
    assert default_lock_dir() == shared_lock_dir()
    inv, given = Path("/srv/fleet-locks"), Path("/srv/mine")
    assert lock_dir_for(inv, given) == inv
    assert lock_dir_for(None, given) == given
    assert lock_dir_for(None, None) == shared_lock_dir()
    assert _api._lock_dir(mt.Inventory.from_hosts([], lock_dir=inv), given) == inv


def test_second_process_is_refused_and_told_who_holds_the_host(
    lab: Lab, inventory: Path, env: Path
) -> None:
    """Two real processes: bob's change holds uap-1; alice's apply (another process, the
    inventory's lock_dir, not MML_TOOL_LOCKS) is refused on uap-1 and told who holds it."""
    plan = env / "plan.json"
    made = invoke("plan", "-i", inventory, "--change-id", "CHG-ALICE", "-o", plan)
    assert made.exit_code == 0, made.output
    lock_dir = env / "shared-locks"
    with held_elsewhere(lock_dir, "uap-1") as holder:
        child_env = {**os.environ, "COLUMNS": "250"}
        child_env.pop("MML_TOOL_LOCKS", None)
        applied = subprocess.run(
            [sys.executable, "-c", CLI, "apply", str(plan), "-i", str(inventory), "--yes"],
            env=child_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert applied.returncode == 1, applied.stdout + applied.stderr
        out = " ".join((applied.stdout + applied.stderr).split())
        assert "Traceback" not in out
        for shown in ("user bob", socket.gethostname(), f"pid {holder.pid}", "change CHG-BOB"):
            assert shown in out, (shown, out)
    record = load_record(plan.with_suffix(".record.json"))
    assert {r.step.host: r.status for r in record.results} == {
        "uap-1": "locked",
        "uap-2": "changed",
    }
    assert mods(env / "audit.jsonl", "uap-1") == []
    assert (lab.node("uap-1").store.get("P978"), lab.node("uap-2").store.get("P978")) == (1, 0)
    # Released: the next apply takes the lock and changes uap-1; the holder line is gone.
    again = invoke("apply", plan, "-i", inventory, "--yes", "--record", env / "again.json")
    assert again.exit_code == 0, again.output
    assert lab.node("uap-1").store.get("P978") == 0
    assert (lock_dir / "uap-1.lock").read_text(encoding="utf-8") == ""


def test_holder_is_named_in_the_library_error(tmp_path: Path) -> None:
    with (
        held_elsewhere(tmp_path / "locks", "uap-9") as holder,
        pytest.raises(LockError) as caught,
        host_lock(tmp_path / "locks", "uap-9"),
    ):
        pass
    message = str(caught.value)
    assert "another mml-tool change holds" in message
    assert f"pid {holder.pid}" in message and "user bob" in message and "CHG-BOB" in message


def test_lock_folder_and_files_are_made_for_several_users(tmp_path: Path) -> None:
    """Even under umask 077 the folder is 1777 (sticky) and lock files 0666."""
    old = os.umask(0o077)
    try:
        lock_dir = prepare_lock_dir(tmp_path / "new" / "locks")
        with host_lock(lock_dir, "uap-1", change_id="CHG-1"):
            body = json.loads((lock_dir / "uap-1.lock").read_text(encoding="utf-8"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o1777
    assert stat.S_IMODE((lock_dir / "uap-1.lock").stat().st_mode) == 0o666
    assert body["change_id"] == "CHG-1" and body["pid"] == os.getpid()


def test_a_symlinked_lock_file_is_refused(tmp_path: Path) -> None:
    """A link planted in a shared folder must not make us write into someone else's file."""
    lock_dir = prepare_lock_dir(tmp_path / "locks")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    (lock_dir / "uap-1.lock").symlink_to(victim)
    with pytest.raises(LockError, match="cannot use the lock folder"), host_lock(lock_dir, "uap-1"):
        pass
    assert victim.read_text(encoding="utf-8") == "precious\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_another_user_can_lock_files_made_by_the_first(tmp_path: Path) -> None:
    """root makes the folder and the lock file; user nobody (a forked child that dropped its
    privileges) locks the same file, and root is then refused naming nobody's change."""
    shared = Path(tempfile.mkdtemp(prefix="mml-lock-test-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        lock_dir = prepare_lock_dir(shared / "locks")
        with host_lock(lock_dir, "uap-1"):
            pass  # the file now exists, owned by root
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: user nobody
            code = 1
            try:
                os.close(ready_r)
                os.close(go_w)
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                with host_lock(lock_dir, "uap-1", change_id="CHG-NOBODY", operator="carol"):
                    os.write(ready_w, b"L")
                    os.read(go_r, 1)
                code = 0
            except BaseException as exc:
                os.write(ready_w, f"E{exc}".encode()[:500])
            finally:
                os._exit(code)
        os.close(ready_w)
        os.close(go_r)
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(ready_r, selectors.EVENT_READ)
                assert sel.select(15), "the second user's process did not answer"
            answer = os.read(ready_r, 500).decode()
            assert answer == "L", answer
            with pytest.raises(LockError) as caught, host_lock(lock_dir, "uap-1"):
                pass
            assert "user carol" in str(caught.value) and "CHG-NOBODY" in str(caught.value)
            assert f"pid {pid}" in str(caught.value)
        finally:
            os.write(go_w, b"x")
            _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        shutil.rmtree(shared)


def _unusable_lock_dirs(tmp_path: Path) -> dict[str, Any]:
    a_file = tmp_path / "a-file"
    a_file.write_text("", encoding="utf-8")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    return {"not-a-folder": a_file / "locks", "read-only": read_only}


@pytest.mark.parametrize("kind", ["not-a-folder", "read-only"])
def test_unusable_lock_folder_is_a_typed_error_and_nothing_is_sent(
    lab: Lab, inventory: Path, env: Path, kind: str
) -> None:
    if kind == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder anyway")
    plan = env / "plan.json"
    assert invoke("plan", "-i", inventory, "-o", plan).exit_code == 0
    bad = _unusable_lock_dirs(env)[kind]
    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    doc["lock_dir"] = str(bad)
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = invoke("apply", plan, "-i", inventory, "--yes")
    assert result.exit_code == 1, result.output
    flat = result.output.replace("\n", "")
    assert f"cannot use the lock folder {bad}" in flat and "lock_dir" in flat
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (env / "audit.jsonl").exists()
    assert lab.node("uap-1").store.get("P978") == 1
    assert not plan.with_suffix(".record.json").exists()


def test_exec_write_is_refused_while_a_change_holds_the_host(
    lab: Lab, inventory: Path, env: Path
) -> None:
    mod = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
    with held_elsewhere(env / "shared-locks", "uap-1"):
        result = invoke("exec", "-i", inventory, "uap-1", mod, "--allow-write", "--yes")
    assert result.exit_code == 1, result.output
    assert "user bob" in result.output and "CHG-BOB" in result.output
    assert lab.node("uap-1").store.get("P978") == 1
    assert not (env / "audit.jsonl").exists()
    # Free again: the same exec goes through (and is audited).
    result = invoke("exec", "-i", inventory, "uap-1", mod, "--allow-write", "--yes")
    assert result.exit_code == 0, result.output
    assert lab.node("uap-1").store.get("P978") == 0
    assert len(mods(env / "audit.jsonl", "uap-1")) == 1


def test_production_example_names_a_shared_lock_dir() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {"MML_USER": "ops", "MML_PASSWORD": "pw", "CCGW_AGENT_PASSWORD": "agent"}
    inv = load_inventory(root / "inventories" / "production.example.yaml", env=env)
    assert inv.lock_dir == Path("/var/lib/mml-tool/locks")
    assert inv.plan_signing_key is None  # shown commented out: signing is optional


def _as_nobody(action: Any) -> str:
    """Run ``action()`` in a forked child that dropped to user nobody; its text (or the error
    it raised, as ``TypeName: message``) comes back through a pipe within 15 s."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                text = str(action())
            except Exception as exc:
                text = f"{type(exc).__name__}: {exc}"
            os.write(write_end, text.encode()[:4000])
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(read_end, selectors.EVENT_READ)
            assert sel.select(15), "the child did not answer"
        return os.read(read_end, 4000).decode()
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second user")
def test_lock_folder_another_user_cannot_write_is_a_typed_error() -> None:
    """A folder root made 0755 (or read-only for everyone) refuses user nobody, by name."""
    shared = Path(tempfile.mkdtemp(prefix="mml-lock-test-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        (shared / "root-only").mkdir(mode=0o755)
        (shared / "read-only").mkdir(mode=0o555)
        for name in ("root-only", "read-only"):
            folder = shared / name
            answer = _as_nobody(lambda folder=folder: prepare_lock_dir(folder))
            assert answer.startswith(f"LockError: cannot use the lock folder {folder}"), answer
            assert "lock_dir" in answer
            answer = _as_nobody(lambda folder=folder: host_lock(folder, "uap-1").__enter__())
            assert answer.startswith(f"LockError: cannot use the lock folder {folder}"), answer
        # Below a folder nobody cannot write: creating the lock folder fails, named too.
        answer = _as_nobody(lambda: prepare_lock_dir(shared / "root-only" / "locks"))
        assert answer.startswith("LockError: cannot use the lock folder"), answer
        assert "Permission denied" in answer
    finally:
        shutil.rmtree(shared)
