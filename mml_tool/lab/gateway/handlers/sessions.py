"""Agent sessions of the gateway simulator: sign-in, GUIDs, events and their long poll,
and the sweep that signs out idle agents and retires expired GUIDs."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from mml_tool.lab.gateway.state import (
    _JSON_TYPE,
    _PHONE_RE,
    BARE_EVENTS,
    AgentSpec,
    GatewayFaults,
    JsonObject,
    _Ctx,
    _envelope,
    _error,
    _not_found,
    _Reply,
    _Session,
)

logger = logging.getLogger(__name__)


class _AgentSessions:
    """Sign-in, the GUID check of every other request, and the events a session is told.

    The attributes below are the simulator's state, set in its ``__init__``."""

    agents: dict[str, AgentSpec]
    event_shape: Literal["documented", "wrapped"]
    poll_wait: float
    idle_signout: float
    guid_mode: Literal["dynamic", "static"]
    guid_rotate_every: int
    guid_grace: float
    _cond: threading.Condition
    _faults: GatewayFaults
    _sessions: dict[str, _Session]
    _signing_in: set[str]
    _call_seq: Iterator[int]
    _stopping: threading.Event

    def _slow(self) -> None:
        raise NotImplementedError  # the simulator's ``slow`` fault

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

    # --------------------------------------------------------- housekeeping

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
