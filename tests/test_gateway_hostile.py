"""GatewayClient against a tiny hostile HTTPS server on loopback: trickled and huge answers.

The lab's gateway simulator is well behaved; these faults (a gateway or a middlebox that sends
one byte at a time, or far too much) come from a small TLS server made for them here, with a
real certificate from the lab's CA.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import lab_env

from mml_tool.cli import cli
from mml_tool.errors import GatewayError
from mml_tool.gateway.client import MAX_REPLY_BYTES, GatewayClient
from mml_tool.gateway.verify import verify_video_directions
from mml_tool.lab.certs import write_lab_certificates
from mml_tool.lab.lab import Lab, make_nodes
from mml_tool.secret import Secret

PASSWORD = "Agent-Pa55word!"
Behaviour = Callable[[ssl.SSLSocket, threading.Event], None]
GIVE_UP = 10.0  # the server stops trickling after this: before the fix, the client waited so long


def _read_request(conn: ssl.SSLSocket) -> None:
    """Read one request (head and Content-Length body) so the client is waiting for the answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("client went away")
        body += chunk


class HostileGateway:
    """Accepts TLS connections on 127.0.0.1 and answers every request with ``behave``."""

    def __init__(self, workdir: Path, behave: Behaviour) -> None:
        certs = write_lab_certificates(workdir)
        self.ca_path = certs.ca_path
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(certs.cert_path, certs.key_path)
        self._behave = behave
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self.stop = threading.Event()
        self.sent = 0
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            with self._tls.wrap_socket(raw, server_side=True) as conn:
                _read_request(conn)
                self._behave(conn, self.stop)
        except (OSError, ConnectionError):
            pass  # the client hung up: that is what it should do
        finally:
            raw.close()

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


def trickle(conn: ssl.SSLSocket, stop: threading.Event, head: bytes) -> None:
    """Send ``head`` at once, then one byte every 50 ms until GIVE_UP seconds have passed."""
    conn.sendall(head)
    end = time.monotonic() + GIVE_UP
    while time.monotonic() < end and not stop.wait(0.05):
        conn.sendall(b"a")


def trickle_headers(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    trickle(conn, stop, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: ")


def trickle_body(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    trickle(conn, stop, head + b'{"retcode": "0", "message": "')


def huge_declared(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    """A well-formed envelope of 2 MiB, announced by Content-Length."""
    body = b'{"retcode": "0", "message": "' + b"x" * (2 << 20) + b'", "result": {}}'
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-GUID: JSESSIONID=abc\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    conn.sendall(head + body)


def huge_chunked(conn: ssl.SSLSocket, stop: threading.Event) -> None:
    """No Content-Length: 64 KiB chunks, 8 MiB in all, unless the client hangs up first."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-GUID: JSESSIONID=abc\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (64 << 10, b" " * (64 << 10))
    for _ in range(128):
        if stop.is_set():
            return
        conn.sendall(chunk)
    conn.sendall(b"0\r\n\r\n")


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Callable[[Behaviour], HostileGateway]]:
    servers: list[HostileGateway] = []

    def start(behave: Behaviour) -> HostileGateway:
        server = HostileGateway(tmp_path / f"gw{len(servers)}", behave)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def client(server: HostileGateway, timeout: float = 1.0) -> GatewayClient:
    return GatewayClient(
        server.url,
        "101",
        Secret(PASSWORD),
        phone_number="40038",
        ca_bundle=server.ca_path,
        timeout=timeout,
        poll_events=False,
    )


@pytest.mark.parametrize("behave", [trickle_headers, trickle_body], ids=["headers", "body"])
def test_a_trickling_gateway_hits_one_overall_deadline(
    hostile: Callable[[Behaviour], HostileGateway], behave: Behaviour
) -> None:
    server = hostile(behave)
    started = time.monotonic()
    with client(server, timeout=1.0) as gw, pytest.raises(GatewayError) as info:
        gw.sign_in()
    elapsed = time.monotonic() - started
    # One deadline for connect, headers and body: 1 s, not "1 s between two bytes" (which
    # waits until the server gives up); the bound leaves room for a loaded machine.
    assert elapsed < GIVE_UP / 2, f"the client waited {elapsed:.1f} s for a trickling gateway"
    message = str(info.value)
    assert "no answer" in message and "within 1 s" in message, message
    assert server.url in message and PASSWORD not in message


def test_verify_against_a_trickling_gateway_ends_with_an_error(
    hostile: Callable[[Behaviour], HostileGateway],
) -> None:
    server = hostile(trickle_headers)
    started = time.monotonic()
    result = verify_video_directions(
        lambda: client(server, timeout=1.0), called="40040", skill_id=25, step_timeout=1.0
    )
    assert time.monotonic() - started < GIVE_UP / 2
    assert result.status == "error"
    assert result.error is not None and "no answer" in result.error


@pytest.mark.parametrize("behave", [huge_declared, huge_chunked], ids=["declared", "chunked"])
def test_a_huge_answer_is_refused(
    hostile: Callable[[Behaviour], HostileGateway], behave: Behaviour
) -> None:
    server = hostile(behave)
    started = time.monotonic()
    with client(server, timeout=5.0) as gw, pytest.raises(GatewayError) as info:
        gw.sign_in()
    assert time.monotonic() - started < 5.0
    message = str(info.value)
    assert "1 MiB" in message and "refused" in message, message
    assert info.value.retcode == ""
    assert not gw.signed_in
    assert MAX_REPLY_BYTES == 1 << 20


def test_run_rolls_back_promptly_when_the_gateway_trickles(
    hostile: Callable[[Behaviour], HostileGateway],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run`'s rollback decision waits for verification: a trickling gateway must not hold
    the change (and the rollback) hostage."""
    server = hostile(trickle_headers)
    with Lab(make_nodes(1, varied=True), workdir=tmp_path / "lab", password="lab-Pw-77x") as lab:
        inventory = lab.write_inventory(tmp_path / "lab" / "inventory.yaml")
        for key, value in lab_env(inventory).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CCGW_AGENT_PASSWORD", PASSWORD)
        monkeypatch.setenv("MML_TOOL_AUDIT", str(tmp_path / "audit.jsonl"))
        monkeypatch.setenv("MML_TOOL_LOCKS", str(tmp_path / "locks"))
        doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        doc["gateways"] = {
            "hostile": {
                "url": server.url,
                "ca_bundle": str(server.ca_path),
                "agent_id": "101",
                "agent_password": "${CCGW_AGENT_PASSWORD}",
                "phone_number": "40038",
                "called": "40040",
                "skill_id": 25,
                "timeout": 1,
            }
        }
        doc["hosts"]["uap-1"]["gateway"] = "hostile"
        inventory.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        assert lab.node("uap-1").store.get_bit("P978", 0) == 1
        started = time.monotonic()
        args = ["run", "-i", str(inventory), "--change-id", "CHG-TRICKLE", "--yes"]
        args += ["--limit", "uap-1", "--evidence", str(tmp_path / "ev")]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        elapsed = time.monotonic() - started
        assert result.exit_code == 1, result.output  # verification could not run: error
        assert lab.node("uap-1").store.get_bit("P978", 0) == 1  # rolled back
        assert elapsed < GIVE_UP / 2, f"run took {elapsed:.1f} s"
        verify = json.loads((tmp_path / "ev" / "CHG-TRICKLE" / "verify-hostile.json").read_text())
        assert verify["status"] == "error" and "no answer" in verify["error"]
