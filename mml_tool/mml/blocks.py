"""The body of an MML report: titled blocks of ``NAME = value`` lines or tables, counts."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mml_tool.errors import ParseError
from mml_tool.mml.command import mask_text

COUNT_RE = re.compile(r"^[(（](?:Number of results|结果个数)\s*=\s*([0-9]{1,20})[)）]$")
DASHES_RE = re.compile(r"^-+$")
FIELD_RE = re.compile(r"^\s*(\S.*?)\s+=(?:\s+(.*))?$")
_CELL_SEP = re.compile(r"\s{2,}")
Lines = list[tuple[int, str]]  # (1-based line number, text without trailing whitespace)


@dataclass(frozen=True)
class MmlBlock:
    title: str
    records: list[dict[str, str]]
    count: int | None
    layout: str  # "vertical" | "table" | "empty"


def _fail(expected: str, line: tuple[int, str]) -> ParseError:
    shown = mask_text(line[1])
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return ParseError(f"MML reply: expected {expected} at line {line[0]}: {shown!r}")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _is_title(body: Lines, k: int) -> bool:
    """A non-blank line underlined by dashes at least as long as its characters."""
    if k + 1 >= len(body):
        return False
    dashes = body[k + 1][1].strip()
    if not dashes.startswith("-") or not DASHES_RE.match(dashes):  # the cheap test first
        return False
    title = body[k][1].strip()
    if not title or DASHES_RE.match(title):
        return False
    if len(dashes) < len(title):  # longer rules occur; a shorter one is a mangled line
        raise _fail(f"{len(title)} dashes under the title {title!r}", body[k + 1])
    return True


def _is_colon_title(body: Lines, k: int) -> bool:
    """A title ending in a full-width colon with no rule, straight above its fields."""
    text = body[k][1].strip()
    return (
        text.endswith("：")
        and FIELD_RE.match(text) is None
        and k + 1 < len(body)
        and FIELD_RE.match(body[k + 1][1]) is not None
    )


def _is_rule(body: Lines, k: int) -> bool:
    if k >= len(body):
        return False
    text = body[k][1].strip()
    return text.startswith("-") and DASHES_RE.match(text) is not None


def _starts_block(body: Lines, k: int) -> bool:
    return _is_title(body, k) or _is_rule(body, k) or _is_colon_title(body, k)


def _skip_blank(body: Lines, k: int) -> int:
    while k < len(body) and not body[k][1].strip():
        k += 1
    return k


def _count_at(body: Lines, k: int) -> int | None:
    if k >= len(body):
        return None
    text = body[k][1].strip()
    m = COUNT_RE.match(text) if text.startswith(("(", "（")) else None  # cheap test first
    return int(m.group(1)) if m else None


def _vertical(
    body: Lines, k: int, texts: list[str]
) -> tuple[list[dict[str, str]], int | None, int]:
    records: list[dict[str, str]] = [{}]
    while k < len(body):
        if not body[k][1].strip():  # a blank line ends the block or separates two records
            k = _skip_blank(body, k)
            if _count_at(body, k) is not None or k >= len(body) or _starts_block(body, k):
                continue
            if not FIELD_RE.match(body[k][1]):
                break
            records.append({})
        if (count := _count_at(body, k)) is not None:
            return [r for r in records if r], count, k + 1
        if _starts_block(body, k):
            break
        m = FIELD_RE.match(body[k][1])
        if m is None:  # free text amid the fields (progress lines): the report's text
            texts.append(body[k][1].strip())
            k += 1
            continue
        name, value = m.group(1).strip(), (m.group(2) or "").strip()
        if name in records[-1]:  # the same name again: the next record has begun
            records.append({})
        records[-1][name] = value
        k += 1
    return [r for r in records if r], None, k


def _plain_row(body: Lines, k: int, text: str) -> bool:
    """Cheaply: line ``k`` (stripped: ``text``) is neither a count, a rule, nor a title
    (a count opens with a parenthesis, a rule is dashes, a title has dashes under it or ends
    in a full-width colon). Most lines of a table are such rows."""
    under = body[k + 1][1].lstrip() if k + 1 < len(body) else ""
    return not text.startswith(("(", "（", "-")) and not text.endswith("：") and under[:1] != "-"


def _table(body: Lines, k: int) -> tuple[list[dict[str, str]], int | None, int]:
    header = _CELL_SEP.split(body[k][1].strip())
    rows: list[dict[str, str]] = []
    k = _skip_blank(body, k + 1)
    while k < len(body):
        text = body[k][1].strip()
        if not text:
            k = _skip_blank(body, k)
            if _count_at(body, k) is None:
                break
            text = body[k][1].strip()
        if not _plain_row(body, k, text):
            if (count := _count_at(body, k)) is not None:
                return rows, count, k + 1
            if _starts_block(body, k):
                break
        cells = _CELL_SEP.split(text)
        if len(cells) != len(header):  # an empty cell or a stray line: which column is it?
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
        elif _is_rule(body, k):  # a block without a title: its rule alone
            k = _skip_blank(body, k + 1)
        elif _is_colon_title(body, k):
            title, k = body[k][1].strip(), k + 1
        elif not FIELD_RE.match(body[k][1]) and _count_at(body, k) is None:
            texts.append(body[k][1].strip())  # e.g. "No matching result is found"
            k = _skip_blank(body, k + 1)
            continue
        count = _count_at(body, k)
        if k >= len(body) or count is not None or _starts_block(body, k):
            blocks.append(MmlBlock(title, [], count, "empty"))
            k = _skip_blank(body, k if count is None else k + 1)
            continue
        if FIELD_RE.match(body[k][1]):
            layout, (records, count, end) = "vertical", _vertical(body, k, texts)
        else:
            layout, (records, count, end) = "table", _table(body, k)
            if not records and count is None and len(_CELL_SEP.split(body[k][1].strip())) == 1:
                texts.append(body[k][1].strip())  # a message under a title, not a table header
                layout = "empty"
        blocks.append(MmlBlock(title, records, count, layout))
        k = _skip_blank(body, end)
    return blocks, "\n".join(texts)
