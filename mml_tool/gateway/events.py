"""Agent events as a CC-Gateway sends them, in every shape the vendor's pages show.

Two shapes reach an event poll (../shared/reference/cc-gateway-api.md, samples/cc-gateway/):

    wrapped  {"message": "", "retcode": "0", "event": {"eventType": ..., "workNo": ...,
              "content": ..., ["eventGenTime": <epoch ms>]}}
    bare     {"eventType": "AgentEvent_MediaSwith", "workNo": "111", "content": {...,
              "jsonKey": [...]}, "jsonKey": ["eventType", "workNo", "content"]}

The vendor prints ``AgentEvent_MediaSwith`` and ``AgentMediaEvent_StopRecordDone`` bare and the
rest wrapped; public material cannot tell which a live gateway sends, so both are read.
``content`` is an object, a string (``AgentEvent_Call_Release``: the call ID) or null; numbers
may come as strings and strings as numbers (``"reason": 0`` or ``"0"``, ``"workNo": 111``);
``eventGenTime`` and the ``jsonKey`` arrays are optional (``jsonKey`` is ignored).

Lenient about layout, strict about meaning: an event whose type, agent, time or (for the events
verification judges) ``reason``/``mediaType``/call ID cannot be read raises ``EventFormatError``
naming the field, never an event with a guessed value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_EVENT_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
_INT_RE = re.compile(r"^[+-]?[0-9]{1,18}$")
_MAX_TEXT = 200  # a call ID or agent number longer than this is not one

MEDIA_SWITCH = "AgentEvent_MediaSwith"  # sic: the vendor spells it without the "c"
CALL_RELEASE = "AgentEvent_Call_Release"
#: Events whose content must carry these numbers (verification judges them).
_NUMBERS_REQUIRED = {MEDIA_SWITCH: ("reason", "mediaType")}


class EventFormatError(ValueError):
    """An event that cannot be read; the message names the field and what it holds."""


@dataclass(frozen=True)
class GatewayEvent:
    """One agent event as the gateway sent it (``content`` unchanged, for the evidence)."""

    event_type: str
    work_no: str
    content: Any  # a JSON object for most events; a string for AgentEvent_Call_Release; None
    received: float  # time.monotonic() when the poll answered
    generated: int | None = None  # eventGenTime (epoch milliseconds), when the gateway sent it
    wrapped: bool = True  # False: the event came bare, without the {message, retcode} envelope

    def get(self, key: str, default: Any = None) -> Any:
        """A field of ``content`` when it is an object, else ``default``."""
        return self.content.get(key, default) if isinstance(self.content, dict) else default

    def number(self, key: str) -> int | None:
        """A field of ``content`` as an integer (``0`` and ``"0"`` alike), else None."""
        return as_int(self.get(key))

    @property
    def call_id(self) -> str | None:
        """The call this event is about: ``content.callid``, or ``content`` itself when it is
        the bare call ID (``AgentEvent_Call_Release``)."""
        value = self.content if not isinstance(self.content, dict) else self.get("callid")
        return as_text(value) or None


def as_int(value: Any) -> int | None:
    """``value`` as an int when it is one (a JSON number or a string of digits), else None."""
    if isinstance(value, bool):  # JSON true is not 1
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    return None


def as_text(value: Any) -> str | None:
    """``value`` as text when it is a string or a whole number, else None."""
    if isinstance(value, str):
        return value.strip()
    number = as_int(value)
    return None if number is None else str(number)


def is_bare_event(data: Any) -> bool:
    """Whether a poll answer is an event without the envelope."""
    return isinstance(data, dict) and "eventType" in data and "retcode" not in data


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_event(raw: Any, *, received: float, wrapped: bool = True) -> GatewayEvent:
    """The event in ``raw`` (the ``event`` object of a wrapped answer, or a bare answer)."""
    if not isinstance(raw, dict):
        raise EventFormatError(f"the event is {_show(raw)}, not a JSON object")
    event_type = raw.get("eventType")
    if not isinstance(event_type, str) or not _EVENT_TYPE_RE.match(event_type.strip()):
        raise EventFormatError(f"eventType is {_show(event_type)}, not an event name")
    event_type = event_type.strip()
    where = f"{event_type}: "
    work_no = as_text(raw.get("workNo", ""))
    if work_no is None or len(work_no) > _MAX_TEXT:
        raise EventFormatError(f"{where}workNo is {_show(raw.get('workNo'))}, not an agent ID")
    generated = _generated(raw, where)
    content = _content(raw.get("content"), where)
    event = GatewayEvent(event_type, work_no, content, received, generated, wrapped)
    _check_content(event, where)
    return event


def _generated(raw: dict[str, Any], where: str) -> int | None:
    """``eventGenTime`` in epoch milliseconds, or None when absent."""
    if raw.get("eventGenTime") is None:
        return None
    generated = as_int(raw["eventGenTime"])
    if generated is None or generated < 0:
        raise EventFormatError(
            f"{where}eventGenTime is {_show(raw['eventGenTime'])}, not epoch milliseconds"
        )
    return generated


def _content(content: Any, where: str) -> dict[str, Any] | str | None:
    if isinstance(content, bool) or not isinstance(content, (dict, str, int, type(None))):
        raise EventFormatError(
            f"{where}content is {_show(content)}: expected an object, a string or null"
        )
    if isinstance(content, int):  # a call ID sent as a number
        return str(content)
    return content


def _check_content(event: GatewayEvent, where: str) -> None:
    """The numbers the event type must carry, and a call ID that is one."""
    content, event_type = event.content, event.event_type
    required = _NUMBERS_REQUIRED.get(event_type, ())
    if required and not isinstance(content, dict):
        raise EventFormatError(f"{where}content is {_show(content)}, expected an object")
    for key in required:
        if event.number(key) is None:
            raise EventFormatError(f"{where}content.{key} is {_show(event.get(key))}, not a number")
    if isinstance(content, dict):
        callid, field = content.get("callid"), "content.callid"
    else:  # only the release event is documented to carry the call ID as its content
        callid, field = (content if event_type == CALL_RELEASE else None), "content"
    if callid is not None and (as_text(callid) is None or len(str(callid)) > _MAX_TEXT):
        raise EventFormatError(f"{where}{field} is {_show(callid)}, not a call ID")
