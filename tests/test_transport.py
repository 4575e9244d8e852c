"""Transports against the lab simulator over loopback: bytes, failures, SSH host keys."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from conftest import RunningLab
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mml_tool.errors import HostKeyError, TransportError
from mml_tool.mml.transport import (
    SshShellTransport,
    SshTunnelTransport,
    TcpTransport,
    Transport,
    fingerprint,
    make_transport,
)

TRANSPORTS = ("ssh", "ssh-tunnel", "tcp")


def read_until(t: Transport, marker: bytes, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data and time.monotonic() < deadline:
        data += t.read(deadline)
    return data


def ed25519_key() -> paramiko.PKey:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem.decode()))


@pytest.fixture
def free_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says anything."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bytes_round_trip_and_read_deadline(lab_hosts: RunningLab, transport: str) -> None:
    host = lab_hosts.host("uap-1", transport)
    t = make_transport(host)
    assert type(t) is {"ssh": SshShellTransport, "ssh-tunnel": SshTunnelTransport,
                       "tcp": TcpTransport}[transport]  # fmt: skip
    t.open()
    try:
        start = time.monotonic()
        assert t.read(start + 0.2) == b""  # nothing sent: empty at the deadline
        assert 0.15 <= time.monotonic() - start < 2
        assert host.password is not None
        t.write(f'LGI:OP="admin",PWD="{host.password.reveal()}";\r\n'.encode())
        assert b"RETCODE = 0" in read_until(t, b"---    END")
        t.write(b"LGO:;\r\n")  # the element answers, then closes the connection
        with pytest.raises(TransportError, match=r"closed|lost"):
            for _ in range(50):
                t.read(time.monotonic() + 2)
    finally:
        t.close()
        t.close()  # idempotent


@pytest.mark.parametrize("transport", ["ssh", "tcp"])
def test_connection_refused(lab_hosts: RunningLab, free_port: int, transport: str) -> None:
    host = lab_hosts.host("uap-1", transport, port=free_port)
    with pytest.raises(TransportError, match=rf"127\.0\.0\.1:{free_port}.*refused"):
        make_transport(host).open()


@pytest.mark.parametrize("transport", ["ssh", "tcp"])
def test_unknown_host_name(lab_hosts: RunningLab, transport: str) -> None:
    host = lab_hosts.host("uap-1", transport, hostname="no-such-host.invalid")
    with pytest.raises(TransportError, match="cannot resolve the host name"):
        make_transport(host).open()


def test_ssh_to_a_silent_port_times_out(lab_hosts: RunningLab, silent_server: int) -> None:
    host = lab_hosts.host("uap-1", "ssh", port=silent_server, connect_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(TransportError, match=r"no SSH handshake within 0\.5 s"):
        make_transport(host).open()
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("transport", ["ssh", "ssh-tunnel"])
def test_ssh_auth_failure_names_the_user(lab_hosts: RunningLab, transport: str) -> None:
    from mml_tool.secret import Secret

    host = lab_hosts.host("uap-1", transport)
    if host.jump is not None:
        host = dataclasses.replace(
            host, jump=dataclasses.replace(host.jump, password=Secret("nope-pw-1"))
        )
    else:
        host = dataclasses.replace(host, password=Secret("nope-pw-1"))
    with pytest.raises(TransportError, match="authentication failed for user 'admin'") as info:
        make_transport(host).open()
    assert "nope-pw-1" not in str(info.value)


def test_tunnel_to_a_port_the_jump_host_refuses(lab_hosts: RunningLab, free_port: int) -> None:
    host = lab_hosts.host("uap-1", "ssh-tunnel", port=free_port)
    with pytest.raises(TransportError, match=f"could not open a tunnel to 127.0.0.1:{free_port}"):
        make_transport(host).open()


# -- host keys


@pytest.mark.parametrize("transport", ["ssh", "ssh-tunnel"])
def test_unknown_host_key_is_refused(lab_hosts: RunningLab, tmp_path: Path, transport: str) -> None:
    kh = tmp_path / "known_hosts"
    host = lab_hosts.host("uap-1", transport, known_hosts=kh)
    if host.jump is not None:
        host = dataclasses.replace(host, jump=dataclasses.replace(host.jump, known_hosts=kh))
    port = lab_hosts.lab.node("uap-1").ssh_port
    with pytest.raises(HostKeyError) as info:
        make_transport(host).open()
    msg = str(info.value)
    key = lab_hosts.lab.server.host_key
    assert f"[127.0.0.1]:{port}" in msg and "unknown SSH host key" in msg
    assert (
        "ssh-ed25519" in msg and fingerprint(key) in msg and fingerprint(key).startswith("SHA256:")
    )
    assert "trust_on_first_use" in msg and str(kh) in msg
    assert not kh.exists()


def test_trust_on_first_use_records_the_key(lab_hosts: RunningLab, tmp_path: Path) -> None:
    kh = tmp_path / "sub" / "known_hosts"
    port = lab_hosts.lab.node("uap-1").ssh_port
    host = lab_hosts.host("uap-1", "ssh", known_hosts=kh, trust_on_first_use=True)
    t = make_transport(host)
    t.open()
    t.close()
    line = lab_hosts.lab.server.known_hosts_line(port)
    assert line.startswith(f"[127.0.0.1]:{port} ssh-ed25519 ")
    assert kh.read_text() == line + "\n"
    assert kh.stat().st_mode & 0o777 == 0o600
    # Recorded: now accepted without trust on first use, and not recorded twice.
    t = make_transport(dataclasses.replace(host, trust_on_first_use=False))
    t.open()
    t.close()
    assert kh.read_text() == line + "\n"


@pytest.mark.parametrize("other", ["same-type", "other-type"])
def test_changed_host_key_is_refused_even_with_tofu(
    lab_hosts: RunningLab, tmp_path: Path, other: str
) -> None:
    port = lab_hosts.lab.node("uap-1").ssh_port
    old = ed25519_key() if other == "same-type" else paramiko.ECDSAKey.generate()
    kh = tmp_path / "known_hosts"
    before = f"[127.0.0.1]:{port} {old.get_name()} {old.get_base64()}\n"
    kh.write_text(before)
    host = lab_hosts.host("uap-1", "ssh", known_hosts=kh, trust_on_first_use=True)
    with pytest.raises(HostKeyError, match="CHANGED") as info:
        make_transport(host).open()
    assert f"[127.0.0.1]:{port}" in str(info.value)
    assert fingerprint(lab_hosts.lab.server.host_key) in str(info.value)
    assert kh.read_text() == before  # never overwritten


@pytest.mark.parametrize("also_known", [True, False])
def test_a_revoked_host_key_is_refused(
    lab_hosts: RunningLab, tmp_path: Path, also_known: bool
) -> None:
    """OpenSSH's ``@revoked`` marker: the key is refused even where a line trusts it, and
    trust on first use does not record it."""
    port = lab_hosts.lab.node("uap-1").ssh_port
    key = lab_hosts.lab.server.host_key
    kh = tmp_path / "known_hosts"
    lines = [f"@revoked * {key.get_name()} {key.get_base64()} retired 2026-11"]
    if also_known:
        lines.append(lab_hosts.lab.server.known_hosts_line(port))
    kh.write_text("\n".join(lines) + "\n")
    before = kh.read_text()
    host = lab_hosts.host("uap-1", "ssh", known_hosts=kh, trust_on_first_use=True)
    with pytest.raises(HostKeyError, match="@revoked") as info:
        make_transport(host).open()
    assert fingerprint(key) in str(info.value)
    assert kh.read_text() == before


# -- an element that stops taking data


class _ShellOnly(paramiko.ServerInterface):
    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_pty_request(self, *args: object) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        return True


def _one_shell_server(
    tmp_path: Path,
    shell: Callable[[paramiko.Channel], None],
    interface: paramiko.ServerInterface | None = None,
    **transport: Any,
) -> tuple[int, Path, threading.Thread]:
    """An SSH server on loopback for one connection, whose shell runs ``shell(channel)``; its
    port, a known_hosts file holding its key, and its thread."""
    key = ed25519_key()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n", encoding="utf-8")

    def serve() -> None:
        sock, _ = listener.accept()
        listener.close()
        server = paramiko.Transport(sock, **transport)
        server.add_server_key(key)
        server.start_server(server=interface or _ShellOnly())
        channel = server.accept(10)
        if channel is not None:
            shell(channel)
            channel.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, kh, thread


@pytest.fixture
def stalled_shell(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An SSH server whose shell never reads: its channel window (1 KiB) fills and stays full."""
    done = threading.Event()
    port, kh, thread = _one_shell_server(
        tmp_path, lambda channel: done.wait(30), default_window_size=1024
    )
    try:
        yield port, kh
    finally:
        done.set()
        thread.join(10)


def test_a_write_the_element_never_takes_ends_at_the_timeout(
    lab_hosts: RunningLab, stalled_shell: tuple[int, Path]
) -> None:
    """libssh2's own blocking write waits for ever on a full channel window; ours gives up at
    the host's timeout with what happened."""
    port, kh = stalled_shell
    host = lab_hosts.host("uap-1", "ssh", port=port, known_hosts=kh, timeout=1.0)
    t = make_transport(host)
    t.open()
    try:
        start = time.monotonic()
        with pytest.raises(TransportError, match=r"took no data for 1 s"):
            t.write(b"x" * 64 * 1024)
        assert time.monotonic() - start < 5
    finally:
        t.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_socket_numbered_above_1024_is_read(lab_hosts: RunningLab, transport: str) -> None:
    """A watch keeping hundreds of sessions open has sockets numbered past select()'s limit
    (FD_SETSIZE, 1024): reads and writes must still work there."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the open-files limit ({hard}) is below 1200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers: list[int] = []
    try:
        while not fillers or fillers[-1] < 1030:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        host = lab_hosts.host("uap-1", transport)
        t = make_transport(host)
        t.open()
        try:
            assert host.password is not None
            t.write(f'LGI:OP="admin",PWD="{host.password.reveal()}";\r\n'.encode())
            assert b"RETCODE = 0" in read_until(t, b"---    END")
        finally:
            t.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_what_the_shell_writes_to_stderr_is_read_in_line(
    lab_hosts: RunningLab, tmp_path: Path
) -> None:
    """A shell's stderr is read in the same stream, as a terminal shows it (left unread it
    would be lost, and fill the channel's window)."""

    def shell(channel: paramiko.Channel) -> None:
        channel.sendall_stderr(b"warning: degraded\r\n")
        channel.sendall(b"RETCODE = 0\r\n---    END\r\n")
        channel.recv(1)  # until the client closes

    port, kh, thread = _one_shell_server(tmp_path, shell)
    t = make_transport(lab_hosts.host("uap-1", "ssh", port=port, known_hosts=kh))
    t.open()
    try:
        data = read_until(t, b"---    END")
    finally:
        t.close()
        thread.join(10)
    assert b"warning: degraded" in data and b"RETCODE = 0" in data


def test_a_write_bigger_than_the_window_is_sent_once(lab_hosts: RunningLab, tmp_path: Path) -> None:
    """A command longer than the room left in the element's window goes out in pieces as the
    element reads, each byte once (a resent prefix would run an MML command twice)."""
    received = bytearray()

    def shell(channel: paramiko.Channel) -> None:
        channel.settimeout(5)
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            while data := channel.recv(65536):
                received.extend(data)

    port, kh, thread = _one_shell_server(tmp_path, shell, default_window_size=1024)
    host = lab_hosts.host("uap-1", "ssh", port=port, known_hosts=kh, timeout=10.0)
    payload = b"".join(b"LST SFP: ID=P%04d;\r\n" % i for i in range(400))
    t = make_transport(host)
    t.open()
    try:
        t.write(payload)  # 8 KiB into a 1 KiB window: the first write is always partial
    finally:
        t.close()
        thread.join(10)
    assert bytes(received) == payload


class _NoPty(_ShellOnly):
    def check_channel_pty_request(self, *args: object) -> bool:
        return False


def test_a_refused_shell_leaves_no_write_for_a_later_socket(
    lab_hosts: RunningLab, tmp_path: Path
) -> None:
    """libssh2 frees a half-open channel when the error that refers to it goes: its goodbye
    must not go out on a socket that has since taken the closed one's number (another
    element's session)."""
    import gc

    done = threading.Event()
    port, kh, thread = _one_shell_server(tmp_path, lambda channel: done.wait(10), _NoPty())
    t = make_transport(lab_hosts.host("uap-1", "ssh", port=port, known_hosts=kh))
    with pytest.raises(TransportError, match="refused a shell") as info:
        t.open()
    # Later connections take the lowest free numbers: the closed socket's, if it is free.
    pairs = [socket.socketpair() for _ in range(4)]
    ends = [end for pair in pairs for end in pair]
    for end in ends:
        end.setblocking(False)  # (blocking, the freeing hangs on it for good)
    try:
        del info
        gc.collect()  # the channel and session are freed now
        for end in ends:
            with pytest.raises(BlockingIOError):
                end.recv(1024)
    finally:
        done.set()
        thread.join(10)
        for end in ends:
            end.close()


class _KeyboardInteractiveOnly(_ShellOnly):
    """PAM- or RADIUS-backed logins on Linux-based elements: the password is asked for as a
    keyboard-interactive prompt; plain password authentication is not offered."""

    def __init__(self, password: str) -> None:
        self.password = password

    def get_allowed_auths(self, username: str) -> str:
        return "keyboard-interactive"

    def check_auth_password(self, username: str, password: str) -> int:
        return paramiko.AUTH_FAILED

    def check_auth_interactive(self, username: str, submethods: str) -> paramiko.InteractiveQuery:
        return paramiko.InteractiveQuery("", "", ("Password: ", False))

    def check_auth_interactive_response(self, responses: list[str]) -> int:
        ok = list(responses) == [self.password]
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED


@pytest.mark.parametrize("right", [True, False])
def test_a_keyboard_interactive_login_is_answered_with_the_password(
    lab_hosts: RunningLab, tmp_path: Path, right: bool
) -> None:
    from mml_tool.secret import Secret

    done = threading.Event()
    port, kh, thread = _one_shell_server(
        tmp_path, lambda channel: done.wait(10), _KeyboardInteractiveOnly("ki-Secret-7")
    )
    password = Secret("ki-Secret-7" if right else "wrong-Secret-8")
    host = lab_hosts.host("uap-1", "ssh", port=port, known_hosts=kh, password=password)
    t = make_transport(host)
    try:
        if right:
            t.open()
        else:
            with pytest.raises(TransportError, match="authentication failed") as info:
                t.open()
            assert "Secret" not in str(info.value)
    finally:
        t.close()
        done.set()
        thread.join(10)


class _SlowLogin(_ShellOnly):
    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def check_auth_password(self, username: str, password: str) -> int:
        self.release.wait(10)  # a PAM or RADIUS backend that does not answer
        return paramiko.AUTH_FAILED


def test_a_login_that_gets_no_answer_is_said_as_such(lab_hosts: RunningLab, tmp_path: Path) -> None:
    """A slow login is not worded as a port that speaks no SSH (the handshake was done)."""
    release = threading.Event()
    port, kh, thread = _one_shell_server(tmp_path, lambda channel: None, _SlowLogin(release))
    host = lab_hosts.host("uap-1", "ssh", port=port, known_hosts=kh, connect_timeout=0.5)
    try:
        with pytest.raises(TransportError, match=r"no answer to the SSH login of 'admin' within"):
            make_transport(host).open()
    finally:
        release.set()
        thread.join(10)
