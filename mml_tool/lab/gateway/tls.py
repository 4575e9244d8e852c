"""The HTTPS side of the gateway simulator: TLS handshakes in the connection's own thread."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the simulator imports this module
    from mml_tool.lab.gateway.server import GatewaySimulator

logger = logging.getLogger(__name__)


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], sim: GatewaySimulator) -> None:
        self.sim = sim
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so that a client that
        # connects and never completes it cannot stall the accept loop.
        raw: socket.socket = request
        raw.settimeout(10.0)
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every answer.
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.sim._tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        self.sim._track(conn, add=True)
        try:
            _Handler(conn, client_address, self)
        except OSError as exc:
            logger.debug("connection from %s ended: %s", client_address, exc)
        finally:
            self.sim._track(conn, add=False)
            with contextlib.suppress(OSError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsServer
    # Idle keep-alive connections close after this; longer than httpx's 5 s pool expiry so
    # the server never closes a connection the client is about to reuse.
    timeout = 60.0

    def _dispatch(self) -> None:
        self.server.sim._handle(self)

    do_GET = _dispatch
    do_PUT = _dispatch
    do_POST = _dispatch
    do_DELETE = _dispatch
    do_PATCH = _dispatch
    do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("gateway simulator: " + format, *args)
