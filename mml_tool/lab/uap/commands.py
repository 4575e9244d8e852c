"""Device-side command parsing and splitting, and reply helpers (Chinese paging, garbage)."""

from __future__ import annotations

import codecs
import dataclasses
import re
from dataclasses import dataclass

from mml_tool.lab.frames import END_LINE, Report
from mml_tool.lab.uap.config import MAX_COMMAND_CHARS, ZH_MORE_LINE


class _BadCommand(Exception):
    pass


@dataclass
class _Command:
    verb: str
    obj: str
    params: dict[str, str]

    @property
    def key(self) -> str:
        return f"{self.verb} {self.obj}".strip()


def parse_device_command(text: str) -> _Command:
    """The simulated device's own lenient parser; raises _BadCommand with a reason."""
    text = text.strip()
    if not text.endswith(";"):
        raise _BadCommand("end the command with a semicolon")
    body = text[:-1]
    head, _, rest = body.partition(":")
    words = head.split()
    if not words or not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", w) for w in words):
        raise _BadCommand("expected VERB OBJECT: NAME=value, ...;")
    if len(words) > 2:
        raise _BadCommand("expected VERB OBJECT: NAME=value, ...;")
    params: dict[str, str] = {}
    for part in _split_outside_quotes(rest, ","):
        if not part.strip():
            continue
        name, value = _param(part)
        if name in params:
            raise _BadCommand(f"parameter {name} given twice")
        params[name] = value
    return _Command(words[0].upper(), words[1].upper() if len(words) > 1 else "", params)


def _param(part: str) -> tuple[str, str]:
    """``NAME=value`` or ``NAME="text"``: (NAME in capitals, the value unquoted)."""
    name, eq, value = part.partition("=")
    name = name.strip().upper()
    value = value.strip()
    if not eq or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
        raise _BadCommand(f"expected NAME=value, got {part.strip()!r}")
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
            raise _BadCommand(f"unbalanced quotes in {name}")
        value = value[1:-1]
    elif '"' in value or not value:
        raise _BadCommand(f"bad value of {name}")
    return name, value


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


class CommandSplitter:
    """Turns received bytes into complete command texts (and, optionally, terminal echo).

    A command ends at ``;`` outside double quotes, or at a line end (then it lacks ``;`` and
    is answered with RETCODE 1002). Blank lines are ignored. Backspace/DEL erase a character,
    Ctrl-C drops the pending line.
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._current: list[str] = []
        self._quoted = False
        self._last_cr = False

    def feed(self, data: bytes) -> tuple[list[str], str]:
        commands: list[str] = []
        echo: list[str] = []
        for ch in self._decoder.decode(data):
            if ch in "\r\n":
                skip = ch == "\n" and self._last_cr
                self._last_cr = ch == "\r"
                if skip:
                    continue
                echo.append("\r\n")
                self._finish(commands)
                continue
            self._last_cr = False
            if ch in "\x08\x7f":
                if self._current:
                    removed = self._current.pop()
                    if removed == '"':
                        self._quoted = not self._quoted
                    echo.append("\b \b")
                continue
            if ch == "\x03":
                self._current = []
                self._quoted = False
                echo.append("^C\r\n")
                continue
            if ch < " " and ch != "\t":
                continue
            echo.append(ch)
            self._current.append(ch)
            if ch == '"':
                self._quoted = not self._quoted
            elif (ch == ";" and not self._quoted) or len(self._current) > MAX_COMMAND_CHARS:
                self._finish(commands)
        return commands, "".join(echo)

    def _finish(self, commands: list[str]) -> None:
        text = "".join(self._current).strip()
        self._current = []
        self._quoted = False
        if text:
            commands.append(text)


def _chinese_paging(reports: list[Report], *, bare: bool) -> list[Report]:
    """Pages as Chinese-language elements print them (module docstring of ``frames``)."""
    total = sum(len(b.records) for r in reports for b in r.blocks)
    out = []
    for i, report in enumerate(reports):
        last = i == len(reports) - 1
        blocks = [
            dataclasses.replace(b, show_count=last and j == len(report.blocks) - 1, count=total)
            for j, b in enumerate(report.blocks)
        ]
        out.append(
            dataclasses.replace(
                report,
                blocks=tuple(blocks),
                more_text=ZH_MORE_LINE,
                total=len(reports) if last else None,
                bare=bare and i > 0,
            )
        )
    return out


def _garbage() -> str:
    return (
        "MML agent: output buffer corrupted, dumping\r\n"
        "@@ 0x7f3a 00 12 ff ?? RETCODE ?? \x1b[0m#\r\n"
        f"{END_LINE}\r\n"
    )
