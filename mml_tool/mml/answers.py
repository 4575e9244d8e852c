"""Answers no honest element gives, refused with ``AnswerError``.

``MmlSession`` hands every O&M answer to an ``AnswerGuard``: after ``REG NE``/``USE ME`` the
element header must name the selected element (or stay the first answer's), a command is
answered at most as often as it was sent, and numeric ``O&M`` serials never go backwards on a
connection (per element header: an NMS in front of the element counts apart).
"""

from __future__ import annotations

import re

from mml_tool.errors import AnswerError
from mml_tool.mml.echo import echo_matches
from mml_tool.mml.params import ConnectionParams
from mml_tool.mml.reports import MmlReport

_MENAME_RE = re.compile(r"MENAME:\s*([^*]+?)\s*\*/")
_MEID_RE = re.compile(r"MEID:\s*([0-9]{1,9})\b")


class AnswerGuard:
    """What one session has sent and been answered, to refuse answers no element gives."""

    def __init__(self, params: ConnectionParams) -> None:
        self.params = params
        self.selected = False  # REG NE / USE ME done: answers must come from that element
        self._element: str | None = None  # the element header answers come with (pinned)
        self._last_serial: dict[str | None, int] = {}  # per element header: an NMS counts apart
        self._sends: dict[str, int] = {}  # masked command -> times sent
        self._answers: dict[str, int] = {}  # masked command -> final answers received

    def sent(self, masked: str) -> None:
        self._sends[masked] = self._sends.get(masked, 0) + 1

    def answered(self, masked: str) -> None:
        self._answers[masked] = self._answers.get(masked, 0) + 1

    def refuse_second_answer(self, report: MmlReport, serial: str | None) -> None:
        for command, answered in self._answers.items():
            if answered >= self._sends.get(command, 0) and echo_matches(report.echo, command):
                raise AnswerError(
                    f"{self.params.name} ({self.params.address}): a second answer to {command} "
                    f"arrived (serial {serial or '?'}) after it had been answered: the element "
                    "or something between us and it repeats or forges answers; nothing read in "
                    "this session is used. Check the connection path to this element"
                )

    def check_serial(self, element: str | None, serial: str | None, masked: str) -> None:
        if serial is None or not (serial.isascii() and serial.isdigit()):
            return  # no serial, or one that is not a number (#HWHandle=174): not ordered
        number, last = int(serial), self._last_serial.get(element)
        if last is not None and number < last:
            raise AnswerError(
                f"{self.params.name} ({self.params.address}): the O&M serial went backwards (#"
                f"{number} after #{last}) in the reply to {masked}: an answer replayed or "
                "injected on this connection; nothing read from it is used"
            )
        self._last_serial[element] = number

    def check_element(self, element: str, masked: str) -> None:
        """The answer's element header must name the element selected with REG NE / USE ME;
        when the header names neither, it must stay the one the first answer came with."""
        h = self.params
        name = _MENAME_RE.search(element)
        meid = _MEID_RE.search(element)
        if h.ne_name is not None:
            shown = name.group(1) if name else element
            ok = shown.casefold() == h.ne_name.casefold()
            selected = f"NE {h.ne_name!r} (REG NE)"
        elif h.meid is not None and meid is not None:
            ok = int(meid.group(1)) == h.meid
            selected = f"MEID {h.meid} (USE ME)"
        else:
            if self._element is None:
                self._element = element
            ok = element == self._element
            selected = f"the element of the first answer ({self._element!r})"
        if not ok:
            raise AnswerError(
                f"{h.name} ({h.address}): the reply to {masked} is headed by {element!r}, not "
                f"by {selected}: another element answered; nothing read from it is used. "
                "Check ne_name/meid in the inventory and the path to the element"
            )
