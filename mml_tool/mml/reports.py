"""Reading MML reply text into reports (``MmlReport``): header, RETCODE, titled blocks
(vertical or table), paging.

    +++    <NE>        <YYYY-MM-DD HH:MM:SS[+TZ| DST]>       (the time may be missing)
    O&M    #<serial>                 (or ALARM/EVENT ... for autonomous reports)
    %%<echo>%%                       (may wrap over several lines)
    RETCODE = <n>  <text>

    <title>
    -------
    <vertical "Name  =  Value" lines, or a table: header, [blank line,] rows>
    (Number of results = N)          (or "(结果个数 = N)", also in full-width parentheses)

    To be continued...               (every page but the last; "仍有后续报告输出" in Chinese)
    ---    END

Strict about meaning, liberal about layout (reference/mml-protocol.md, "Variants seen in real
replies"): a header without a time, an NMS header pair before the element's, a serial that is
not a number, replies that start at the echo or at RETCODE, uniformly indented manual excerpts,
a terminal's typed command and NE name before the first report, later pages without header or
echo, blocks without a title, free text lines. A reply must still carry a RETCODE, values are
never guessed, and anything ambiguous raises ``ParseError`` (and only that), naming what was
expected and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mml_tool.errors import ParseError
from mml_tool.mml.blocks import COUNT_RE, DASHES_RE, Lines, MmlBlock, _fail, _parse_body
from mml_tool.mml.echo import command_from_echo as command_from_echo
from mml_tool.mml.echo import echo_matches as echo_matches

END_RE = re.compile(r"^[ \t]*---[ \t]+END[ \t\r]*$", re.M)
_TS = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:[+-]\d{1,2}(?::?\d{2})?| DST)?"
# The NE name holds single spaces at most: a wider gap must be followed by the time.
HEADER_RE = re.compile(rf"^\+\+\+\s+(\S+(?: \S+)*?)(?:\s{{2,}}({_TS}))?$")
KIND_RE = re.compile(r"^(\S+)(?:\s+(?:#(\S+)|([0-9]{1,20})))?(?:\s.*)?$")
ECHO_RE = re.compile(r"^%%(.*)%%$")
RETCODE_RE = re.compile(r"^RETCODE\s*=\s*(\S+)(?:\s+(.*))?$")
CONTINUED_RE = re.compile(
    r"^(?:to\s+be\s+continued|more\s+reports?\s+continuing|仍有后续报告输出)\s*[.。…]*$", re.I
)
TOTAL_RE = re.compile(
    r"^(?:.*?\b(?:([0-9]{1,9})\s+)?reports?\s+in\s+total\.?|共有\s*([0-9]{1,9})\s*个报告)$", re.I
)
_CRS_LF = re.compile(r"\r+\n")
_INDENTED = re.compile(r"^[^\S\n]", re.M)  # a line that starts with whitespace (U+3000 too)
_TOTAL_HINT = re.compile(r"total|共有", re.I)  # what every TOTAL_RE line holds (cheap search)
CONTINUED = "To be continued..."
PROGRESS_RETCODE = 99999  # "实时上报成功": an intermediate report, the final one follows
_DONE_RE = re.compile(r"([0-9]{1,3})\s*%")
MAX_ECHO_LINES = 20  # a wrapped echo longer than this is not an echo
MAX_PREAMBLE_LINES = 10  # a terminal's typed command and NE name before the first report


@dataclass(frozen=True)
class MmlReport:
    ne: str  # "" when the reply carries no header line
    timestamp: str  # "" when the header carries no time
    kind: str  # "O&M" answers a command; anything else (ALARM, EVENT, ...) is autonomous
    serial: int | None  # None when the serial is missing or not a number (#HWHandle=174)
    echo: str
    retcode: int | None
    message: str
    blocks: list[MmlBlock]
    continued: bool  # a paging marker says another page follows
    empty_text: str  # free text lines of the body ("No matching result is found", a ping's)
    raw: str
    serial_text: str = ""  # the serial as printed, "" when there is none
    total: int | None = None  # "共有N个报告" / "N reports in total" on the last page
    nms: str = ""  # an NMS front end's own header before the element's: "<NE> #<serial>"
    page: int = 1  # the page's number in a paged reply

    @property
    def autonomous(self) -> bool:
        return self.kind != "O&M"

    @property
    def progress(self) -> bool:
        """An intermediate progress report, the final report follows: RETCODE 99999, or a
        "进度报告" block that says it is not complete yet (``已完成 = 99%``)."""
        if self.retcode == PROGRESS_RETCODE:
            return True
        return self.retcode == 0 and any(
            (m := _DONE_RE.fullmatch(record.get("已完成", ""))) is not None and int(m[1]) < 100
            for block in self.blocks
            if block.title == "进度报告"
            for record in block.records
        )

    @property
    def pending(self) -> bool:
        """Whether more reports answer the same command (another page, or the final report)."""
        return self.continued or self.progress


def _header_at(lines: Lines, i: int) -> tuple[re.Match[str], re.Match[str] | None] | None:
    """The header and kind lines at ``i`` (the kind line may be absent at the end)."""
    head = HEADER_RE.match(lines[i][1]) if i < len(lines) else None
    if head is None:
        return None
    kind = KIND_RE.match(lines[i + 1][1]) if i + 1 < len(lines) else None
    return head, kind


_HEADER_SHAPE = "'+++    <NE name>        [<YYYY-MM-DD HH:MM:SS>]'"
_KIND_SHAPE = "'O&M    #<serial>' or an autonomous report kind"


def _serial_of(kind: re.Match[str]) -> str:
    """The serial a kind line shows (``O&M    #123``), or ""."""
    return kind.group(2) or kind.group(3) or ""


def _element_pair(lines: Lines) -> tuple[re.Match[str], re.Match[str]]:
    """The element's header and kind lines after an NMS's own pair (at index 2)."""
    found = _header_at(lines, 2)
    if found is None:
        raise _fail(_HEADER_SHAPE, lines[2])
    head, kind_m = found
    if kind_m is None or len(lines) <= 4:
        raise _fail(_KIND_SHAPE, lines[3])
    return head, kind_m


def _parse_header(lines: Lines) -> tuple[int, str, str, str, str, str]:
    """The ``+++`` header and kind lines that open ``lines`` (after an NMS's own pair, if
    any): (index after them, NE name, timestamp, kind, serial text, NMS)."""
    i, nms = 0, ""
    found = _header_at(lines, 0)
    if found is None:
        raise _fail(_HEADER_SHAPE, lines[0])
    head, kind_m = found
    if kind_m is None or len(lines) <= 2 or END_RE.match(lines[1][1]):
        raise _fail(_KIND_SHAPE, lines[min(1, len(lines) - 1)])
    if lines[2][1].startswith("+++") and kind_m.group(1) == "O&M":  # an NMS's own pair first
        nms = f"{head.group(1)} #{_serial_of(kind_m)}".strip()
        head, kind_m = _element_pair(lines)
        i = 2
    kind = kind_m.group(1)
    serial_text = _serial_of(kind_m)
    if kind == "O&M" and not serial_text:
        raise _fail(_KIND_SHAPE, lines[i + 1])
    return i + 2, head.group(1), head.group(2) or "", kind, serial_text, nms


def _report_echo(
    lines: Lines, i: int, kind: str, ne: str, previous: MmlReport | None
) -> tuple[str, int]:
    """The echo at line ``i`` (or the page before's) and the index after it."""
    if lines[i][1].startswith("%%"):
        return _echo(lines, i)
    if kind == "O&M" and (ne or lines[i][1].startswith("+++")) and previous is None:
        raise _fail("the command echo '%%<command>%%'", lines[i])
    if previous is not None and kind == "O&M":
        return previous.echo, i
    return "", i


def _report_retcode(
    lines: Lines, i: int, kind: str, previous: MmlReport | None
) -> tuple[int | None, str, int]:
    """(RETCODE, its text, the index after it) at line ``i``, or the page before's."""
    if (m := RETCODE_RE.match(lines[i][1])) is not None:
        if not re.fullmatch(r"-?[0-9]{1,20}", m.group(1)):  # int() of 5000 digits fails
            raise _fail("a number after 'RETCODE ='", lines[i])
        return int(m.group(1)), (m.group(2) or "").strip(), i + 1
    if previous is not None and kind == "O&M":
        return previous.retcode, previous.message, i
    if kind == "O&M":
        raise _fail("'RETCODE = <n>  <text>'", lines[i])
    return None, "", i


def _split_trailers(lines: Lines) -> tuple[Lines, bool, int | None]:
    """(body, continued, total): ``lines`` without the ``To be continued`` and
    ``Number of results`` lines, and what they said."""
    body: Lines = []
    continued, total = False, None
    for ln in lines:
        text = ln[1].strip()
        if CONTINUED_RE.match(text):
            continued = True
        elif _TOTAL_HINT.search(text) and (t := TOTAL_RE.match(text)) is not None:
            number = t.group(1) or t.group(2)
            total = int(number) if number else total
        else:
            body.append(ln)
    return body, continued, total


def _report_blocks(body: Lines, kind: str) -> tuple[list[MmlBlock], str]:
    try:
        return _parse_body(body)
    except ParseError:
        if kind == "O&M":
            raise
        return [], ""  # autonomous reports: best effort, the raw text is kept


def _parse_report(lines: Lines, raw: str, previous: MmlReport | None = None) -> MmlReport:
    """``lines`` runs from the report's first line to its ``---    END`` line, both included.

    ``previous`` is the page before, when it said another page follows: this page may then
    repeat neither header nor echo nor RETCODE, and inherits them.
    """
    i, ne, timestamp, kind, serial_text, nms = 0, "", "", "O&M", "", ""
    if lines[0][1].startswith("+++"):
        i, ne, timestamp, kind, serial_text, nms = _parse_header(lines)
    elif previous is not None:
        ne, timestamp, serial_text = previous.ne, previous.timestamp, previous.serial_text
    echo, i = _report_echo(lines, i, kind, ne, previous)
    retcode, message, i = _report_retcode(lines, i, kind, previous)
    body, continued, total = _split_trailers(lines[i:-1])
    blocks, empty_text = _report_blocks(body, kind)
    return MmlReport(
        ne=ne,
        timestamp=timestamp,
        kind=kind,
        serial=int(serial_text) if re.fullmatch(r"[0-9]{1,20}", serial_text) else None,
        echo=echo,
        retcode=retcode,
        message=message,
        blocks=blocks,
        continued=continued,
        empty_text=empty_text,
        raw=raw,
        serial_text=serial_text,
        total=total,
        nms=nms,
        page=previous.page + 1 if previous is not None and kind == "O&M" else 1,
    )


def _echo(lines: Lines, i: int) -> tuple[str, int]:
    """The echo starting at line ``i`` (``%%...%%``, possibly wrapped) and the next index."""
    if (m := ECHO_RE.match(lines[i][1])) is not None:
        return m.group(1), i + 1
    parts = [lines[i][1][2:]]
    for j in range(i + 1, min(len(lines) - 1, i + MAX_ECHO_LINES)):
        text = lines[j][1]
        if RETCODE_RE.match(text) or END_RE.match(text):
            break
        if text.endswith("%%"):
            parts.append(text[:-2])
            return "".join(parts), j + 1
        parts.append(text)
    raise _fail("the end of the command echo '...%%'", lines[i])


def _dedent(lines: Lines) -> Lines:
    """Manual excerpts indent every line alike: remove that common indentation."""
    indents = [t[: len(t) - len(t.lstrip())] for _, t in lines if t.strip()]
    first, last = min(indents, default=""), max(indents, default="")  # spaces or tabs
    cut = next((k for k, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))
    return [(n, t[cut:]) for n, t in lines] if cut else lines


def _is_start(text: str) -> bool:
    return text.startswith(("+++", "%%")) or RETCODE_RE.match(text) is not None


def _structural(text: str) -> bool:
    return bool(
        END_RE.match(text)
        or COUNT_RE.match(text.strip())
        or DASHES_RE.match(text.strip())
        or CONTINUED_RE.match(text.strip())
    )


def _lines(text: str) -> Lines:
    norm = _CRS_LF.sub("\n", text).replace("\r", "\n")
    lines = [(n, line.rstrip()) for n, line in enumerate(norm.split("\n"), start=1)]
    if _INDENTED.search(norm) is None:  # most replies are not indented
        return lines
    return _dedent(lines)


def _is_om(text: str) -> bool:
    m = KIND_RE.match(text)
    return m is not None and m.group(1) == "O&M"


def _report_end(lines: Lines, i: int) -> int:
    """The index of the ``---    END`` line that closes the report starting at ``i``."""
    end = i + 1
    while end < len(lines) and not END_RE.match(lines[end][1]):
        nms_pair = end == i + 2 and lines[i][1].startswith("+++") and _is_om(lines[i + 1][1])
        if lines[end][1].startswith("+++") and not nms_pair:  # an NMS's own header pair first
            raise _fail("'---    END' before the next report", lines[end])
        end += 1
    if end == len(lines):
        raise _fail("'---    END' to close the report that starts", lines[i])
    return end


def _take_report(lines: Lines, i: int, pending: MmlReport | None) -> tuple[MmlReport, int]:
    """The report starting at line ``i`` and the index of its ``---    END`` line."""
    end = _report_end(lines, i)
    chunk = lines[i : end + 1]
    raw = "\n".join(line for _, line in chunk) + "\n"
    report = _parse_report(chunk, raw, pending)
    if not report.autonomous and report.total is not None and report.total != report.page:
        raise _fail(f"{report.page} report(s) as counted, not {report.total}", chunk[-2])
    return report, end


def _no_report(lines: Lines) -> ParseError:
    first = next((ln for ln in lines if ln[1].strip()), None)
    if first is not None:
        return _fail("a report header '+++    <NE name>        <time>'", first)
    return ParseError("MML reply: expected a report starting with '+++', got nothing")


def _add_preamble(line: tuple[int, str], preamble: Lines, *, after_report: bool) -> None:
    """Keep a line before the first report (a terminal's typed command and the NE name)."""
    if after_report or _structural(line[1]) or len(preamble) >= MAX_PREAMBLE_LINES:
        raise _fail(
            "a report header '+++    <NE name>        <time>' (or the echo "
            "'%%<command>%%', or 'RETCODE = <n>')",
            line,
        )
    preamble.append(line)


def _parse_lines(lines: Lines, previous: MmlReport | None = None) -> list[MmlReport]:
    reports: list[MmlReport] = []
    pending = previous if previous is not None and previous.continued else None
    preamble: Lines = []
    i = 0
    while i < len(lines):
        text = lines[i][1]
        if not text.strip() or (
            reports and _TOTAL_HINT.search(text) and TOTAL_RE.match(text.strip())
        ):
            i += 1
            continue
        if not _is_start(text) and pending is None:
            _add_preamble(lines[i], preamble, after_report=bool(reports))
            i += 1
            continue
        report, end = _take_report(lines, i, pending)
        if not report.autonomous:
            pending = report if report.continued else None
        reports.append(report)
        i = end + 1
    if not reports:
        raise _no_report(lines)
    return reports


# The most common reply, one report with nothing in its body (the answers to LGI, REG NE, LGO,
# MOD): read by one pattern. Anything it does not match, the general reader reads (and a test
# checks that both read every frame it matches the same).
_SIMPLE_RE = re.compile(
    rf"\+\+\+[ \t]+(?P<ne>\S+(?: \S+)*?)(?:[ \t]{{2,}}(?P<ts>{_TS}))?[ \t]*\r*\n"
    r"O&M[ \t]+#(?P<serial>[0-9]{1,20})[ \t]*\r*\n"
    r"%%(?P<echo>[^\r\n]*)%%[ \t]*\r*\n"
    r"RETCODE[ \t]*=[ \t]*(?P<rc>-?[0-9]{1,20})(?:[ \t]+(?P<msg>[^\r\n]*?))?[ \t]*\r*\n"
    r"(?:[ \t]*\r*\n)*"
    r"[ \t]*---[ \t]+END[ \t\r]*\n?"
)


def _parse_simple(text: str) -> MmlReport | None:
    """The report ``text`` holds when it is one report with an empty body; else None."""
    m = _SIMPLE_RE.fullmatch(text)
    if m is None:
        return None
    lines = [line.rstrip() for line in _CRS_LF.sub("\n", text).split("\n")]
    return MmlReport(
        ne=m["ne"],
        timestamp=m["ts"] or "",
        kind="O&M",
        serial=int(m["serial"]),
        echo=m["echo"],
        retcode=int(m["rc"]),
        message=(m["msg"] or "").strip(),
        blocks=[],
        continued=False,
        empty_text="",
        raw="\n".join(lines[:-1] if lines[-1] == "" else lines) + "\n",
        serial_text=m["serial"],
    )


def parse_report(text: str, continuation_of: MmlReport | None = None) -> MmlReport:
    """Parse exactly one report; ``continuation_of`` is the page before it, when that page
    said another follows (this page may then lack header, echo and RETCODE)."""
    if continuation_of is None and (simple := _parse_simple(text)) is not None:
        return simple
    reports = _parse_lines(_lines(text), continuation_of)
    if len(reports) != 1:
        raise ParseError(f"MML reply: expected one report, found {len(reports)}")
    return reports[0]
