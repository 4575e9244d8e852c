"""One agent's HTTP connection to the CC-Gateway: settings and TLS, one request with its
deadline, the session GUID (``Set-GUID`` in, ``Guid`` out) and the masking of every secret in
what leaves the client (``_scrub``). ``GatewayClient`` (client.py) builds on it."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

from mml_tool.errors import ConfigError, GatewayError, GatewayEventError
from mml_tool.gateway.events import EventFormatError, GatewayEvent, is_bare_event, parse_event
from mml_tool.gateway.protocol import (
    _PHONE_RE,
    BASE_PATH,
    CONTENT_TYPE,
    MAX_REPLY_BYTES,
    VIDEO_AGENT_TYPE,
    GatewayReply,
    _EventBox,
    _find_cert_error,
    _redact_http_library_logs,
    _size,
    describe_retcode,
    validate_agent_id,
)
from mml_tool.gateway.transport import (
    BoundedTransport,
    DeadlineTransport,
    EncodedReply,
    ReplyTooLarge,
    request_deadline,
)
from mml_tool.secret import MASK, Secret

# One logger name for the whole client, as before it was split into modules.
logger = logging.getLogger("mml_tool.gateway.client")


class _AgentConnection:
    """Settings, TLS and the request/GUID machinery of one agent session."""

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
        verify = self._tls_verification()
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

    def _tls_verification(self) -> ssl.SSLContext | bool:
        """How the gateway's certificate is checked: against ``ca_bundle``, the system's trust
        store (True), or not at all (``insecure``, said loudly)."""
        if self.insecure:
            message = (
                f"TLS certificate verification is OFF for {self.url}: anyone on the path can "
                "read the agent password and session. Use ca_bundle instead outside a lab."
            )
            logger.warning(message)
            # stacklevel 3: the warning points at the code that built the GatewayClient.
            warnings.warn(message, stacklevel=3)
            return False
        if self.ca_bundle is None:
            return True
        if not self.ca_bundle.is_file():
            raise ConfigError(
                f"CA bundle {self.ca_bundle} does not exist: point ca_bundle at the PEM file of "
                f"the CA that signed the certificate of {self.url}"
            )
        try:
            return ssl.create_default_context(cafile=str(self.ca_bundle))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"CA bundle {self.ca_bundle} could not be read: {exc}") from None

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
