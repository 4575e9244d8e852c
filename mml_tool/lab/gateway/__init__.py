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

from mml_tool.lab.gateway.server import GatewaySimulator
from mml_tool.lab.gateway.state import (
    BARE_EVENTS,
    BASE_PATH,
    EVENT_SHAPES,
    ONE_WAY_NOT_READY_REASON,
    VIDEO_AGENT_TYPE,
    AgentSpec,
    CallInfo,
    EventDelays,
    GatewayFaults,
    JsonObject,
    RequestRecord,
)

__all__ = [
    "BARE_EVENTS",
    "BASE_PATH",
    "EVENT_SHAPES",
    "ONE_WAY_NOT_READY_REASON",
    "VIDEO_AGENT_TYPE",
    "AgentSpec",
    "CallInfo",
    "EventDelays",
    "GatewayFaults",
    "GatewaySimulator",
    "JsonObject",
    "RequestRecord",
]
