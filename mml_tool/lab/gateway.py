"""CC-Gateway simulator: the agent REST interface over real HTTPS on loopback.

Faithful to ../shared/reference/cc-gateway-api.md: base path ``/agentgateway/resource/``,
envelope ``{"message", "retcode", "result"}`` with string retcodes, ``Set-GUID: JSESSIONID=<guid>``
at sign-in, ``Guid`` request header, long-polled events shaped like the vendor examples
(``eventType``, ``workNo``, ``content``; ``AgentEvent_MediaSwith`` spelled without the "c").

Event shapes (``event_shape``; LAB.yaml ``gateway: {event_shape: ...}``):

- ``"documented"`` (default), as the vendor's pages print them (samples/cc-gateway):
  ``AgentEvent_MediaSwith`` and ``AgentMediaEvent_StopRecordDone`` bare, the whole poll answer
  being ``{"eventType", "workNo", "content": {..., "jsonKey": [...]}, "jsonKey": [...]}`` with
  numeric ``reason``/``mediaType``; every other event wrapped,
  ``{"message": "", "retcode": "0", "event": {"eventType", "eventGenTime", "workNo",
  "content"}}`` with ``eventGenTime`` in epoch milliseconds; ``AgentEvent_Call_Release``'s
  content is the call ID as a string.
- ``"wrapped"``: every event in the envelope, no ``eventGenTime`` and no ``jsonKey``, and the
  numbers in an object ``content`` sent as strings (``"reason": "0"``).

Which shape a live gateway sends is not public; a client must read both.
``answer_next_poll(agent, bytes)`` queues a poll answer verbatim (a vendor sample, or one that
is not even JSON) for tests of a client's event parsing.

    sim = GatewaySimulator(workdir, one_way_video_ready=lambda uap: store.bit0(uap) == 0,
                           agents={"101": AgentSpec(password="pw", uap_host="uap-1")})
    sim.start()          # sim.url, sim.ca_path (``curl --cacert ca.pem`` works)
    ...
    sim.stop()

Endpoints (``{id}`` = agent ID, digits, 101..999999):

    PUT    onlineagent/{id}               sign in (body: password, phonenum, status, agenttype...)
    PUT    onlineagent/{id}/forcelogin    sign in, replacing a session that exists
    PUT    onlineagent/{id}/handshake     keep-alive without polling
    DELETE onlineagent/{id}/logout        sign out (a call in progress is dropped; no event: the
                                          agent no longer polls)
    GET    agentevent/{id}                long poll: one event at once, else empty after poll_wait
    PUT    voicecall/{id}/callout         body: called, caller, skillid, mediaability
    PUT    voicecall/{id}/answer          answer the call that ``ring()`` offered
    DELETE voicecall/{id}/release         -> AgentEvent_Call_Release (content = call ID string)
    POST   voicecall/{id}/mediaswitch?mediaType=1|3[&videoDirection=1..4]   (no body)
                                          -> AgentEvent_MediaSwith, then (when the switch took
                                          effect) AgentMediaEvent_StopRecordDone: the recording
                                          segment in the old media type ends

Choices where the reference is silent (the vendor's texts for some codes are not public; the
simulator uses the documented codes whose meaning fits best, and says so in ``message``):

- Unknown path or method, agent ID that is not digits, body that is not JSON or not sent as
  ``application/json``: HTTP 404 with the envelope, retcode ``000-002``.
- Sign-in: unknown agent or wrong password ``100-004`` (no hint which); empty password or bad
  status ``100-001``; agenttype other than 4 or 11 ``100-012``; phonenum not 1-24 digits
  ``100-013``; agent already signed in ``100-002``. ``000-007`` ("interface invoked repeatedly")
  when a sign-in or force sign-in for the same agent arrives while another is still being
  processed (visible with the ``slow`` fault): the vendor asks clients not to call sign-in
  again before it answers.
- Authentication: agent not signed in (never, signed out, idle for ``idle_signout`` s) and a
  long poll whose session ended (sign-out, idle, replaced by a force sign-in) ``100-006``; agent
  signed in but the ``Guid`` header missing, wrong (a replaced session's), or expired
  (``guid_expire_after`` fault, or a rotated-out GUID after its grace) ``000-003``.
- GUID rotation (``guid_mode="dynamic"``, AUTHMODE=2): every ``guid_rotate_every``-th event-poll
  answer carries a new ``Set-GUID``. The previous GUID stays valid until the new one is first
  used or ``guid_grace`` seconds pass, whichever comes first, so requests already in flight
  when the rotation happened are not refused.
- Callout: called not 1-24 of digits/``*``/``#``, or listed in ``rejected_numbers`` (numbers
  the gateway's call-out configuration refuses) ``200-001``; a call already in progress
  ``100-009`` (agent state wrong). Progress: ``AgentState_Busy`` at once, then
  ``AgentEvent_Customer_Alerting`` and ``AgentEvent_Talking`` after ``EventDelays``; a number in
  ``unreachable_numbers`` gives ``AgentEvent_Call_Out_Fail`` instead of Talking.
- Answer or release without a call (answer: without a ringing call) ``100-009``.
- Media switch: ``mediaType`` missing or not 1/3, ``videoDirection`` not 1..4 or given with
  ``mediaType`` other than 3 ``000-002``; agent not signed in as a video agent (agenttype 11)
  ``200-028``; no call ``200-027``; call not yet talking ``200-029``; a switch already pending
  ``000-007``. (The assignment of 200-027..029 is the simulator's: the vendor documents the
  codes for this interface but not their texts.)
- **One-way video when P978 is not ready** (directions 1 and 2 while
  ``one_way_video_ready(linked_uap_host)`` is False): the *asynchronous* failure form. The
  request answers retcode ``"0"`` and ``AgentEvent_MediaSwith`` follows with
  ``reason`` = ``ONE_WAY_NOT_READY_REASON`` (non-zero) and the call's current ``mediaType``
  (still 1). Why: the gateway only relays the switch to the platform; the UAP, which owns P978,
  is what refuses the one-way direction, and that verdict comes back as the event's ``reason``,
  which the vendor documents as "0 success, anything else failure". A client must therefore
  check the event, not only the retcode; a client that checks both also handles the
  synchronous 200-02x form some releases may use.

Fault modes (``GatewayFaults``, changeable at run time with ``set_faults``): ``slow`` delays every
answer; ``http_5xx_every=n`` answers every n-th request with a plain-text HTTP 503 (what a load
balancer sends); ``drop_connection_every=n`` closes every n-th connection without an answer;
``guid_expire_after`` refuses a GUID that many seconds after it was issued (``000-003``).

This is lab code: it may sleep (the ``slow`` fault) and it keeps the agent passwords in memory.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import re
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from mml_tool.lab.certs import DEFAULT_HOSTS, write_lab_certificates

logger = logging.getLogger(__name__)

BASE_PATH = "/agentgateway/resource"
ONE_WAY_NOT_READY_REASON = 1
EVENT_SHAPES = ("documented", "wrapped")
#: Events the vendor's pages print bare (no envelope), with ``jsonKey`` arrays.
BARE_EVENTS = frozenset({"AgentEvent_MediaSwith", "AgentMediaEvent_StopRecordDone"})
VIDEO_AGENT_TYPE = 11
_MAX_BODY = 64 * 1024
_JSON_TYPE = "application/json;charset=UTF-8"
_CALLED_RE = re.compile(r"^[0-9*#]{1,24}$")
_PHONE_RE = re.compile(r"^[0-9]{1,24}$")

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class AgentSpec:
    """An agent the gateway knows: its password and the UAP host its calls go through."""

    password: str = field(repr=False)
    uap_host: str


@dataclass(frozen=True)
class EventDelays:
    """Seconds between a request and the events it causes."""

    alerting: float = 0.05  # callout -> AgentEvent_Customer_Alerting
    talking: float = 0.05  # alerting (or answer) -> AgentEvent_Talking
    mediaswitch: float = 0.05  # mediaswitch request -> AgentEvent_MediaSwith
    release: float = 0.05  # release request -> AgentEvent_Call_Release

    def verification_floor(self, switches: int = 3) -> float:
        """Least time a callout verification can take: call setup, switches, release."""
        return self.alerting + self.talking + switches * self.mediaswitch + self.release


@dataclass(frozen=True)
class GatewayFaults:
    """Faults to inject; zero means off."""

    slow: float = 0.0
    http_5xx_every: int = 0
    drop_connection_every: int = 0
    guid_expire_after: float = 0.0


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator saw it (for tests)."""

    time: float
    method: str
    path: str
    query: str
    agent_id: str | None
    guid: str | None = field(repr=False)
    cookie: str | None
    content_type: str | None
    status: int
    retcode: str | None
    body_keys: tuple[str, ...]
    set_guid: bool


@dataclass(frozen=True)
class CallInfo:
    """A call as the simulator holds it (for tests)."""

    callid: str
    caller: str
    called: str
    state: str  # "alerting" | "ringing" | "talking"
    media_type: int
    direction: int | None


@dataclass
class _Call:
    callid: str
    caller: str
    called: str
    state: str
    media_type: int = 1
    direction: int | None = None
    switch_pending: bool = False
    incoming: bool = False
    media_ability: str = "1"
    record_begin: int = field(default_factory=lambda: int(time.time() * 1000))


@dataclass
class _Session:
    agent_id: str
    spec: AgentSpec
    agent_type: int
    phone: str
    guid: str = field(repr=False)
    guid_issued: float
    last_seen: float
    prev_guid: str | None = field(default=None, repr=False)
    prev_guid_until: float = 0.0
    events: deque[JsonObject | bytes] = field(default_factory=deque)  # whole poll answers
    polls: int = 0
    open_polls: int = 0
    call: _Call | None = None
    active: bool = True
    guid_expired: bool = False


@dataclass
class _Reply:
    status: int = 200
    body: JsonObject = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: bytes | None = None  # raw body: non-JSON (5xx fault), or a poll answer given as bytes
    content_type: str = "text/html"  # of ``text``
    drop: bool = False


def _envelope(retcode: str, message: str = "", result: Any = None) -> JsonObject:
    return {"message": message, "retcode": retcode, "result": {} if result is None else result}


def _error(retcode: str, message: str, status: int = 200) -> _Reply:
    return _Reply(status=status, body=_envelope(retcode, message))


def _not_found(message: str = "bad parameter or address") -> _Reply:
    return _error("000-002", message, status=404)


@dataclass
class _Ctx:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


_Route = tuple[str, re.Pattern[str], str]
_ROUTES: list[_Route] = [
    ("PUT", re.compile(r"^onlineagent/([^/]+)$"), "sign_in"),
    ("PUT", re.compile(r"^onlineagent/([^/]+)/forcelogin$"), "force_login"),
    ("PUT", re.compile(r"^onlineagent/([^/]+)/handshake$"), "handshake"),
    ("DELETE", re.compile(r"^onlineagent/([^/]+)/logout$"), "logout"),
    ("GET", re.compile(r"^agentevent/([^/]+)$"), "poll"),
    ("PUT", re.compile(r"^voicecall/([^/]+)/callout$"), "callout"),
    ("PUT", re.compile(r"^voicecall/([^/]+)/answer$"), "answer"),
    ("DELETE", re.compile(r"^voicecall/([^/]+)/release$"), "release"),
    ("POST", re.compile(r"^voicecall/([^/]+)/mediaswitch$"), "mediaswitch"),
]


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


class GatewaySimulator:
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
        self._sched_cond = threading.Condition()
        self._sched: list[tuple[float, int, Callable[[], None]]] = []
        self._sched_seq = itertools.count()
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
            ("timers", self._timers),
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
        with self._sched_cond:
            self._sched_cond.notify_all()
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
        with self._sched_cond:
            due = time.monotonic() + max(0.0, delay)
            heapq.heappush(self._sched, (due, next(self._sched_seq), action))
            self._sched_cond.notify_all()

    def _timers(self) -> None:
        while not self._stopping.is_set():
            due: list[Callable[[], None]] = []
            with self._sched_cond:
                now = time.monotonic()
                while self._sched and self._sched[0][0] <= now:
                    due.append(heapq.heappop(self._sched)[2])
                if not due:
                    wait = self._sweep_interval()
                    if self._sched:
                        wait = min(wait, self._sched[0][0] - now)
                    self._sched_cond.wait(max(0.0, wait))
            for action in due:
                try:
                    action()
                except Exception:  # a lab bug must not kill the timer thread
                    logger.exception("gateway simulator timer action failed")
            self._sweep()

    def _sweep_interval(self) -> float:
        candidates = [0.5, self.idle_signout / 10]
        if self._faults.guid_expire_after > 0:
            candidates.append(self._faults.guid_expire_after / 10)
        return max(0.01, min(candidates))

    def _sweep(self) -> None:
        """Sign out idle agents and retire expired GUIDs (and tell waiters)."""
        now = time.monotonic()
        with self._cond:
            changed = False
            expire = self._faults.guid_expire_after
            for agent_id, session in list(self._sessions.items()):
                if expire > 0 and not session.guid_expired and now - session.guid_issued > expire:
                    session.guid_expired = True
                    changed = True
                if session.open_polls == 0 and now - session.last_seen > self.idle_signout:
                    logger.info("agent %s idle for %.1f s: signed out", agent_id, self.idle_signout)
                    self._end_session(session)
                    changed = True
                elif session.prev_guid is not None and now >= session.prev_guid_until:
                    session.prev_guid = None
                    changed = True
            if changed:
                self._cond.notify_all()

    # ------------------------------------------------------------ HTTP handling

    def _track(self, conn: ssl.SSLSocket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(min(length, _MAX_BODY)) if length > 0 else b""
        ctx = _Ctx(
            method=handler.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        agent_id: str | None = None
        name: str | None = None
        if ctx.path.startswith(BASE_PATH + "/"):
            rest = ctx.path[len(BASE_PATH) + 1 :]
            for method, pattern, route in _ROUTES:
                match = pattern.match(rest)
                if match and method == ctx.method:
                    agent_id, name = match.group(1), route
                    break
        reply = self._fault_reply()
        if reply is None:
            reply = self._route(name, agent_id, ctx)
        # Recorded before answering, so a client that has its answer finds the request logged.
        self._record(ctx, split.query, agent_id, reply)
        self._respond(handler, reply)

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

    def _respond(self, handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
        if reply.drop:
            # Close without a byte of answer: what a crashed node or a cut link looks like.
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.text is not None:
            payload, ctype = reply.text, reply.content_type
        else:
            payload, ctype = json.dumps(reply.body).encode(), _JSON_TYPE
        handler.send_response(reply.status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers:
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)
        handler.wfile.flush()

    def _record(self, ctx: _Ctx, query: str, agent_id: str | None, reply: _Reply) -> None:
        keys: tuple[str, ...] = ()
        if ctx.body:
            try:
                decoded = json.loads(ctx.body)
                if isinstance(decoded, dict):
                    keys = tuple(sorted(decoded))
            except ValueError:
                keys = ()
        retcode = reply.body.get("retcode") if reply.text is None and not reply.drop else None
        record = RequestRecord(
            time=time.monotonic(),
            method=ctx.method,
            path=ctx.path,
            query=query,
            agent_id=agent_id,
            guid=ctx.headers.get("guid"),
            cookie=ctx.headers.get("cookie"),
            content_type=ctx.headers.get("content-type"),
            status=reply.status,
            retcode=retcode if isinstance(retcode, str) else None,
            body_keys=keys,
            set_guid=any(k.lower() == "set-guid" for k, _ in reply.headers),
        )
        with self._cond:
            self.requests_log.append(record)
            self._cond.notify_all()

    def _json_body(self, ctx: _Ctx) -> JsonObject | None:
        ctype = ctx.headers.get("content-type", "")
        if not ctype.lower().startswith("application/json"):
            return None
        try:
            decoded = json.loads(ctx.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return decoded if isinstance(decoded, dict) else None

    # -------------------------------------------------------------- sessions

    def _new_guid(self) -> str:
        return secrets.token_hex(16).upper()

    def _new_callid(self) -> str:
        return f"{int(time.time())}-{next(self._call_seq)}"

    def _sign_in_guarded(self, agent_id: str, ctx: _Ctx, *, force: bool) -> _Reply:
        with self._cond:
            if agent_id in self._signing_in:
                return _error("000-007", "sign-in already in progress for this agent")
            self._signing_in.add(agent_id)
            self._cond.notify_all()
        try:
            self._slow()
            return self._sign_in(agent_id, ctx, force=force)
        finally:
            with self._cond:
                self._signing_in.discard(agent_id)
                self._cond.notify_all()

    def _sign_in(self, agent_id: str, ctx: _Ctx, *, force: bool) -> _Reply:
        if not 101 <= int(agent_id) <= 999999:
            return _error("000-002", "agent ID out of range 101..999999")
        body = self._json_body(ctx)
        if body is None:
            return _not_found("the body must be a JSON object sent as application/json")
        password = body.get("password")
        if not isinstance(password, str) or not password:
            return _error("100-001", "sign-in parameter password is empty")
        status = str(body.get("status", "4"))
        if status not in ("4", "5"):
            return _error("100-001", "sign-in parameter status must be 4 or 5")
        agent_type = str(body.get("agenttype", "4"))
        if agent_type not in ("4", "11"):
            return _error("100-012", "agent type must be 4 (PC+phone) or 11 (PC+phone video)")
        phone = str(body.get("phonenum", ""))
        if not _PHONE_RE.match(phone):
            return _error("100-013", "phone number must be 1-24 digits")
        spec = self.agents.get(agent_id)
        if spec is None or not secrets.compare_digest(spec.password, password):
            return _error("100-004", "wrong user name or password")
        now = time.monotonic()
        with self._cond:
            existing = self._sessions.get(agent_id)
            if existing is not None:
                if not force:
                    return _error("100-002", "the agent has signed in")
                self._end_session(existing)
            session = _Session(
                agent_id=agent_id,
                spec=spec,
                agent_type=int(agent_type),
                phone=phone,
                guid=self._new_guid(),
                guid_issued=now,
                last_seen=now,
            )
            self._sessions[agent_id] = session
            self._cond.notify_all()
            result = {"vdnid": 1, "workno": agent_id, "loginDate": int(time.time() * 1000)}
            return _Reply(
                body=_envelope("0", "", result),
                headers=[
                    ("Set-GUID", f"JSESSIONID={session.guid}"),
                    ("Set-Cookie", "ccgw_node=node-1; Path=/; Secure; HttpOnly"),
                ],
            )

    def _end_session(self, session: _Session) -> None:
        """Remove a session (lock held): its call ends silently, its open polls wake."""
        session.active = False
        session.call = None
        if self._sessions.get(session.agent_id) is session:
            del self._sessions[session.agent_id]
        self._cond.notify_all()

    def _auth(self, agent_id: str, ctx: _Ctx) -> _Session | _Reply:
        """The session for a request with a valid Guid header (lock held), else the error."""
        session = self._sessions.get(agent_id)
        if session is None:
            return _error("100-006", "the agent does not sign in")
        guid = ctx.headers.get("guid", "")
        now = time.monotonic()
        expire = self._faults.guid_expire_after
        if guid and secrets.compare_digest(guid, session.guid):
            if session.guid_expired or (expire > 0 and now - session.guid_issued > expire):
                session.guid_expired = True
                return _error("000-003", "no permission: the authentication has expired")
            if session.prev_guid is not None:  # the client has adopted the new GUID
                session.prev_guid = None
                self._cond.notify_all()
            return session
        if (
            guid
            and session.prev_guid is not None
            and now < session.prev_guid_until
            and secrets.compare_digest(guid, session.prev_guid)
        ):
            return session
        return _error("000-003", "no permission: the authentication may have expired")

    def _queue(self, session: _Session, event_type: str, content: Any) -> None:
        """Queue an event for a live session (lock held) and wake its long poll."""
        if not session.active:
            return
        session.events.append(self._event_body(session, event_type, content))
        self._cond.notify_all()

    def _event_body(self, session: _Session, event_type: str, content: Any) -> JsonObject:
        """The whole poll answer carrying one event, in the shape ``event_shape`` selects."""
        if self.event_shape == "wrapped":  # every event in the envelope, numbers as strings
            if isinstance(content, dict):
                content = {k: str(v) if isinstance(v, int) else v for k, v in content.items()}
            event = {"eventType": event_type, "workNo": session.agent_id, "content": content}
            return {"message": "", "retcode": "0", "event": event}
        if event_type in BARE_EVENTS:  # as the vendor's pages print them (cec_07_0518)
            if isinstance(content, dict):
                content = {**content, "jsonKey": list(content)}
            return {
                "eventType": event_type,
                "workNo": session.agent_id,
                "content": content,
                "jsonKey": ["eventType", "workNo", "content"],
            }
        event = {
            "eventType": event_type,
            "eventGenTime": int(time.time() * 1000),
            "workNo": session.agent_id,
            "content": content,
        }
        return {"message": "", "retcode": "0", "event": event}

    def _call_content(self, call: _Call, *, feature: str) -> JsonObject:
        return {
            "caller": call.caller,
            "callid": call.callid,
            "called": call.called,
            "feature": feature,
            "type": "main",
            "mediaAbility": call.media_ability,
        }

    def _later(
        self, delay: float, session: _Session, call: _Call, action: Callable[[], None]
    ) -> None:
        """Run ``action`` after ``delay`` if the session and the call are still the same."""

        def run() -> None:
            with self._cond:
                if session.active and session.call is call:
                    action()

        self._schedule(delay, run)

    # ------------------------------------------------------------- endpoints

    def _do_handshake(self, session: _Session, ctx: _Ctx) -> _Reply:
        session.last_seen = time.monotonic()
        return _Reply(body=_envelope("0"))

    def _do_logout(self, session: _Session, ctx: _Ctx) -> _Reply:
        self._end_session(session)
        return _Reply(body=_envelope("0"))

    def _do_poll(self, session: _Session, ctx: _Ctx) -> _Reply:
        session.open_polls += 1
        session.last_seen = time.monotonic()
        self._cond.notify_all()
        try:
            self._cond.wait_for(
                lambda: bool(session.events) or not session.active or self._stopping.is_set(),
                timeout=self.poll_wait,
            )
        finally:
            session.open_polls -= 1
            session.last_seen = time.monotonic()
        if not session.active:
            return _error("100-006", "the agent does not sign in")
        session.polls += 1
        headers: list[tuple[str, str]] = []
        if self.guid_mode == "dynamic" and session.polls % self.guid_rotate_every == 0:
            session.prev_guid = session.guid
            session.prev_guid_until = time.monotonic() + self.guid_grace
            session.guid = self._new_guid()
            session.guid_issued = time.monotonic()
            session.guid_expired = False
            headers.append(("Set-GUID", f"JSESSIONID={session.guid}"))
            self._cond.notify_all()
        if session.events:
            answer = session.events.popleft()
            if isinstance(answer, bytes):
                return _Reply(text=answer, content_type=_JSON_TYPE, headers=headers)
            return _Reply(body=answer, headers=headers)
        return _Reply(body={"message": "", "retcode": "0"}, headers=headers)

    def _do_callout(self, session: _Session, ctx: _Ctx) -> _Reply:
        body = self._json_body(ctx)
        if body is None:
            return _not_found("the body must be a JSON object sent as application/json")
        called = body.get("called")
        if (
            not isinstance(called, str)
            or not _CALLED_RE.match(called)
            or called in self.rejected_numbers
        ):
            return _error("200-001", "the called number is wrong")
        if session.call is not None:
            return _error("100-009", "the agent state does not allow a call out")
        caller = body.get("caller")
        ability = str(body.get("mediaability", 0))
        call = _Call(
            callid=self._new_callid(),
            caller=caller if isinstance(caller, str) and caller else session.phone,
            called=called,
            state="alerting",
            media_ability="3" if ability == "1" else "1",
        )
        session.call = call
        self._queue(session, "AgentState_Busy", "")
        delays = self.event_delays

        def alerting() -> None:
            content = {"caller": call.caller, "callid": call.callid, "called": call.called}
            self._queue(session, "AgentEvent_Customer_Alerting", content)
            if call.called in self.unreachable_numbers:
                self._later(delays.talking, session, call, call_out_fail)
            else:
                self._later(delays.talking, session, call, talking)

        def talking() -> None:
            call.state = "talking"
            self._queue(session, "AgentEvent_Talking", self._call_content(call, feature="7"))

        def call_out_fail() -> None:
            session.call = None
            content = {"callid": call.callid, "called": call.called}
            self._queue(session, "AgentEvent_Call_Out_Fail", content)

        self._later(delays.alerting, session, call, alerting)
        return _Reply(body=_envelope("0", "", call.callid))

    def _do_answer(self, session: _Session, ctx: _Ctx) -> _Reply:
        call = session.call
        if call is None or call.state != "ringing":
            return _error("100-009", "no ringing call to answer")
        call.state = "answering"

        def talking() -> None:
            call.state = "talking"
            self._queue(session, "AgentEvent_Talking", self._call_content(call, feature="0"))

        self._later(self.event_delays.talking, session, call, talking)
        return _Reply(body=_envelope("0"))

    def _do_release(self, session: _Session, ctx: _Ctx) -> _Reply:
        call = session.call
        if call is None:
            return _error("100-009", "no call to release")
        session.call = None
        self._cond.notify_all()

        def released() -> None:
            with self._cond:
                self._queue(session, "AgentEvent_Call_Release", call.callid)

        self._schedule(self.event_delays.release, released)
        return _Reply(body=_envelope("0"))

    def _do_mediaswitch(self, session: _Session, ctx: _Ctx) -> _Reply:
        media_raw = ctx.query.get("mediaType", [""])[-1]
        direction_raw = ctx.query.get("videoDirection", [None])[-1]
        try:
            media_type = int(media_raw)
        except ValueError:
            media_type = 0
        direction: int | None = None
        if direction_raw is not None:
            try:
                direction = int(direction_raw)
            except ValueError:
                direction = 0
        ready = True
        if media_type == 3 and direction in (1, 2):
            # The callback reads the UAP simulator's state under that store's own lock, a leaf
            # lock (it never calls back here), so asking it with our lock held cannot deadlock.
            ready = bool(self.one_way_video_ready(session.spec.uap_host))
        if media_type not in (1, 3):
            return _error("000-002", "mediaType must be 1 (audio) or 3 (video)")
        if direction is not None and (media_type != 3 or direction not in (1, 2, 3, 4)):
            return _error("000-002", "videoDirection must be 1..4 and only with mediaType=3")
        if session.agent_type != VIDEO_AGENT_TYPE:
            return _error("200-028", "the agent is not a video agent (sign in with agenttype 11)")
        call = session.call
        if call is None:
            return _error("200-027", "the agent has no call in progress")
        if call.state != "talking":
            return _error("200-029", f"the call is {call.state}, not talking")
        if call.switch_pending:
            return _error("000-007", "a media switch is already in progress")
        call.switch_pending = True
        target_direction = (direction or 4) if media_type == 3 else None

        def switched() -> None:
            call.switch_pending = False
            reason = 0
            if ready:
                call.media_type = media_type
                call.direction = target_direction
            else:
                reason = ONE_WAY_NOT_READY_REASON
            content = {
                "callid": call.callid,
                "reason": reason,
                "caller": call.caller,
                "mediaType": call.media_type,
                "called": call.called,
            }
            self._queue(session, "AgentEvent_MediaSwith", content)
            if ready:  # the switch ends the call's recording segment (cec_07_1249)
                now = int(time.time() * 1000)
                record = {
                    "beginTime": call.record_begin,
                    "endTime": now,
                    "fileMediaType": "3" if call.media_type == 3 else "1",
                    "taskId": next(self._task_seq),
                }
                call.record_begin = now
                self._queue(session, "AgentMediaEvent_StopRecordDone", record)

        self._later(self.event_delays.mediaswitch, session, call, switched)
        return _Reply(body=_envelope("0"))
