"""The CC-Gateway agent protocol as this client speaks it: paths, documented return codes,
argument checks, the reply shape, and the masking of session GUIDs in the HTTP library's logs.

Protocol: ../shared/reference/cc-gateway-api.md."""

from __future__ import annotations

import logging
import re
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mml_tool.errors import ConfigError, GatewayEventError
from mml_tool.gateway.events import GatewayEvent
from mml_tool.secret import MASK

BASE_PATH = "/agentgateway/resource"
CONTENT_TYPE = "application/json; charset=UTF-8"
VIDEO_AGENT_TYPE = 11
#: Answers larger than this are refused: a CC-Gateway answer is a few KiB at most.
MAX_REPLY_BYTES = 1 << 20

_AGENT_RE = re.compile(r"^[0-9]{3,6}$")
_CALLED_RE = re.compile(r"^[0-9*#]{1,24}$")
_PHONE_RE = re.compile(r"^[0-9]{1,24}$")

#: Documented meanings (vendor error table, cec_07_0580) and what the operator can do.
RETCODE_MEANINGS: dict[str, str] = {
    "000-001": "wrong method for agent events",
    "000-002": "bad parameter or address",
    "000-003": "no permission; the session GUID may have expired: sign in again",
    "000-004": "the agent is being switched over: retry shortly",
    "000-006": "message parameter error",
    "000-007": "interface invoked repeatedly: wait for the previous call to answer",
    "100-001": "sign-in parameter empty or invalid",
    "100-002": "agent already signed in: sign it out, or use force sign-in",
    "100-003": "resource or provider unavailable at sign-in",
    "100-004": "wrong user name or password: check the agent ID and agent_password",
    "100-005": "sign-out parameter invalid",
    "100-006": "agent not signed in (signed out, idle too long, or replaced): sign in again",
    "100-007": "internal error during the agent's operation",
    "100-008": "agent already signed out",
    "100-009": "agent state does not allow this operation",
    "100-010": "state error during sign-out",
    "100-011": "invalid sign-in parameter",
    "100-012": "wrong agent type at sign-in (video needs agenttype 11)",
    "100-013": "phone number invalid: check phone_number",
    "200-001": "wrong called number: check the number called",
    "200-027": "media switch failure (vendor error table)",
    "200-028": "media switch failure (vendor error table)",
    "200-029": "media switch failure (vendor error table)",
    "200-030": "media switch failure (vendor error table)",
}

_SESSION_RE = re.compile(r"(JSESSIONID=)[^'\";,\s)\]]+", re.IGNORECASE)
# httpcore's DEBUG trace prints response headers, Set-GUID included.
_HTTPCORE_LOGGERS = ("httpcore.http11", "httpcore.http2")


class _RedactSessionFilter(logging.Filter):
    """Masks ``JSESSIONID=<guid>`` in records of the HTTP library's own DEBUG trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "JSESSIONID=" in text.upper():
            record.msg = _SESSION_RE.sub(lambda m: m.group(1) + MASK, text)
            record.args = ()
        return True


def _redact_http_library_logs() -> None:
    """Attach the redacting filter once to httpcore's loggers (idempotent)."""
    for name in _HTTPCORE_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, _RedactSessionFilter) for f in target.filters):
            target.addFilter(_RedactSessionFilter())


#: Poll answers after which polling cannot go on: the session is gone.
_FATAL_POLL_CODES = frozenset({"000-003", "100-006", "100-008"})


def describe_retcode(retcode: str) -> str:
    """``"100-006 (agent not signed in ...)"``, or the bare code when its meaning is unknown."""
    meaning = RETCODE_MEANINGS.get(retcode)
    return f"{retcode} ({meaning})" if meaning else retcode


@dataclass(frozen=True)
class GatewayReply:
    """A successful (retcode "0") answer."""

    request: str  # "PUT /agentgateway/resource/voicecall/101/callout" (no secrets)
    status: int
    retcode: str
    message: str
    result: Any
    elapsed: float
    event: GatewayEvent | None = None


@dataclass
class _EventBox:
    """Events between the poller thread and wait_for(), and why polling stopped if it did."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    # An unreadable event takes its place in the queue, so that wait_for() raises it in order.
    queue: deque[GatewayEvent | GatewayEventError] = field(default_factory=deque)
    poll_error: str | None = None  # polling has stopped for good
    last_poll_problem: str | None = None  # a transient failure the poller is riding out


def validate_agent_id(agent_id: str) -> str:
    if not _AGENT_RE.match(agent_id) or not 101 <= int(agent_id) <= 999999:
        raise ConfigError(f"agent ID {agent_id!r} is invalid: it must be a number 101..999999")
    return agent_id


def validate_called(called: str) -> str:
    if not _CALLED_RE.match(called):
        raise ConfigError(
            f"called number {called!r} is invalid: use 1-24 characters of digits, '*' or '#'"
        )
    return called


def validate_media(media_type: int, video_direction: int | None) -> None:
    if media_type not in (1, 3):
        raise ConfigError(f"media type {media_type!r} is invalid: use 1 (audio) or 3 (video)")
    if video_direction is not None:
        if media_type != 3:
            raise ConfigError("a video direction may only be given with media type 3 (video)")
        if video_direction not in (1, 2, 3, 4):
            raise ConfigError(
                f"video direction {video_direction!r} is invalid: use 1 (user receives only), "
                "2 (user sends only), 3 (both) or 4 (not set)"
            )


def _size(limit: int) -> str:
    """``1 MiB`` for 1048576; bytes otherwise."""
    return f"{limit >> 20} MiB" if limit and limit % (1 << 20) == 0 else f"{limit} bytes"


def _find_cert_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur
        for arg in getattr(cur, "args", ()):
            if isinstance(arg, ssl.SSLCertVerificationError):
                return arg
        cur = cur.__cause__ or cur.__context__
    return None
