"""The agent interfaces of the gateway simulator: sign-in, GUIDs, event polls, calls."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from mml_tool.lab.gateway.state import (
    _CALLED_RE,
    _JSON_TYPE,
    _PHONE_RE,
    BARE_EVENTS,
    ONE_WAY_NOT_READY_REASON,
    VIDEO_AGENT_TYPE,
    AgentSpec,
    EventDelays,
    GatewayFaults,
    JsonObject,
    _Call,
    _Ctx,
    _envelope,
    _error,
    _not_found,
    _Reply,
    _Session,
)

logger = logging.getLogger(__name__)


class _Handlers:
    """The agent interfaces (sign-in, events, calls), mixed into ``GatewaySimulator``.

    The attributes below are the simulator's state, set in its ``__init__``."""

    agents: dict[str, AgentSpec]
    event_shape: Literal["documented", "wrapped"]
    poll_wait: float
    guid_mode: Literal["dynamic", "static"]
    guid_rotate_every: int
    guid_grace: float
    event_delays: EventDelays
    unreachable_numbers: frozenset[str]
    rejected_numbers: frozenset[str]
    one_way_video_ready: Callable[[str], bool]
    _cond: threading.Condition
    _faults: GatewayFaults
    _sessions: dict[str, _Session]
    _signing_in: set[str]
    _call_seq: Iterator[int]
    _task_seq: Iterator[int]
    _stopping: threading.Event

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        raise NotImplementedError  # the simulator's timer thread

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
        media_type, direction = _media_query(ctx)
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


def _media_query(ctx: _Ctx) -> tuple[int, int | None]:
    """``mediaType`` and ``videoDirection`` of a mediaswitch; 0 for a value that is no number."""
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
    return media_type, direction
