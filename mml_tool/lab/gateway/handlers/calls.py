"""Calls of the gateway simulator: call out, answer, release, mediaswitch."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from mml_tool.lab.gateway.handlers.sessions import _AgentSessions
from mml_tool.lab.gateway.state import (
    _CALLED_RE,
    ONE_WAY_NOT_READY_REASON,
    VIDEO_AGENT_TYPE,
    EventDelays,
    JsonObject,
    _Call,
    _Ctx,
    _envelope,
    _error,
    _not_found,
    _Reply,
    _Session,
)


class _AgentCalls(_AgentSessions):
    """Call out, answer, release and media switch of a signed-in agent's call."""

    event_delays: EventDelays
    unreachable_numbers: frozenset[str]
    rejected_numbers: frozenset[str]
    one_way_video_ready: Callable[[str], bool]
    _task_seq: Iterator[int]

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        raise NotImplementedError  # the simulator's timer thread

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
