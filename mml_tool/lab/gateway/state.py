"""What the gateway simulator holds and answers: agents, calls, sessions, faults, replies."""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

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
