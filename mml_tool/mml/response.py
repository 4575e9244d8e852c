"""One command's answer (``MmlResponse``): its reports, RETCODE, blocks and records.

The text is read into reports by ``mml/reports.py`` (the reply format, its variants, the
errors); ``parse_response`` reads a whole answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mml_tool.errors import ParseError, RetcodeError
from mml_tool.mml.blocks import MmlBlock
from mml_tool.mml.reports import END_RE as END_RE
from mml_tool.mml.reports import MmlReport as MmlReport
from mml_tool.mml.reports import _lines, _parse_lines
from mml_tool.mml.reports import command_from_echo as command_from_echo
from mml_tool.mml.reports import echo_matches as echo_matches
from mml_tool.mml.reports import parse_report as parse_report


class ResponseParser(Protocol):
    """Turns the reply ``text`` to ``command`` into records (``mml_tool.parsing`` supplies
    the TextFSM one; the protocol layer does not import it). ParseError if it cannot."""

    def __call__(self, command: str, text: str, platform: str) -> list[dict[str, str]]: ...


@dataclass
class MmlResponse:
    reports: list[MmlReport]
    raw: str
    command: str = ""  # masked command text
    host: str = ""
    elapsed: float = 0.0
    platform: str = ""
    parser: ResponseParser | None = field(default=None, repr=False, compare=False)

    def parse(self) -> list[dict[str, str]]:
        """The reply's records, read by the template for this command and platform.

        Only the reports are parsed, not what a terminal printed before them. Call
        ``raise_for_retcode()`` first: a refused command has nothing to parse.
        """
        if self.parser is None:
            raise ParseError(
                f"{self.host or 'the element'}: no parser for the reply to {self.command}: use "
                "mml_tool.MmlSession (it parses with the built-in templates) or pass parser="
            )
        return self.parser(self.command, self.text, self.platform)

    @property
    def _om(self) -> list[MmlReport]:  # the answers to the command, autonomous reports aside
        return [r for r in self.reports if not r.autonomous]

    @property
    def complete(self) -> bool:
        """The last answer is final: no page and no progress report is still to come."""
        return bool(self._om) and not self._om[-1].pending

    @property
    def retcode(self) -> int | None:
        """The final report's RETCODE: it decides (progress reports come before it)."""
        return self._om[-1].retcode if self._om else None

    @property
    def message(self) -> str:
        return self._om[-1].message if self._om else ""

    @property
    def ok(self) -> bool:
        return self.complete and self.retcode == 0

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def blocks(self) -> list[MmlBlock]:
        return [b for r in self._om if not r.progress for b in r.blocks]

    @property
    def records(self) -> list[dict[str, str]]:
        return [rec for b in self.blocks for rec in b.records]

    @property
    def text(self) -> str:
        """The reports as received, without what came before the first one."""
        return "".join(r.raw for r in self.reports)

    def raise_for_retcode(self) -> MmlResponse:
        """Raise ``RetcodeError`` unless the element answered RETCODE = 0; return self."""
        where = self.host or "the element"
        if not self._om:
            raise ParseError(f"{where}: no O&M report answers {self.command}")
        last = self._om[-1]
        if last.pending:
            what = "another page" if last.continued else "the final report after RETCODE 99999"
            raise ParseError(
                f"{where}: the reply to {self.command or 'the command'} is incomplete: it ends "
                f"where {what} should follow; capture the whole reply"
            )
        if self.retcode != 0:
            raise RetcodeError(self.retcode or 0, self.message, self.command, self.host)
        return self


def parse_response(text: str) -> MmlResponse:
    """Parse one or more reports (pages, progress and autonomous reports) that follow each
    other; text a terminal prints before the first report (the typed command, the NE name) is
    skipped."""
    return MmlResponse(_parse_lines(_lines(text)), text)
