"""Reading MML replies as text: where a report ends, what a terminal adds before it (blank
lines, the echo of our command), the element header, and the masked transcript."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mml_tool.mml.command import mask_text

# Framing on bytes: "---", spaces and "END" after a line start are ASCII in UTF-8 and GB18030.
_END_BYTES = re.compile(rb"^[ \t]*---[ \t]+END[ \t\r]*$", re.M)
_ERASE_RE = re.compile(r".?\x08 \x08")  # a terminal's echo of backspace erases one character
_HEAD_RE = re.compile(
    r"^\+\+\+\s+(.*?)(?:\s+\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\S*(?:\s+DST)?)?\s*$"
)
_SERIAL_RE = re.compile(r"^O&M\s+#?([0-9]{1,20})\s*$")


@dataclass(frozen=True)
class TranscriptEntry:
    time: float  # time.time()
    direction: str  # ">>>" sent, "<<<" received, "---" a note
    text: str


@dataclass
class Transcript:
    """A masked record of what was exchanged, for evidence and debugging."""

    entries: list[TranscriptEntry] = field(default_factory=list)

    def add(self, direction: str, text: str) -> None:
        self.entries.append(TranscriptEntry(time.time(), direction, mask_text(text)))

    def text(self) -> str:
        out = []
        for e in self.entries:
            stamp = datetime.fromtimestamp(e.time).isoformat(timespec="milliseconds")
            for line in e.text.replace("\r\n", "\n").rstrip("\n").split("\n"):
                out.append(f"{stamp} {e.direction} {line}")
        return "\n".join(out) + ("\n" if out else "")

    def write(self, path: Path) -> None:
        path.write_text(self.text(), encoding="utf-8")


def skip_noise(sent: Iterable[str], frame: str) -> str:
    """Drop what a terminal prints before a report: blank lines and the echo of a command
    we sent (SSH shells with echo). Anything else is left for the parser to refuse."""
    lines = frame.splitlines(keepends=True)
    i = 0
    while i < len(lines) and not lines[i].startswith("+++"):
        line = lines[i]
        while _ERASE_RE.search(line):
            line = _ERASE_RE.sub("", line, count=1)
        line = line.strip()
        if line and not any(_same(line, s) for s in sent):
            break
        i += 1
    return "".join(lines[i:])


def _verb(command: str) -> str:
    head = command.split(":", 1)[0].split()
    return head[0].upper() if head else ""


def element_head(frame: str) -> tuple[str | None, str | None]:
    """The element's name and O&M serial text from a report's header lines: the last ``+++``
    line and the last ``O&M`` line before the ``%%echo%%`` (an NMS may print its own pair
    first). None where the report has no such line (later pages, header-less variants)."""
    element = serial = None
    for line in frame.splitlines():
        text = line.strip()
        if text.startswith("%%"):
            break
        if text.startswith("+++") and (m := _HEAD_RE.match(text)) is not None:
            element, serial = m.group(1).strip() or None, None
        elif text.startswith("O&M"):
            m2 = _SERIAL_RE.match(text)
            serial = m2.group(1) if m2 else text.removeprefix("O&M").strip().lstrip("#")
    return element, serial


def _same(echoed: str, sent: str) -> bool:
    return "".join(echoed.split()) == "".join(sent.split())
