"""Parse MML reply frames: header, RETCODE, titled blocks (vertical or table), paging.

    +++    <NE>        <YYYY-MM-DD HH:MM:SS[+TZ| DST]>
    O&M    #<serial>                 (or ALARM/EVENT ... for autonomous reports)
    %%<echo>%%
    RETCODE = <n>  <text>

    <title>
    -------
    <vertical "Name  =  Value" lines, or a table: header, blank line, rows>
    (Number of results = N)

    To be continued...               (every page but the last)
    ---    END

Anything else raises ``ParseError`` (and only that), naming what was expected and the line.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mml_tool.errors import ParseError, RetcodeError
from mml_tool.mml.command import mask_text
from mml_tool.secret import MASK

END_RE = re.compile(r"^---\s+END\s*$", re.M)
_TS = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:[+-]\d{1,2}(?::?\d{2})?| DST)?"
HEADER_RE = re.compile(rf"^\+\+\+\s+(\S.*?)\s+({_TS})$")
KIND_RE = re.compile(r"^(\S+)(?:\s+#?([0-9]{1,20}))?(?:\s.*)?$")
ECHO_RE = re.compile(r"^%%(.*)%%$")
RETCODE_RE = re.compile(r"^RETCODE\s*=\s*(\S+)(?:\s+(.*))?$")
COUNT_RE = re.compile(r"^\((?:Number of results|结果个数)\s*=\s*([0-9]{1,20})\)$")
DASHES_RE = re.compile(r"^-+$")
FIELD_RE = re.compile(r"^\s*(\S.*?)\s+=(?:\s+(.*))?$")
_CELL_SEP = re.compile(r"\s{2,}")
_ECHO_PREFIX = re.compile(r"^(?:\s*(?:[0-9]+|/\*.*?\*/))*")  # "241299", "/*1879 MEID=5*/"
_QUOTED = re.compile(r'("[^"]*")')
CONTINUED = "To be continued..."

Lines = list[tuple[int, str]]  # (1-based line number, text without trailing whitespace)


@dataclass(frozen=True)
class MmlBlock:
    title: str
    records: list[dict[str, str]]
    count: int | None
    layout: str  # "vertical" | "table" | "empty"


@dataclass(frozen=True)
class MmlReport:
    ne: str
    timestamp: str
    kind: str  # "O&M" answers a command; anything else (ALARM, EVENT, ...) is autonomous
    serial: int
    echo: str
    retcode: int | None
    message: str
    blocks: list[MmlBlock]
    continued: bool
    empty_text: str
    raw: str

    @property
    def autonomous(self) -> bool:
        return self.kind != "O&M"


@dataclass
class MmlResponse:
    reports: list[MmlReport]
    raw: str
    command: str = ""  # masked command text
    host: str = ""
    elapsed: float = 0.0

    @property
    def _om(self) -> list[MmlReport]:  # the answers to the command, autonomous reports aside
        return [r for r in self.reports if not r.autonomous]

    @property
    def retcode(self) -> int | None:
        return self._om[0].retcode if self._om else None

    @property
    def message(self) -> str:
        return self._om[0].message if self._om else ""

    @property
    def ok(self) -> bool:
        return self.retcode == 0

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def blocks(self) -> list[MmlBlock]:
        return [b for r in self._om for b in r.blocks]

    @property
    def records(self) -> list[dict[str, str]]:
        return [rec for b in self.blocks for rec in b.records]

    def raise_for_retcode(self) -> None:
        """Raise ``RetcodeError`` unless the element answered RETCODE = 0."""
        if not self._om:
            raise ParseError(f"{self.host or 'the element'}: no O&M report answers {self.command}")
        if self.retcode != 0:
            raise RetcodeError(self.retcode or 0, self.message, self.command, self.host)


def echo_matches(echo: str, command: str) -> bool:
    """Whether ``echo`` (from ``%%...%%``) is ``command``, allowing leading numbers and
    ``/*...*/`` comments. Outside quotes, whitespace and case do not count; inside, they do."""

    def norm(text: str) -> str:  # masked on both sides, so a masked command matches too
        # An element may echo a masked password bare (PWD=*****) where we sent it quoted.
        masked = mask_text(text).replace(f'"{MASK}"', MASK)
        parts = _QUOTED.split(masked)  # odd indexes are the quoted strings, kept as they are
        return "".join(
            p if i % 2 else re.sub(r"\s+", "", p).upper() for i, p in enumerate(parts)
        ).rstrip(";")

    return norm(_ECHO_PREFIX.sub("", echo, count=1)) == norm(command)


def _fail(expected: str, line: tuple[int, str]) -> ParseError:
    shown = mask_text(line[1])
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return ParseError(f"MML reply: expected {expected} at line {line[0]}: {shown!r}")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _is_title(body: Lines, k: int) -> bool:
    """A non-blank line underlined by dashes of its own length (or display width)."""
    if k + 1 >= len(body):
        return False
    title, dashes = body[k][1].strip(), body[k + 1][1].strip()
    if not title or DASHES_RE.match(title) or not DASHES_RE.match(dashes):
        return False
    if len(dashes) not in (len(title), _width(title), len(body[k][1]), _width(body[k][1])):
        raise _fail(f"{len(title)} dashes under the title {title!r}", body[k + 1])
    return True


def _skip_blank(body: Lines, k: int) -> int:
    while k < len(body) and not body[k][1].strip():
        k += 1
    return k


def _count_at(body: Lines, k: int) -> int | None:
    m = COUNT_RE.match(body[k][1].strip()) if k < len(body) else None
    return int(m.group(1)) if m else None


def _vertical(body: Lines, k: int) -> tuple[list[dict[str, str]], int | None, int]:
    records: list[dict[str, str]] = [{}]
    while k < len(body):
        if not body[k][1].strip():  # a blank line ends the block or separates two records
            k = _skip_blank(body, k)
            if _count_at(body, k) is not None or k >= len(body) or _is_title(body, k):
                continue
            if not FIELD_RE.match(body[k][1]):
                break
            records.append({})
        if (count := _count_at(body, k)) is not None:
            return [r for r in records if r], count, k + 1
        if _is_title(body, k):
            break
        m = FIELD_RE.match(body[k][1])
        if m is None:
            raise _fail("'Name  =  Value' or '(Number of results = N)'", body[k])
        name, value = m.group(1).strip(), (m.group(2) or "").strip()
        if name in records[-1]:  # the same name again: the next record has begun
            records.append({})
        records[-1][name] = value
        k += 1
    return [r for r in records if r], None, k


def _table(body: Lines, k: int) -> tuple[list[dict[str, str]], int | None, int]:
    header = _CELL_SEP.split(body[k][1].strip())
    rows: list[dict[str, str]] = []
    k = _skip_blank(body, k + 1)
    while k < len(body):
        if not body[k][1].strip():
            k = _skip_blank(body, k)
            if _count_at(body, k) is None:
                break
        if (count := _count_at(body, k)) is not None:
            return rows, count, k + 1
        if _is_title(body, k):
            break
        cells = _CELL_SEP.split(body[k][1].strip())
        if len(cells) != len(header):
            raise _fail(f"{len(header)} columns separated by 2+ spaces as in the header", body[k])
        rows.append(dict(zip(header, cells, strict=True)))
        k += 1
    return rows, None, k


def _parse_body(body: Lines) -> tuple[list[MmlBlock], str]:
    blocks: list[MmlBlock] = []
    texts: list[str] = []
    k = _skip_blank(body, 0)
    while k < len(body):
        title = ""
        if _is_title(body, k):
            title, k = body[k][1].strip(), _skip_blank(body, k + 2)
        elif not FIELD_RE.match(body[k][1]):  # untitled "Name  =  Value" lines (alarms) pass
            texts.append(body[k][1].strip())  # e.g. "No matching result is found"
            k = _skip_blank(body, k + 1)
            continue
        count = _count_at(body, k)
        if k >= len(body) or count is not None or _is_title(body, k):
            blocks.append(MmlBlock(title, [], count, "empty"))
            k = _skip_blank(body, k if count is None else k + 1)
            continue
        if FIELD_RE.match(body[k][1]):
            layout, (records, count, end) = "vertical", _vertical(body, k)
        else:
            layout, (records, count, end) = "table", _table(body, k)
            if not records and count is None and len(_CELL_SEP.split(body[k][1].strip())) == 1:
                texts.append(body[k][1].strip())  # a message under a title, not a table header
                layout = "empty"
        blocks.append(MmlBlock(title, records, count, layout))
        k = _skip_blank(body, end)
    return blocks, "\n".join(texts)


def _parse_report(lines: Lines, raw: str) -> MmlReport:
    """``lines`` runs from the ``+++`` line to the ``---    END`` line, both included."""
    head = HEADER_RE.match(lines[0][1])
    if head is None:
        raise _fail("'+++    <NE name>        <YYYY-MM-DD HH:MM:SS>'", lines[0])
    kind_m = KIND_RE.match(lines[1][1]) if len(lines) > 2 else None
    if kind_m is None or (kind_m.group(1) == "O&M" and kind_m.group(2) is None):
        raise _fail("'O&M    #<serial>' or an autonomous report kind", lines[1])
    kind, i = kind_m.group(1), 2
    echo, retcode, message = "", None, ""
    if (m := ECHO_RE.match(lines[i][1])) is not None:
        echo, i = m.group(1), i + 1
    elif kind == "O&M":
        raise _fail("the command echo '%%<command>%%'", lines[i])
    if (m := RETCODE_RE.match(lines[i][1])) is not None:
        if not re.fullmatch(r"-?[0-9]{1,20}", m.group(1)):  # int() of 5000 digits fails
            raise _fail("a number after 'RETCODE ='", lines[i])
        retcode, message, i = int(m.group(1)), (m.group(2) or "").strip(), i + 1
    elif kind == "O&M":
        raise _fail("'RETCODE = <n>  <text>'", lines[i])
    body = [ln for ln in lines[i:-1] if not ln[1].strip().endswith(" reports in total")]
    continued = any(ln[1].strip() == CONTINUED for ln in body)
    body = [ln for ln in body if ln[1].strip() != CONTINUED]
    try:
        blocks, empty_text = _parse_body(body)
    except ParseError:
        if kind == "O&M":
            raise
        blocks, empty_text = [], ""  # autonomous reports: best effort, the raw text is kept
    return MmlReport(
        ne=head.group(1),
        timestamp=head.group(2),
        kind=kind,
        serial=int(kind_m.group(2) or 0),
        echo=echo,
        retcode=retcode,
        message=message,
        blocks=blocks,
        continued=continued,
        empty_text=empty_text,
        raw=raw,
    )


def parse_response(text: str) -> MmlResponse:
    """Parse one or more reports (pages, autonomous reports) that follow each other."""
    norm = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines: Lines = [(n, line.rstrip()) for n, line in enumerate(norm, start=1)]
    reports: list[MmlReport] = []
    i = 0
    while i < len(lines):
        if not lines[i][1].strip() or lines[i][1].endswith(" reports in total"):
            i += 1
            continue
        if not lines[i][1].startswith("+++"):
            raise _fail("a report header '+++    <NE name>        <time>'", lines[i])
        end = i + 1
        while end < len(lines) and not END_RE.match(lines[end][1]):
            if lines[end][1].startswith("+++"):
                raise _fail("'---    END' before the next report", lines[end])
            end += 1
        if end == len(lines):
            raise _fail("'---    END' to close the report that starts", lines[i])
        chunk = lines[i : end + 1]
        reports.append(_parse_report(chunk, "\n".join(line for _, line in chunk) + "\n"))
        i = end + 1
    if not reports:
        raise ParseError(f"MML reply: expected a report starting with '+++', got {text[:40]!r}")
    return MmlResponse(reports, text)


def parse_report(text: str) -> MmlReport:
    """Parse exactly one report."""
    reports = parse_response(text).reports
    if len(reports) != 1:
        raise ParseError(f"MML reply: expected one report, found {len(reports)}")
    return reports[0]
