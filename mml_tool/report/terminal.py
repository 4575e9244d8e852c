"""The table printed on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mml_tool.mml.command import mask_text
from mml_tool.report.model import Report, _detail, summary
from mml_tool.results import exit_code_for as exit_code_for  # decided in results

_STYLES = {"pass": "green", "fail": "bold red", "error": "bold magenta", "waived": "yellow"}


def render_table(report: Report, console: Console) -> None:
    """Print the results as a table, one row per (host, control), coloured by status; errors,
    waivers and notes (an expired waiver) follow as whole lines, never wrapped, so a long
    device message never squeezes the table and a log grep finds it whole."""
    s = summary(report)
    table = Table(
        title=f"mml-tool {report.info.command}: {report.info.policy_name}",
        caption=f"{s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['waived']} waived",
    )
    for column in ("host", "control", "status", "expected", "actual"):
        table.add_column(column, overflow="fold")
    notes: list[Text] = []
    for f in report.ordered():
        style = _STYLES.get(f.status, "")
        # Text() rather than strings: device values must not be read as rich markup.
        table.add_row(
            Text(f.host),
            Text(f.control_id),
            Text(f.status, style=style),
            Text(mask_text(f.expected)),
            Text(mask_text(f.actual or "")),
        )
        note = _detail(f)
        if note:
            notes.append(Text(f"{f.host} {f.control_id}: {mask_text(note)}", style=style))
    if report.findings:
        console.print(table)
    for line in notes:
        console.print(line, soft_wrap=True)
