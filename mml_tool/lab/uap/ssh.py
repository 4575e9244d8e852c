"""The SSH side of the simulator: host keys, the paramiko server interface, channel helpers."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from mml_tool.errors import ConfigError
from mml_tool.lab.uap.state import UapNode

if TYPE_CHECKING:  # the server imports this module
    from mml_tool.lab.uap.server import UapServer


def generate_host_key() -> tuple[paramiko.PKey, str]:
    """A fresh Ed25519 host key (generated with ``cryptography``) and its OpenSSH PEM text."""
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem)), pem


def load_or_create_host_key(path: Path | None) -> paramiko.PKey:
    """Load the key at ``path``; generate one (and save it there, mode 0600) when missing."""
    if path is not None and path.exists():
        try:
            return paramiko.PKey.from_path(path)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the SSH host key ({exc})") from exc
    key, pem = generate_host_key()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pem)
    return key


class _SshInterface(paramiko.ServerInterface):
    def __init__(self, server: UapServer, node: UapNode) -> None:
        self.server = server
        self.lock = threading.Lock()
        self.shells: dict[int, threading.Event] = {}
        self.ptys: set[int] = set()
        self.direct: dict[int, int] = {}
        self.keys = {(k.get_name(), k.asbytes()) for k in node.config.public_keys()}
        self.by_key = False  # authenticated with a public key: MML is logged in already

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey" if self.keys else "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if self.server.credentials_ok(username, password):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        # paramiko verifies the client's signature itself before the session is granted.
        if username == self.server.username and (key.get_name(), key.asbytes()) in self.keys:
            self.by_key = True
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            with self.lock:
                self.shells[chanid] = threading.Event()
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(
        self,
        channel: paramiko.Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        with self.lock:
            self.ptys.add(channel.get_id())
        return True

    def check_channel_window_change_request(
        self,
        channel: paramiko.Channel,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
    ) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        with self.lock:
            event = self.shells.get(channel.get_id())
        if event is None:
            return False
        event.set()
        return True

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        host, port = destination
        if host in ("127.0.0.1", "localhost", self.server.host) and port in self.server.tcp_ports():
            with self.lock:
                self.direct[chanid] = port
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _SockConn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, n: int) -> bytes:
        return self.sock.recv(n)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)


def _close_channel(chan: paramiko.Channel) -> None:
    # The transport may already be gone (client vanished, drop fault): nothing left to tell.
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        chan.close()


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
