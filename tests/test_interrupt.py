"""Ctrl-C during `check` while a host hangs in its SSH handshake, and a port that closes the
connection at once: real subprocess, real signals, a hostile loopback server."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import RunningLab

from mml_tool.errors import TransportError
from mml_tool.mml.transport import make_transport


class Server:
    """Accepts TCP on 127.0.0.1 and never speaks SSH (``close_at_once``: hangs up at once)."""

    def __init__(self, close_at_once: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.close_at_once = close_at_once
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.close_at_once:
                conn.close()
            else:
                self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def hanging() -> Iterator[Server]:
    server = Server()
    yield server
    server.close()


@pytest.fixture
def closing() -> Iterator[Server]:
    server = Server(close_at_once=True)
    yield server
    server.close()


def test_a_port_that_closes_at_once_is_reported_as_such(
    lab_hosts: RunningLab, closing: Server
) -> None:
    host = lab_hosts.host("uap-1", "ssh", port=closing.port, connect_timeout=10)
    start = time.monotonic()
    with pytest.raises(TransportError) as info:
        make_transport(host).open()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "closed the connection" in message and "no SSH handshake" not in message
    assert f"127.0.0.1:{closing.port}" in message


class Lines:
    """A pipe read line by line on a thread, so the test can wait for a line with a deadline."""

    def __init__(self, pipe: object) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self.queue.put(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} within {timeout} s; got {self.seen!r}")


def _start_check(server: Server, tmp_path: Path, connect_timeout: float) -> subprocess.Popen[str]:
    inventory = tmp_path / "inv.yaml"
    hosts = {"uap-hang": {"hostname": "127.0.0.1", "port": server.port}}
    defaults = {"username": "u", "password": "p", "connect_timeout": connect_timeout,
                "timeout": 30, "known_hosts": str(tmp_path / "kh"),
                "trust_on_first_use": True}  # fmt: skip
    inventory.write_text(yaml.safe_dump({"defaults": defaults, "hosts": hosts}), "utf-8")
    return subprocess.Popen(
        [sys.executable, "-c", "from mml_tool.cli import main; main()", "check", "-i", inventory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Python turns SIGINT into KeyboardInterrupt only when it is not ignored at start.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_during_check_answers_at_once_and_a_second_exits(
    hanging: Server, tmp_path: Path
) -> None:
    proc = _start_check(hanging, tmp_path, connect_timeout=30)
    try:
        stderr = Lines(proc.stderr)
        assert hanging.accepted.wait(20), "mml-tool never connected"
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        line = stderr.wait_for("stopping", timeout=5)
        assert time.monotonic() - start < 1.0, line
        assert "waiting for 1 host" in line
        assert proc.poll() is None  # still closing the hung host, as it said
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        code = proc.wait(timeout=5)
        assert time.monotonic() - start < 1.0
        assert code == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_one_ctrl_c_ends_once_the_hung_host_gives_up(hanging: Server, tmp_path: Path) -> None:
    proc = _start_check(hanging, tmp_path, connect_timeout=3)
    try:
        stderr = Lines(proc.stderr)
        assert hanging.accepted.wait(20), "mml-tool never connected"
        proc.send_signal(signal.SIGINT)
        stderr.wait_for("stopping: waiting for 1 host", timeout=5)
        assert proc.wait(timeout=10) == 130  # its handshake deadline, not a hang
        stderr.wait_for("interrupted", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
