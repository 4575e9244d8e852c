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
that leaves the client passes through ``_scrub`` (agent.py).
"""

from __future__ import annotations

import logging
from types import TracebackType

from mml_tool.errors import ConfigError, GatewayError
from mml_tool.gateway.events import GatewayEvent as GatewayEvent
from mml_tool.gateway.polling import _EventPolling
from mml_tool.gateway.protocol import _CALLED_RE, GatewayReply, validate_called, validate_media

# Re-exported: callers and tests import these from here.
from mml_tool.gateway.protocol import MAX_REPLY_BYTES as MAX_REPLY_BYTES
from mml_tool.gateway.protocol import RETCODE_MEANINGS as RETCODE_MEANINGS
from mml_tool.gateway.protocol import VIDEO_AGENT_TYPE as VIDEO_AGENT_TYPE
from mml_tool.gateway.protocol import describe_retcode as describe_retcode
from mml_tool.gateway.protocol import validate_agent_id as validate_agent_id

logger = logging.getLogger(__name__)


class GatewayClient(_EventPolling):
    """A CC-Gateway agent session over HTTPS. Thread-safe for one caller plus the poller.

    Built in layers: ``gateway/agent.py`` (settings, TLS, requests, GUID), ``gateway/polling.py``
    (events), this module (sign-in and sign-out, call requests)."""

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
