"""What every transport is: a byte pipe with a read deadline; shared connect-error wording."""

from __future__ import annotations

import logging
import math
import select
import socket
from typing import Protocol

from mml_tool.errors import TransportError

log = logging.getLogger("mml_tool.transport")
READ_SIZE = 65536
KEEPALIVE = 30  # seconds: NOC and the vendor rely on keepalives, MML has no heartbeat


class Transport(Protocol):
    def open(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def read(self, deadline: float) -> bytes:
        """Bytes that arrived (at least one) or b"" at ``deadline`` (a ``time.monotonic()``
        value); raises TransportError when the peer closed or reset the connection."""
        ...

    def close(self) -> None: ...


def wait_for(
    sock: socket.socket, timeout: float, *, read: bool = True, write: bool = False
) -> bool:
    """Wait up to ``timeout`` seconds until ``sock`` can be read (or written); whether it can.
    poll(), not select(): a socket numbered past 1024 (a watch keeping hundreds of sessions
    open) is out of select()'s range."""
    poller = select.poll()
    poller.register(sock, (select.POLLIN if read else 0) | (select.POLLOUT if write else 0))
    return bool(poller.poll(max(0, math.ceil(timeout * 1000))))


def _closed_by_peer(exc: BaseException) -> bool:
    """Whether the peer hung up (EOF, reset), possibly under another error raised while
    handling it (which keeps it as its context)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, (EOFError, ConnectionResetError, BrokenPipeError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _connect_error(where: str, exc: BaseException, timeout: float) -> TransportError:
    if isinstance(exc, socket.gaierror):
        return TransportError(f"{where}: cannot resolve the host name: check 'hostname'")
    if isinstance(exc, TimeoutError):
        return TransportError(
            f"{where}: no answer within {timeout:g} s: check the address, port, firewall and "
            "routing, or raise connect_timeout"
        )
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(
            f"{where}: connection refused: check the port and that the service runs"
        )
    if _closed_by_peer(exc):  # not a slow server: waiting longer would not help
        return TransportError(
            f"{where}: the server closed the connection before the SSH handshake: check that "
            "the port is the SSH port and that the server accepts connections from this host"
        )
    return TransportError(f"{where}: cannot connect ({type(exc).__name__}: {exc})")
