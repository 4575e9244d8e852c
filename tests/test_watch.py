"""`watch` over the lab: sessions kept open between rounds, a node that drops its sessions
reconnected without an `error`, only changes logged, history and metrics per round, and a
real `mml-tool watch` process stopped by SIGTERM in the middle of a round."""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner
from conftest import module_lab, write_lab_inventory
from prometheus_client.parser import text_string_to_metric_families

from mml_tool.cli import cli
from mml_tool.history.config import parse_location
from mml_tool.history.store import HistoryStore
from mml_tool.inventory import HostConfig, load_inventory
from mml_tool.lab.lab import PASSWORD_ENV, Lab
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.mml.session import MmlSession
from mml_tool.policy import load_policy
from mml_tool.watch import Round, Watcher, backoff_delay

PASSWORD = "Watch-Lab-Pass-4k"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    nodes = [
        NodeConfig("uap-1"),
        NodeConfig("uap-2", layout="vertical"),
        # Closes the connection after answering 4 commands (LGI, REG NE, LST, LST): the kept
        # session dies between rounds, as when an element drops it or its idle timeout ends it.
        NodeConfig("drop-1", faults=FaultConfig(drop_after=4)),
    ]
    yield from module_lab(tmp_path_factory, "watch-lab", nodes, PASSWORD)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=5, connect_timeout=5)


@pytest.fixture(autouse=True)
def env(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    for name, value in {"uap-1": 1, "uap-2": 0, "drop-1": 0}.items():
        lab.node(name).store.set_value("P978", value)


def test_rounds_keep_sessions_and_reconnect_a_dropping_node(lab: Lab, inventory: Path) -> None:
    hosts = list(load_inventory(inventory).hosts.values())
    rounds: list[Round] = []
    said: list[str] = []

    def on_round(done: Round) -> None:
        rounds.append(done)
        if done.number == 2:  # fixed between rounds 2 and 3
            lab.node("uap-1").store.set_value("P978", 0)

    with Watcher(hosts, load_policy(None), on_round=on_round, say=said.append) as watcher:
        for _ in range(5):
            watcher.round()
        sessions = watcher.sessions
        assert sessions.open_count == 3
        # uap-1 and uap-2: one session each for the whole watch; drop-1: a new one whenever
        # its kept one had been dropped (rounds 3 and 5), without ever reporting an error.
        assert sessions.reconnects == 2
        assert sessions.opened == 3 + sessions.reconnects
    assert sessions.open_count == 0  # logged out at the end
    assert [r.exit_code for r in rounds] == [100, 100, 0, 0, 0]
    assert all(f.status != "error" for r in rounds for f in r.findings)
    assert [r.reconnects for r in rounds] == [0, 0, 1, 0, 1]
    # Only changes are logged: the three first statuses, then uap-1 fixed.
    assert [line.split(" ", 1)[1] for line in said] == [
        "drop-1 UAP-SFP-P978-B0: new -> pass",
        "uap-1 UAP-SFP-P978-B0: new -> fail",
        "uap-2 UAP-SFP-P978-B0: new -> pass",
        "uap-1 UAP-SFP-P978-B0: fail -> pass",
    ]


def test_max_sessions_bounds_the_kept_sessions(inventory: Path) -> None:
    hosts = list(load_inventory(inventory).hosts.values())
    with Watcher(hosts, load_policy(None), max_sessions=1, workers=1) as watcher:
        for _ in range(3):
            assert all(f.status != "error" for f in watcher.round().findings)
            assert watcher.sessions.open_count == 1
        # one host kept, the two others on a new session each round
        assert watcher.sessions.opened == 1 + 2 * 3


@pytest.mark.parametrize("existing", [False, True], ids=["new-store", "existing-store"])
def test_watch_command_rounds_history_and_metrics(
    inventory: Path, tmp_path: Path, existing: bool
) -> None:
    """A new store is made by HistoryStore (SQLAlchemy); one at the current version is kept
    open by the lite writer (history/lite.py) across the rounds, pruned each round."""
    store, prom = tmp_path / "h.sqlite", tmp_path / "watch.prom"
    with pytest.MonkeyPatch.context() as mp:
        if existing:
            HistoryStore.open(parse_location(str(store), where="t")).close()
            mp.setattr(HistoryStore, "open", None)  # the watch must not need it
        result = CliRunner().invoke(
            cli,
            ["watch", "-i", str(inventory), "--interval", "0.05s", "--rounds", "3",
             "--history", str(store), "--metrics", str(prom), "--keep", "30d"],
        )  # fmt: skip
    assert result.exit_code == 100, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("watching 3 host(s)")
    assert len(lines) == 4  # the header and the three first statuses: nothing after
    runs = CliRunner().invoke(cli, ["history", "runs", "--history", str(store), "--json"])
    listed = json.loads(runs.output)
    assert [(r["command"], r["exit_code"]) for r in listed] == [("watch", 100)] * 3
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    hosts = {s.labels["status"]: s.value for s in families["mml_tool_hosts"].samples}
    assert hosts == {"compliant": 2, "noncompliant": 1, "unknown": 0}


def _read_until(stream: IO[bytes] | None, marker: bytes, timeout: float) -> bytes:
    """``stream`` until ``marker``, with a deadline (no sleeps)."""
    assert stream is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while marker not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"no {marker!r} within {timeout} s: {buffer!r}")
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"exited before {marker!r}: {buffer!r}")
            buffer += chunk
    return buffer


def test_sigterm_during_a_round_stops_cleanly(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # Every reply takes 0.5 s: a round (LGI, REG NE, LST) lasts at least 1.5 s.
    slow = [NodeConfig("slow-1", faults=FaultConfig(latency=0.5)), NodeConfig("slow-2")]
    workdir = tmp_path_factory.mktemp("watch-slow")
    with Lab(slow, workdir=workdir, password=PASSWORD, with_gateway=False) as lab:
        inventory = write_lab_inventory(lab, timeout=5, connect_timeout=5)
        store = tmp_path / "h.sqlite"
        proc = subprocess.Popen(
            [sys.executable, "-c", "from mml_tool.cli import main; main()", "-v", "watch",
             "-i", str(inventory), "--interval", "1h", "--history", str(store)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, PASSWORD_ENV: PASSWORD},
        )  # fmt: skip
        try:
            # -v: the round's start is logged; its replies take 1.5 s at least from there.
            early = _read_until(proc.stderr, b"round 1: checking 2 host(s)", 30)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            err = early + err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - sent
        assert proc.returncode == 0, err.decode()
        text = out.decode()
        # The round in progress finished (both hosts judged), then the watch stopped: it did
        # not wait out the 1 h interval, and left no session behind.
        assert text.startswith("watching 2 host(s)")
        assert "slow-1 UAP-SFP-P978-B0: new -> fail" in text
        assert "slow-2 UAP-SFP-P978-B0: new -> fail" in text
        assert "stopped (SIGTERM): sessions logged out" in text
        assert took < 20
        assert "Traceback" not in err.decode()
        assert "round 1: done" in err.decode() and "round 2" not in err.decode()
        runs = CliRunner().invoke(cli, ["history", "runs", "--history", str(store), "--json"])
        assert [r["command"] for r in json.loads(runs.output)] == ["watch"]


def test_sigterm_between_rounds_stops_at_once(inventory: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mml_tool.cli import main; main()", "-v", "watch",
         "-i", str(inventory), "--interval", "1h", "--no-history",
         "--metrics", str(tmp_path / "w.prom")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, PASSWORD_ENV: PASSWORD},
    )  # fmt: skip
    try:
        _read_until(proc.stderr, b"round 1: done", 30)  # now waiting out the 1 h interval
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert time.monotonic() - sent < 10
    assert "stopped (SIGTERM)" in out.decode()
    assert (tmp_path / "w.prom").exists()


def test_history_that_cannot_be_written_never_stops_the_watch(
    inventory: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(
        cli,
        ["watch", "-i", str(inventory), "--interval", "0.05s", "--rounds", "2",
         "--history", str(blocker / "h.sqlite")],
    )  # fmt: skip
    assert result.exit_code == 100, result.output
    assert caplog.text.count("history not recorded") == 2  # tried again each round


def _free_base_port() -> int:
    """A port P with P and P + 1000 free (a one-node lab's SSH and TCP ports at base_port P)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port + 1000 > 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1000))
                except OSError:
                    continue
            return port
    raise AssertionError("no free pair of ports")


def _rebootable(workdir: Path) -> Callable[[], Lab]:
    """Starts the element ``reboot-1``, each time on the same ports with the same host key, as
    after a reboot."""
    base_port = _free_base_port()

    def boot() -> Lab:
        return Lab([NodeConfig("reboot-1")], base_port=base_port, workdir=workdir,
                   password=PASSWORD, with_gateway=False,
                   host_key_file=workdir / "host_key").start()  # fmt: skip

    return boot


def test_an_element_that_reboots_is_error_while_down_and_reconnected_with_backoff(
    tmp_path_factory: pytest.TempPathFactory, inventory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workdir = tmp_path_factory.mktemp("watch-reboot")
    boot = _rebootable(workdir)

    element = boot()
    try:
        rebooting = load_inventory(write_lab_inventory(element, timeout=5, connect_timeout=5))
        hosts = [rebooting.hosts["reboot-1"], load_inventory(inventory).hosts["uap-2"]]
        now = [1000.0]  # the watch's clock: the backoff is waited out by advancing it
        tried: list[str] = []
        rounds: list[Round] = []

        def session(host: HostConfig) -> MmlSession:
            tried.append(host.name)
            return MmlSession(host)

        caplog.set_level(logging.INFO, logger="mml_tool.watch")
        with Watcher(hosts, load_policy(None), session_factory=session, clock=lambda: now[0],
                     on_round=rounds.append) as watcher:  # fmt: skip

            def status() -> str:
                return {f.host: f.status for f in watcher.round().findings}["reboot-1"]

            assert status() == "fail"  # read (P978 = 1 on a fresh node)
            element.stop()  # goes down: its kept session is cut, its ports refuse
            assert status() == "error"  # the lost session re-opened once, refused
            assert status() == "error"  # within the backoff (1 s): not tried
            now[0] += 1.0
            assert status() == "error"  # tried, refused: the next try in 2 s
            element = boot()
            assert status() == "error"  # up again, but not yet tried
            now[0] += 2.0
            assert status() == "fail"  # reconnected and read: never its last good state
            assert status() == "fail"  # on the session kept again
        attempts = tried.count("reboot-1")
        assert attempts == 4  # round 1, the retry in round 2, rounds 4 and 6
        assert tried.count("uap-2") == 1  # the other host kept its session throughout
        assert all(f.status == "pass" for r in rounds for f in r.findings if f.host == "uap-2")
        errors = [f.error or "" for r in rounds[1:5] for f in r.findings if f.host == "reboot-1"]
        assert all("refused" in e or "closed" in e or "lost" in e for e in errors), errors
        assert "next reconnect attempt in 1 s" in errors[1]
        log = [r.getMessage() for r in caplog.records if r.name == "mml_tool.watch"]
        assert any(m.startswith("reboot-1: cannot be read") for m in log), log
        (back,) = [m for m in log if m.startswith("reboot-1: back")]
        assert "after 3 s" in back and "(2 failed reconnect attempt(s))" in back, back
    finally:
        element.stop()


def test_the_backoff_doubles_up_to_its_cap() -> None:
    delays = [backoff_delay(n) for n in range(1, 10)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_watch_command_survives_a_reboot_and_says_when_the_element_is_back(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    workdir = tmp_path_factory.mktemp("watch-reboot-cli")
    boot = _rebootable(workdir)

    element = boot()
    inventory = write_lab_inventory(element, timeout=5, connect_timeout=5)
    store = tmp_path / "h.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from mml_tool.cli import main; main()", "-v", "watch",
         "-i", str(inventory), "--interval", "0.1s", "--history", str(store)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, PASSWORD_ENV: PASSWORD},
    )  # fmt: skip
    try:
        err = _read_until(proc.stderr, b"round 1: done", 30)
        element.stop()
        # The rounds go on every 0.1 s; the element is tried again after 1 s.
        err += _read_until(proc.stderr, b"reboot-1: cannot be read", 30)
        element = boot()
        err += _read_until(proc.stderr, b"reboot-1: back, after", 30)
        err += _read_until(proc.stderr, b"done", 30)  # the round it was read again in
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=30)
        err += rest
    finally:
        element.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "reboot-1 UAP-SFP-P978-B0: new -> fail" in text
    assert "reboot-1 UAP-SFP-P978-B0: fail -> error: " in text
    assert "reboot-1 UAP-SFP-P978-B0: error -> fail" in text
    assert "Traceback" not in err.decode()
    runs = CliRunner().invoke(cli, ["history", "runs", "--history", str(store), "--json"])
    listed = json.loads(runs.output)
    codes = "".join({100: "r", 1: "e"}[r["exit_code"]] for r in reversed(listed))
    # Every round recorded: read (100), then `error` (1) in each round while down, never the
    # last good state, then read again.
    assert re.fullmatch("r+e+r+", codes), codes
