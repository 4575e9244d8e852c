"""``GatewaySimulator``: the HTTPS server, its lifecycle, timers and request handling."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Collection
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Literal

from mml_tool.lab.certs import DEFAULT_HOSTS, write_lab_certificates
from mml_tool.lab.gateway.handlers import _Handlers
from mml_tool.lab.gateway.http_io import match_route, read_request, request_record, write_reply
from mml_tool.lab.gateway.state import (
    EVENT_SHAPES,
    AgentSpec,
    CallInfo,
    EventDelays,
    GatewayFaults,
    RequestRecord,
    _Call,
    _Ctx,
    _error,
    _not_found,
    _Reply,
    _Session,
)
from mml_tool.lab.gateway.timers import _Timers
from mml_tool.lab.gateway.tls import _TlsServer

logger = logging.getLogger(__name__)


class GatewaySimulator(_Handlers):
    """A stateful CC-Gateway over HTTPS on loopback. See the module docstring for behaviour."""

    def __init__(
        self,
        workdir: Path,
        *,
        one_way_video_ready: Callable[[str], bool],
        agents: dict[str, AgentSpec],
        host: str = "127.0.0.1",
        port: int = 0,
        poll_wait: float = 10.0,
        idle_signout: float = 120.0,
        guid_mode: Literal["dynamic", "static"] = "dynamic",
        guid_rotate_every: int = 3,
        guid_grace: float = 2.0,
        event_delays: EventDelays | None = None,
        faults: GatewayFaults | None = None,
        unreachable_numbers: Collection[str] = (),
        rejected_numbers: Collection[str] = (),
        event_shape: Literal["documented", "wrapped"] = "documented",
    ) -> None:
        if guid_mode not in ("dynamic", "static"):
            raise ValueError(f"guid_mode must be 'dynamic' or 'static', not {guid_mode!r}")
        if event_shape not in EVENT_SHAPES:
            raise ValueError(f"event_shape must be 'documented' or 'wrapped', not {event_shape!r}")
        self.event_shape = event_shape
        self.workdir = workdir
        self.host = host
        self.one_way_video_ready = one_way_video_ready
        self.agents = dict(agents)
        self.poll_wait = poll_wait
        self.idle_signout = idle_signout
        self.guid_mode = guid_mode
        self.guid_rotate_every = max(1, guid_rotate_every)
        self.guid_grace = guid_grace
        self.event_delays = event_delays or EventDelays()
        self.unreachable_numbers = frozenset(unreachable_numbers)
        self.rejected_numbers = frozenset(rejected_numbers)
        self._port = port
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # any state change: events, sessions
        self._faults = faults or GatewayFaults()
        self._fault_counter = 0
        self._sessions: dict[str, _Session] = {}
        self._signing_in: set[str] = set()
        self._call_seq = itertools.count(1)
        self._task_seq = itertools.count(5451)
        self.requests_log: list[RequestRecord] = []
        self._timers = _Timers()
        self._stopping = threading.Event()
        self._conns: set[ssl.SSLSocket] = set()
        self._server: _TlsServer | None = None
        self._threads: list[threading.Thread] = []
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca_path = workdir / "ca.pem"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> GatewaySimulator:
        hosts = list(DEFAULT_HOSTS)
        if self.host not in hosts:
            hosts.append(self.host)
        paths = write_lab_certificates(self.workdir, hosts)
        self.ca_path = paths.ca_path
        self._tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self._tls.load_cert_chain(paths.cert_path, paths.key_path)
        self._stopping.clear()
        self._server = _TlsServer((self.host, self._port), self)
        self._port = self._server.server_address[1]
        server = self._server
        # A short poll interval so that stop() (server.shutdown) returns promptly.
        threads = [
            ("serve", lambda: server.serve_forever(poll_interval=0.05)),
            ("timers", lambda: self._timers.run(self._stopping, self._sweep_interval, self._sweep)),
        ]
        for name, target in threads:
            thread = threading.Thread(target=target, name=f"ccgw-sim-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("gateway simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._timers.wake()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # unblock handler threads waiting on idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        self._server = None

    def __enter__(self) -> GatewaySimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self._port}"

    # ----------------------------------------------------------- observability

    def signed_in_agents(self) -> list[str]:
        with self._lock:
            return sorted(self._sessions)

    def active_calls(self) -> dict[str, CallInfo]:
        with self._lock:
            return {
                agent: CallInfo(c.callid, c.caller, c.called, c.state, c.media_type, c.direction)
                for agent, s in self._sessions.items()
                if (c := s.call) is not None
            }

    def current_guid(self, agent_id: str) -> str | None:
        with self._lock:
            session = self._sessions.get(agent_id)
            return session.guid if session else None

    def open_polls(self, agent_id: str) -> int:
        """How many event polls of the agent the gateway is holding open right now."""
        with self._lock:
            session = self._sessions.get(agent_id)
            return session.open_polls if session else 0

    def sign_ins_in_progress(self) -> set[str]:
        with self._lock:
            return set(self._signing_in)

    def guid_expired(self, agent_id: str) -> bool:
        """True when the agent's current GUID has expired (``guid_expire_after`` fault)."""
        with self._lock:
            session = self._sessions.get(agent_id)
            return session is not None and session.guid_expired

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` is true after some state change, or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout=timeout)

    def set_faults(self, faults: GatewayFaults) -> None:
        with self._lock:
            self._faults = faults
            self._fault_counter = 0

    @property
    def faults(self) -> GatewayFaults:
        with self._lock:
            return self._faults

    def answer_next_poll(self, agent_id: str, body: bytes) -> None:
        """Queue ``body`` as it is (JSON or not) as a poll answer of a signed-in agent: what a
        vendor page prints, for tests of a client's event parsing."""
        with self._cond:
            session = self._sessions.get(agent_id)
            if session is None:
                raise ValueError(f"agent {agent_id} is not signed in")
            session.events.append(bytes(body))
            self._cond.notify_all()

    def ring(self, agent_id: str, caller: str, called: str | None = None) -> str:
        """Offer an incoming call to a signed-in agent (AgentEvent_Ringing). Returns the call ID."""
        with self._cond:
            session = self._sessions.get(agent_id)
            if session is None:
                raise ValueError(f"agent {agent_id} is not signed in")
            if session.call is not None:
                raise ValueError(f"agent {agent_id} already has a call")
            call = _Call(self._new_callid(), caller, called or session.phone, "ringing")
            call.incoming = True
            session.call = call
            self._queue(session, "AgentEvent_Ringing", self._call_content(call, feature="0"))
            return call.callid

    # ------------------------------------------------------------------ timers

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        self._timers.schedule(delay, action)

    # ------------------------------------------------------------ HTTP handling

    def _track(self, conn: ssl.SSLSocket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        ctx, query = read_request(handler)
        agent_id, name = match_route(ctx)
        reply = self._fault_reply()
        if reply is None:
            reply = self._route(name, agent_id, ctx)
        # Recorded before answering, so a client that has its answer finds the request logged.
        record = request_record(ctx, query, agent_id, reply)
        with self._cond:
            self.requests_log.append(record)
            self._cond.notify_all()
        write_reply(handler, reply)

    def _fault_reply(self) -> _Reply | None:
        with self._lock:
            faults = self._faults
            self._fault_counter += 1
            count = self._fault_counter
        if faults.drop_connection_every and count % faults.drop_connection_every == 0:
            return _Reply(status=0, drop=True)
        if faults.http_5xx_every and count % faults.http_5xx_every == 0:
            return _Reply(status=503, text=b"<html><body>503 Service Unavailable</body></html>")
        return None

    def _slow(self) -> None:
        delay = self.faults.slow
        if delay > 0:
            self._stopping.wait(delay)

    def _route(self, name: str | None, agent_id: str | None, ctx: _Ctx) -> _Reply:
        if name is None or agent_id is None:
            self._slow()
            return _not_found(f"no such interface: {ctx.method} {ctx.path}")
        if not agent_id.isdigit():
            self._slow()
            return _not_found(f"agent ID {agent_id!r} is not a number")
        if name in ("sign_in", "force_login"):
            return self._sign_in_guarded(agent_id, ctx, force=name == "force_login")
        self._slow()
        if not 101 <= int(agent_id) <= 999999:
            return _error("000-002", "agent ID out of range 101..999999")
        handler: Callable[[_Session, _Ctx], _Reply] = getattr(self, f"_do_{name}")
        # Every interface but sign-in needs the agent's valid Guid: checked once, here.
        with self._cond:
            auth = self._auth(agent_id, ctx)
            return auth if isinstance(auth, _Reply) else handler(auth, ctx)
