"""The table printed on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mml_tool.fasttable import print_table
from mml_tool.mml.command import mask_text
from mml_tool.report.model import Report, _detail, summary
from mml_tool.results import exit_code_for as exit_code_for  # decided in results

FAST_TABLE_ROWS = 50
_STYLES = {"pass": "green", "fail": "bold red", "error": "bold magenta", "waived": "yellow"}


def render_table(report: Report, console: Console) -> None:
    """Print the results as a table, one row per (host, control), coloured by status; errors,
    waivers and notes (an expired waiver) follow as whole lines, never wrapped, so a long
    device message never squeezes the table and a log grep finds it whole."""
    s = summary(report)
    title = f"mml-tool {report.info.command}: {report.info.policy_name}"
    caption = f"{s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['waived']} waived"
    columns = ("host", "control", "status", "expected", "actual")
    rows: list[tuple[Text, ...]] = []
    notes: list[Text] = []
    for f in report.ordered():
        style = _STYLES.get(f.status, "")
        # Text() rather than strings: device values must not be read as rich markup.
        rows.append(
            (
                Text(f.host),
                Text(f.control_id),
                Text(f.status, style=style),
                Text(mask_text(f.expected)),
                Text(mask_text(f.actual or "")),
            )
        )
        note = _detail(f)
        if note:
            notes.append(Text(f"{f.host} {f.control_id}: {mask_text(note)}", style=style))
    # A big fleet's table the cheap way (same output; see fasttable); small ones through rich.
    if report.findings and (
        len(rows) < FAST_TABLE_ROWS or not print_table(console, title, caption, columns, rows)
    ):
        table = Table(title=title, caption=caption)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in notes:
        console.print(line, soft_wrap=True)
