"""MML over a plain TCP connection."""

from __future__ import annotations

import socket
import time

from mml_tool.errors import TransportError
from mml_tool.mml.params import ConnectionParams
from mml_tool.mml.transport.base import KEEPALIVE, READ_SIZE, _connect_error, wait_for


class TcpTransport:
    """MML over a plain TCP connection (port 6000 on most elements)."""

    def __init__(self, host: ConnectionParams) -> None:
        self.host = host
        self.where = f"{host.name} ({host.address})"
        self._sock: socket.socket | None = None

    def open(self) -> None:
        h = self.host
        try:
            sock = socket.create_connection((h.hostname, h.port), timeout=h.connect_timeout)
        except OSError as exc:
            raise _connect_error(self.where, exc, h.connect_timeout) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):  # Linux: first probe after KEEPALIVE s, not 2 h
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE)
        except OSError as exc:
            sock.close()
            raise TransportError(f"{self.where}: cannot set up the socket ({exc})") from None
        sock.settimeout(h.connect_timeout)  # bounds sendall(); reads wait with poll()
        self._sock = sock

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise TransportError(f"{self.where}: not connected: call open() first")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise TransportError(f"{self.where}: connection lost while sending ({exc})") from None

    def read(self, deadline: float) -> bytes:
        if self._sock is None:
            raise TransportError(f"{self.where}: not connected: call open() first")
        try:
            if not wait_for(self._sock, deadline - time.monotonic()):
                return b""
            data = self._sock.recv(READ_SIZE)
        except OSError as exc:
            raise TransportError(f"{self.where}: connection lost ({exc})") from None
        if not data:
            raise TransportError(f"{self.where}: connection closed by the peer")
        return data

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
