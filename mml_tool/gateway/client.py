"""CC-Gateway agent REST client: sign-in, GUID, long-polled events, calls, media switch.

Protocol: ../shared/reference/cc-gateway-api.md. One client = one agent session.

    gw = GatewayClient(url, "101", Secret(pw), phone_number="40038", ca_bundle=Path("ca.pem"))
    with gw:
        gw.sign_in()                       # starts the event poller
        gw.callout("40040", skill_id=25)
        talking = gw.wait_for("AgentEvent_Talking", timeout=15)
        gw.media_switch(3, 1)
        gw.wait_for("AgentEvent_MediaSwith", timeout=15)
    # leaving the block releases nothing but signs out and closes

Every answer with ``retcode != "0"`` raises ``GatewayError`` (``.retcode``, ``.gateway_message``)
whose text gives the code's documented meaning; transport failures (connect, TLS verification,
timeout, HTTP 5xx, dropped connection, non-JSON answer) raise ``GatewayError`` with
``retcode=""``. Arguments are validated before anything is sent (``ConfigError``). Events are
read in the shapes the vendor documents, wrapped or bare (``gateway/events.py``); one that
cannot be read raises ``GatewayEventError`` from ``wait_for`` in its place in the event order.

Each request has one deadline, ``timeout`` seconds (``poll_timeout`` for an event poll), for
connect, TLS handshake, headers and body together, however slowly the gateway trickles bytes;
answers over ``max_reply_bytes`` (1 MiB) are refused (``mml_tool.gateway.transport``).

The agent password (a ``Secret``) goes on the wire only in the sign-in body; the session GUID
only in the ``Guid`` header. Neither appears in logs, reprs or exception messages: every text
that leaves this module passes through ``_scrub``.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from mml_tool.errors import ConfigError, GatewayError, GatewayEventError
from mml_tool.gateway.events import EventFormatError, GatewayEvent, is_bare_event, parse_event
from mml_tool.gateway.transport import (
    BoundedTransport,
    DeadlineTransport,
    EncodedReply,
    ReplyTooLarge,
    request_deadline,
)
from mml_tool.secret import MASK, Secret

logger = logging.getLogger(__name__)

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


class GatewayClient:
    """A CC-Gateway agent session over HTTPS. Thread-safe for one caller plus the poller."""

    def __init__(
        self,
        url: str,
        agent_id: str,
        password: Secret,
        *,
        phone_number: str,
        ca_bundle: Path | None = None,
        insecure: bool = False,
        timeout: float = 15.0,
        agent_type: int = VIDEO_AGENT_TYPE,
        poll_events: bool = True,
        poll_gap: float = 0.2,
        poll_timeout: float | None = None,
        max_poll_failures: int = 5,
        name: str = "",
        transport: httpx.BaseTransport | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.agent_id = validate_agent_id(agent_id)
        if not _PHONE_RE.match(phone_number):
            raise ConfigError(f"phone number {phone_number!r} is invalid: use 1-24 digits")
        if agent_type not in (4, VIDEO_AGENT_TYPE):
            raise ConfigError(f"agent type {agent_type!r} is invalid: use 4 or 11 (video)")
        if timeout <= 0:
            raise ConfigError("timeout must be positive")
        if max_reply_bytes < 1:
            raise ConfigError("max_reply_bytes must be positive")
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme != "https" and not (insecure and scheme == "http"):
            raise ConfigError(f"gateway URL {url!r} must start with https://")
        self.url = url.rstrip("/")
        self.name = name or self.url
        self.phone_number = phone_number
        self.agent_type = agent_type
        self.timeout = timeout
        self.poll_events = poll_events
        self.poll_gap = poll_gap
        # A long poll is held open by the gateway for about 10 s before an empty answer.
        self.poll_timeout = poll_timeout if poll_timeout is not None else timeout + 15.0
        self.max_poll_failures = max_poll_failures
        self.ca_bundle = ca_bundle
        self.insecure = insecure
        self._password = password
        self._lock = threading.Lock()
        self._guid: str | None = None
        self._known_guids: set[str] = set()  # every GUID this client has held, for scrubbing
        self._signed_in = False
        self._events = _EventBox()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_request = ""
        verify: ssl.SSLContext | bool
        if insecure:
            message = (
                f"TLS certificate verification is OFF for {self.url}: anyone on the path can "
                "read the agent password and session. Use ca_bundle instead outside a lab."
            )
            logger.warning(message)
            warnings.warn(message, stacklevel=2)
            verify = False
        elif ca_bundle is not None:
            if not ca_bundle.is_file():
                raise ConfigError(
                    f"CA bundle {ca_bundle} does not exist: point ca_bundle at the PEM file of "
                    f"the CA that signed the certificate of {self.url}"
                )
            try:
                verify = ssl.create_default_context(cafile=str(ca_bundle))
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(f"CA bundle {ca_bundle} could not be read: {exc}") from None
        else:
            verify = True
        _redact_http_library_logs()
        if transport is None:
            context = verify if isinstance(verify, ssl.SSLContext) else None
            transport = DeadlineTransport(context or httpx.create_ssl_context(verify=verify))
        self.max_reply_bytes = max_reply_bytes
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            transport=BoundedTransport(transport, max_reply_bytes=max_reply_bytes),
            headers={
                "Content-Type": CONTENT_TYPE,
                "Accept": "application/json",
                "Accept-Encoding": "identity",
            },
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return (
            f"GatewayClient(url={self.url!r}, agent_id={self.agent_id!r}, "
            f"signed_in={self._signed_in})"
        )

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def signed_in(self) -> bool:
        return self._signed_in

    # ----------------------------------------------------------------- secrets

    def _scrub(self, text: str) -> str:
        """Mask every GUID this client has held and the password in ``text``."""
        with self._lock:
            guids = list(self._known_guids)
        for guid in guids:
            if guid:
                text = text.replace(guid, MASK)
        password = self._password.reveal()
        # Very short passwords are not searched for: masking every "1" would garble messages,
        # and no message is built from the password anyway.
        if len(password) >= 4:
            text = text.replace(password, MASK)
        return text

    def _error(self, message: str, retcode: str = "", gateway_message: str = "") -> GatewayError:
        return GatewayError(self._scrub(message), retcode, self._scrub(gateway_message))

    def _set_guid(self, header: str | None) -> None:
        if not header:
            return
        _, sep, guid = header.partition("JSESSIONID=")
        guid = (guid if sep else header).split(";", 1)[0].strip()
        if not guid:
            return
        with self._lock:
            if guid == self._guid:
                return
            rotated = self._guid is not None
            self._guid = guid
            self._known_guids.add(guid)
        if rotated:
            logger.debug("%s: agent %s session GUID rotated", self.name, self.agent_id)

    # ------------------------------------------------------------------- wire

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, int] | None = None,
        timeout: httpx.Timeout | float | None = None,
        budget: float | None = None,
        action: str,
        track: bool = True,
    ) -> GatewayReply:
        """Send one request; return the reply when retcode is "0", else raise GatewayError.

        ``budget``: seconds for the whole request, connect to last byte (default: timeout).
        """
        budget = budget if budget is not None else self.timeout
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        request_line = f"{method} {path}" + (f"?{query}" if query else "")
        if track:
            self.last_request = request_line
        attempt = 0
        while True:
            attempt += 1
            with self._lock:
                guid_sent = self._guid
            headers = {"Guid": guid_sent} if guid_sent else {}
            content = json.dumps(body).encode("utf-8") if body is not None else None
            started = time.monotonic()
            try:
                with request_deadline(budget):
                    response = self._http.request(
                        method,
                        self.url + path,
                        params=params,
                        content=content,
                        headers=headers,
                        timeout=timeout if timeout is not None else self.timeout,
                    )
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, action, request_line, budget) from None
            elapsed = time.monotonic() - started
            self._set_guid(response.headers.get("Set-GUID"))
            reply = self._decode(response, action, request_line, elapsed)
            if reply.retcode == "0":
                logger.debug("%s: %s -> 0 (%.0f ms)", self.name, request_line, elapsed * 1000)
                return reply
            with self._lock:
                guid_now = self._guid
            if reply.retcode == "000-003" and attempt == 1 and guid_now != guid_sent:
                # The GUID rotated (on a concurrent event poll) while this request was in
                # flight with the old one: refused requests did nothing, so resend once.
                logger.debug("%s: %s refused with a rotated-out GUID: resent", self.name, action)
                continue
            logger.debug("%s: %s -> %s", self.name, request_line, reply.retcode)
            raise self._error(
                f"{action} on {self.name} failed: retcode {describe_retcode(reply.retcode)}"
                + (f"; the gateway says: {reply.message}" if reply.message else ""),
                reply.retcode,
                reply.message,
            )

    def _transport_error(
        self, exc: httpx.HTTPError, action: str, request: str, budget: float
    ) -> GatewayError:
        url = self.url
        if isinstance(exc, ReplyTooLarge):
            return self._error(
                f"{action}: the answer of {url} to {request} is larger than "
                f"{_size(exc.limit)} ({exc}): refused. A CC-Gateway answer is a few KiB: check "
                "that the URL points at the AgentGateway and not at a proxy or another service"
            )
        if isinstance(exc, EncodedReply):
            return self._error(
                f"{action}: {url} answered {request} with a compressed body ({exc}): refused; "
                "check that the URL points at the AgentGateway and not at a proxy"
            )
        cert_error = _find_cert_error(exc)
        if cert_error is not None or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            detail = getattr(cert_error, "verify_message", "") or str(exc)
            where = f"ca_bundle {self.ca_bundle}" if self.ca_bundle else "the system trust store"
            return self._error(
                f"{action}: the TLS certificate of {url} could not be verified ({detail}) "
                f"against {where}. Set ca_bundle to the PEM file of the CA that signed the "
                "gateway's certificate, or fix the certificate (name, validity)."
            )
        if isinstance(exc, httpx.TimeoutException):
            return self._error(
                f"{action}: no answer from {url} within {budget:g} s ({request}; one deadline "
                "for connect, headers and the whole body); check that the gateway is up and "
                "reachable, or raise the gateway's timeout"
            )
        if isinstance(exc, httpx.ConnectError):
            return self._error(
                f"{action}: could not connect to {url} ({exc}); check the URL, the port and "
                "that the gateway is reachable from here"
            )
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return self._error(
                f"{action}: the connection to {url} was dropped before an answer to {request} "
                f"({exc}); the gateway or a load balancer closed it: retry, check the gateway"
            )
        return self._error(f"{action}: request {request} to {url} failed: {exc}")

    def _decode(
        self, response: httpx.Response, action: str, request: str, elapsed: float
    ) -> GatewayReply:
        status = response.status_code
        if status >= 500:
            raise self._error(
                f"{action}: {self.url} answered HTTP {status} to {request}; the gateway (or a "
                "load balancer in front of it) is failing: retry later or check its state"
            )
        poll = request.startswith("GET ") and "/agentevent/" in request
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            data = None
            if poll and b'"eventType"' in response.content:  # an event, but not valid JSON
                raise GatewayEventError(
                    self._scrub(
                        f"{action}: {self.url} sent an agent event that is not valid JSON in "
                        f"answer to {request} ({exc}); check the gateway's version"
                    )
                ) from None
        # The vendor's pages print some events bare, without the envelope (gateway/events.py).
        bare = poll and is_bare_event(data)
        if not bare and (
            not isinstance(data, dict) or not isinstance(data.get("retcode"), (str, int))
        ):
            ctype = response.headers.get("Content-Type", "?")
            raise self._error(
                f"{action}: {self.url} answered HTTP {status} ({ctype}) to {request} without a "
                "CC-Gateway JSON envelope; check that the URL points at the AgentGateway"
            )
        assert isinstance(data, dict)
        event: GatewayEvent | None = None
        raw_event = data if bare else data.get("event")
        if raw_event is not None:
            try:
                event = parse_event(raw_event, received=time.monotonic(), wrapped=not bare)
            except EventFormatError as exc:
                raise GatewayEventError(
                    self._scrub(
                        f"{action}: {self.url} sent an agent event that cannot be read in answer "
                        f"to {request}: {exc}; check the gateway's version and its event format"
                    )
                ) from None
        message = data.get("message")
        return GatewayReply(
            request=request,
            status=status,
            retcode="0" if bare else str(data["retcode"]),
            message=message if isinstance(message, str) else "",
            result=data.get("result"),
            elapsed=elapsed,
            event=event,
        )

    def _path(self, resource: str, suffix: str = "") -> str:
        return f"{BASE_PATH}/{resource}/{self.agent_id}{suffix}"

    # ---------------------------------------------------------------- session

    def sign_in(self, force: bool = False) -> GatewayReply:
        """Sign the agent in (and start polling events).

        ``force``: when the agent is already signed in (100-002), take the session over with
        a force sign-in instead of failing.
        """
        body = {
            "password": self._password.reveal(),
            "phonenum": self.phone_number,
            "status": "4",
            "releasephone": "false",
            "agenttype": str(self.agent_type),
        }
        path = self._path("onlineagent")
        with self._lock:
            self._guid = None  # sign-in carries no Guid; only this answer's Set-GUID counts
        try:
            reply = self._request("PUT", path, body=body, action=f"sign in agent {self.agent_id}")
        except GatewayError as exc:
            if not (force and exc.retcode == "100-002"):
                raise
            logger.info("%s: agent %s already signed in: forcing", self.name, self.agent_id)
            reply = self._request(
                "PUT",
                path + "/forcelogin",
                body=body,
                action=f"force sign in agent {self.agent_id}",
            )
        with self._lock:
            got_guid = self._guid is not None
        if not got_guid:
            raise self._error(
                f"sign in agent {self.agent_id} on {self.name}: the gateway sent no "
                "Set-GUID header; check that the URL points at the AgentGateway"
            )
        self._signed_in = True
        logger.info("%s: agent %s signed in", self.name, self.agent_id)
        if self.poll_events:
            self._start_poller()
        return reply

    def sign_out(self) -> GatewayReply | None:
        """Sign the agent out and stop polling. Returns None when it was not signed in."""
        self._stop.set()  # the poller ends after its current poll (the gateway wakes it)
        if not self._signed_in:
            self._join_poller()
            return None
        try:
            return self._request(
                "DELETE",
                self._path("onlineagent", "/logout"),
                action=f"sign out agent {self.agent_id}",
            )
        except GatewayError as exc:
            if exc.retcode in ("100-006", "100-008"):  # already signed out: nothing to undo
                logger.info("%s: agent %s was already signed out", self.name, self.agent_id)
                return None
            raise
        finally:
            self._signed_in = False
            with self._lock:
                self._guid = None
            self._join_poller()
            logger.info("%s: agent %s signed out", self.name, self.agent_id)

    def close(self) -> None:
        """Sign out if signed in, stop the poller, close connections. Idempotent.

        Never raises: a failed sign-out is logged (call ``sign_out()`` first to see it).
        """
        try:
            if self._signed_in:
                try:
                    self.sign_out()
                except GatewayError as exc:
                    logger.warning("%s", exc)
        finally:
            self._stop.set()
            self._join_poller()
            self._http.close()

    # ----------------------------------------------------------------- events

    def _start_poller(self) -> None:
        self._join_poller()
        self._stop = threading.Event()
        with self._events.cond:
            self._events.poll_error = None
            self._events.last_poll_problem = None
        self._poller = threading.Thread(
            target=self._poll_loop,
            args=(self._stop,),
            name=f"ccgw-events-{self.agent_id}",
            daemon=True,
        )
        self._poller.start()

    def _join_poller(self) -> None:
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=self.timeout)
            self._poller = None

    def _poll_loop(self, stop: threading.Event) -> None:
        path = self._path("agentevent")
        timeout = httpx.Timeout(self.timeout, read=self.poll_timeout)
        failures = 0
        while not stop.is_set():
            try:
                reply = self._request(
                    "GET",
                    path,
                    timeout=timeout,
                    budget=self.poll_timeout,
                    action="poll agent events",
                    track=False,
                )
            except GatewayEventError as exc:  # the poll itself worked: report it, poll on
                with self._events.cond:
                    self._events.queue.append(exc)
                    self._events.cond.notify_all()
                logger.warning("%s: %s", self.name, exc)
                stop.wait(self.poll_gap)  # a gateway that answers only such events is not hammered
                continue
            except GatewayError as exc:
                if stop.is_set():
                    return
                failures += 1
                fatal = exc.retcode in _FATAL_POLL_CODES or failures >= self.max_poll_failures
                with self._events.cond:
                    if fatal:
                        self._events.poll_error = str(exc)
                    else:
                        self._events.last_poll_problem = str(exc)
                    self._events.cond.notify_all()
                if fatal:
                    logger.warning("%s: event polling stopped: %s", self.name, exc)
                    return
                # Back off on transient failures (5xx, dropped connection) without hammering.
                stop.wait(min(self.poll_gap * (2**failures), 5.0))
                continue
            failures = 0
            if reply.event is not None:
                with self._events.cond:
                    self._events.queue.append(reply.event)
                    self._events.last_poll_problem = None
                    self._events.cond.notify_all()
                logger.debug("%s: event %s", self.name, reply.event.event_type)
                # No pause after an event: more may be queued, and the next poll is held
                # open by the gateway anyway, so it cannot hammer it.
                continue
            # Empty answer (the gateway held the poll ~10 s): pause as the vendor asks (200-500
            # ms between polls). Event.wait, not sleep: sign_out()/close() interrupt it at once.
            stop.wait(self.poll_gap)

    def wait_for(
        self,
        event_type: str,
        predicate: Callable[[GatewayEvent], bool] | None = None,
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        fail_on: Collection[str] = (),
        seen: list[GatewayEvent] | None = None,
    ) -> GatewayEvent:
        """Consume events in order until one of ``event_type`` matches ``predicate``.

        ``deadline`` is a ``time.monotonic()`` value (or give ``timeout`` seconds; default the
        client's timeout). Events consumed on the way are discarded, and appended to ``seen``
        when given. An event whose type is in ``fail_on`` raises at once; so does polling that
        has stopped for good. Raises GatewayError at the deadline, naming what was seen.
        """
        if deadline is None:
            deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        skipped: list[str] = []
        box = self._events
        with box.cond:
            while True:
                while box.queue:
                    event = box.queue.popleft()
                    if isinstance(event, GatewayEventError):
                        raise GatewayEventError(
                            f"while waiting for {event_type} (agent {self.agent_id}, events seen: "
                            f"{', '.join(skipped) or 'none'}): {event}"
                        )
                    if seen is not None:
                        seen.append(event)
                    if event.event_type == event_type and (predicate is None or predicate(event)):
                        return event
                    skipped.append(event.event_type)
                    if event.event_type in fail_on:
                        raise self._error(
                            f"{event.event_type} arrived while waiting for {event_type} "
                            f"(agent {self.agent_id} on {self.name}); events seen: "
                            f"{', '.join(skipped)}"
                        )
                if box.poll_error is not None:
                    raise self._error(
                        f"no {event_type} for agent {self.agent_id}: event polling has stopped "
                        f"({box.poll_error})"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    problem = (
                        f"; event polling is failing: {box.last_poll_problem}"
                        if box.last_poll_problem
                        else ""
                    )
                    if not self.poll_events or (self._poller is None and self._signed_in):
                        problem += "; event polling is off"
                    raise self._error(
                        f"no {event_type} event for agent {self.agent_id} from {self.name} "
                        f"before the deadline; events seen meanwhile: "
                        f"{', '.join(skipped) if skipped else 'none'}{problem}"
                    )
                box.cond.wait(remaining)

    def drain_events(self) -> list[GatewayEvent]:
        """Take every event received so far and not yet consumed."""
        with self._events.cond:
            events = [e for e in self._events.queue if isinstance(e, GatewayEvent)]
            self._events.queue.clear()
        return events

    # ------------------------------------------------------------------ calls

    def handshake(self) -> GatewayReply:
        """Tell the gateway the agent is alive without polling."""
        return self._request("PUT", self._path("onlineagent", "/handshake"), action="handshake")

    def callout(
        self, called: str, skill_id: int, media_ability: int = 0, caller: str = ""
    ) -> GatewayReply:
        """Place an outbound call; progress comes as events (AgentEvent_Talking when up)."""
        validate_called(called)
        if media_ability not in (0, 1, 2):
            raise ConfigError("media_ability must be 0 (audio), 1 (video) or 2 (negotiated)")
        if caller and not _CALLED_RE.match(caller):
            raise ConfigError(f"caller number {caller!r} is invalid")
        if skill_id < 0:
            raise ConfigError("skill_id must not be negative")
        body = {
            "called": called,
            "caller": caller,
            "skillid": skill_id,
            "mediaability": media_ability,
        }
        return self._request(
            "PUT", self._path("voicecall", "/callout"), body=body, action=f"call out to {called}"
        )

    def answer(self) -> GatewayReply:
        return self._request("PUT", self._path("voicecall", "/answer"), action="answer the call")

    def release(self) -> GatewayReply:
        return self._request(
            "DELETE", self._path("voicecall", "/release"), action="release the call"
        )

    def media_switch(self, media_type: int, video_direction: int | None = None) -> GatewayReply:
        """Switch the call to audio (1) or video (3, optionally with a direction 1..4)."""
        validate_media(media_type, video_direction)
        params = {"mediaType": media_type}
        if video_direction is not None:
            params["videoDirection"] = video_direction
        what = f"media switch to type {media_type}" + (
            f" direction {video_direction}" if video_direction is not None else ""
        )
        return self._request(
            "POST", self._path("voicecall", "/mediaswitch"), params=params, action=what
        )
