"""Print a big table of one-line cells as rich's ``Table`` would, for a fraction of the cost.

rich lays out every cell through its whole pipeline (measure, pad, wrap, crop): for a
1000-host check that is about 0.3 s of CPU, more than a tenth of the client's work beyond the
SSH sessions. When every cell is one printable line and the table fits the console without
shrinking a column, rich's layout is plain: each column as wide as its widest cell plus one
space each side, the default box (HEAVY_HEAD), title and caption centred over the table. This
module writes exactly that, as styled ``Text`` lines; anything else (a cell that would fold, a
narrow console, an ASCII-only terminal) is left to rich (``print_table`` returns False).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text


def print_table(
    console: Console,
    title: str,
    caption: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Text]],
) -> bool:
    """Print the table and return True, or print nothing and return False (use rich's)."""
    if console.options.ascii_only or console.legacy_windows:
        return False  # rich substitutes an ASCII box there
    if not _plain_cells(rows):
        return False
    widths = [
        max([cell_len(header), *(row[i].cell_len for row in rows)])
        for i, header in enumerate(headers)
    ]
    total = sum(widths) + 3 * len(widths) + 1
    title_text = console.render_str(title, style="table.title", highlight=False)
    caption_text = console.render_str(caption, style="table.caption", highlight=False)
    if (
        total > console.width
        or title_text.cell_len > total
        or caption_text.cell_len > total
        or "\n" in title_text.plain + caption_text.plain
    ):
        return False
    lines = _lines(title_text, caption_text, headers, rows, widths, total)
    console.print(Text("\n").join(lines), no_wrap=True, overflow="ignore", crop=False)
    return True


def _plain_cells(rows: Sequence[Sequence[Text]]) -> bool:
    """Whether every cell is one printable line in one style (what this module lays out)."""
    for row in rows:
        for cell in row:
            if not cell.plain.isprintable() or cell.spans:
                return False
    return True


def _lines(
    title_text: Text,
    caption_text: Text,
    headers: Sequence[str],
    rows: Sequence[Sequence[Text]],
    widths: list[int],
    total: int,
) -> list[Text]:
    """The table's lines: title, box top, header row, rule, rows, box bottom, caption."""
    lines: list[Text] = [title_text.copy()]
    lines[0].align("center", total)
    lines.append(Text("┏" + "┳".join("━" * (w + 2) for w in widths) + "┓"))
    head = Text("┃")
    for header, width in zip(headers, widths, strict=True):
        head.append(" " + header + " " * (width - cell_len(header)) + " ", style="table.header")
        head.append("┃")
    lines.append(head)
    lines.append(Text("┡" + "╇".join("━" * (w + 2) for w in widths) + "┩"))
    for row in rows:
        line = Text("│ ")
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            padded = cell.copy()  # its style covers the cell's width, as rich's justify does
            padded.pad_right(width - cell.cell_len)
            line.append_text(padded)
            line.append(" │ " if i < len(widths) - 1 else " │")
        lines.append(line)
    lines.append(Text("└" + "┴".join("─" * (w + 2) for w in widths) + "┘"))
    caption_line = caption_text.copy()
    caption_line.align("center", total)
    lines.append(caption_line)
    return lines
