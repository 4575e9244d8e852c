"""Render MML reports exactly as reference/mml-protocol.md shows them (device side).

Every line ends with ``\\r\\n``. An O&M report::

    +++    <NE name>        <YYYY-MM-DD HH:MM:SS>
    O&M    #<serial>
    %%<echo>%%                      the echo may start with a prefix (see Report.echo)
    RETCODE = <n>  <text>
    <blank>
    <title>                         } zero or more blocks, each followed by a blank line
    <dashes, same length as title>  }
    <body>                          }
    (Number of results = N)         } "(结果个数 = N)" in Chinese
    <blank>
    To be continued...              only on every page but the last of a paged reply
    <blank>                         only with "To be continued..."
    ---    END

Chinese paging (``Report.more_text`` = ``仍有后续报告输出``, reference/mml-protocol.md "Variants
seen in real replies", as in the UNC DSP OFFLOAD manual example): the marker ends every page
but the last with no blank line before ``---    END``; the last page prints ``共有N个报告``
(``Report.total``) there instead. Only the last page's last block prints a count line, and it
counts the records of all pages (``Block.count``/``Block.show_count``). A ``bare`` page (a
later page) repeats neither the header lines, nor the echo, nor RETCODE.

Widths are display widths (a CJK character counts two columns), so a Chinese title's dash line
is twice as long as its character count, as on a terminal (inference). An empty successful
query prints ``No matching result is found`` (``没有查到相应的结果``) and a
blank line in place of the blocks. A failed command has no body.

Autonomous alarm report (the layout is an inference: public sources only show that the second
line starts with ``ALARM`` instead of ``O&M``)::

    +++    <NE name>        <YYYY-MM-DD HH:MM:SS>
    ALARM  #<n>  <severity>  <category>
          Alarm ID  =  <id>
        Alarm name  =  <text>
     Location info  =  <text>
    <blank>
    ---    END
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

CRLF = "\r\n"
END_LINE = "---    END"
CONTINUED_LINE = "To be continued..."


@dataclass(frozen=True)
class Block:
    """One titled block of a report body.

    ``layout`` is "vertical" (one record printed as right-aligned ``Name  =  Value`` lines) or
    "table" (header, blank line, rows). ``records`` are lists of (label, value) pairs in
    column order; a vertical block prints its records one after another.
    """

    title: str
    records: Sequence[Sequence[tuple[str, str]]]
    layout: str = "vertical"
    count_label: str = "Number of results"
    count: int | None = None  # None: the number of records
    show_count: bool = True


@dataclass(frozen=True)
class Report:
    """One O&M report (one page of a reply).

    ``echo`` is printed between ``%%`` as given: a node's echo prefix (``241299``,
    ``/*1879106888 MEID=005*/``) is already part of it.
    """

    ne: str
    serial: int
    echo: str
    retcode: int
    message: str
    blocks: Sequence[Block] = field(default_factory=tuple)
    empty_text: str = ""
    continued: bool = False
    timestamp: str = ""
    more_text: str = CONTINUED_LINE  # what a continued page prints before its end
    total: int | None = None  # the last page of Chinese paging: "共有N个报告"
    bare: bool = False  # a later page without header, echo and RETCODE


def timestamp(now: float | None = None) -> str:
    """The header's local time, ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))


def width(text: str) -> int:
    """Display width: East Asian wide characters take two columns (as on a terminal)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _rjust(text: str, cols: int) -> str:
    return " " * (cols - width(text)) + text


def _ljust(text: str, cols: int) -> str:
    return text + " " * (cols - width(text))


def header_line(ne: str, ts: str) -> str:
    return f"+++    {ne}        {ts}"


def render_block(block: Block) -> list[str]:
    lines = [block.title, "-" * width(block.title)]
    if block.layout == "table":
        lines.extend(_table(block.records))
    else:
        for record in block.records:
            lines.extend(_vertical(record))
    if block.show_count:
        count = len(block.records) if block.count is None else block.count
        lines.append(f"({block.count_label} = {count})")
    return lines


def _vertical(record: Sequence[tuple[str, str]]) -> list[str]:
    cols = max((width(label) for label, _ in record), default=0)
    return [f"{_rjust(label, cols)}  =  {value}".rstrip() for label, value in record]


def _table(records: Sequence[Sequence[tuple[str, str]]]) -> list[str]:
    if not records:
        return []
    headers = [label for label, _ in records[0]]
    widths = [width(h) for h in headers]
    for record in records:
        for i, (_, value) in enumerate(record):
            widths[i] = max(widths[i], width(value))

    def row(cells: Sequence[str]) -> str:
        return "  ".join(_ljust(c, w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = [row(headers), ""]
    lines.extend(row([v for _, v in record]) for record in records)
    return lines


def render_report(report: Report) -> str:
    """One complete report, ``---    END`` line included, CRLF line endings."""
    lines = (
        []
        if report.bare
        else [
            header_line(report.ne, report.timestamp or timestamp()),
            f"O&M    #{report.serial}",
            f"%%{report.echo}%%",
            f"RETCODE = {report.retcode}  {report.message}",
        ]
    )
    lines.append("")
    for block in report.blocks:
        lines.extend(render_block(block))
        lines.append("")
    if report.empty_text and not report.blocks:
        lines.extend([report.empty_text, ""])
    chinese = report.more_text != CONTINUED_LINE
    if chinese and lines[-1] == "" and (report.continued or report.total is not None):
        lines.pop()  # the Chinese markers follow the last block directly
    if report.continued:
        lines.extend([report.more_text] if chinese else [CONTINUED_LINE, ""])
    elif report.total is not None:
        lines.append(f"共有{report.total}个报告")
    lines.append(END_LINE)
    return CRLF.join(lines) + CRLF


def render_alarm(
    ne: str,
    number: int,
    *,
    severity: str,
    category: str,
    alarm_id: int,
    name: str,
    location: str,
    ts: str = "",
) -> str:
    """An autonomous ALARM report (layout documented in the module docstring)."""
    lines = [
        header_line(ne, ts or timestamp()),
        f"ALARM  #{number}  {severity}  {category}",
        *_vertical(
            [("Alarm ID", str(alarm_id)), ("Alarm name", name), ("Location info", location)]
        ),
        "",
        END_LINE,
    ]
    return CRLF.join(lines) + CRLF
