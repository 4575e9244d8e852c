"""`mml-tool history`: timelines per host and control, the list of runs, pruning.

Reads the store the same way the recording commands choose it (``--history``,
``$MML_TOOL_HISTORY``, the inventory's ``history:``, the default file in the state directory).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mml_tool.cli._common import read_inventory
from mml_tool.errors import ConfigError, HistoryError
from mml_tool.history.config import resolve
from mml_tool.history.durations import duration_option
from mml_tool.history.store import HistoryStore

_STORE_KEY = "mml_tool.history.store_args"
_KEY_KEY = "mml_tool.history.key"
_STYLES = {"pass": "green", "waived": "cyan", "fail": "red", "error": "yellow"}


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    return duration_option(value)


def _open(history: str | None, inventory_path: Path | None) -> HistoryStore:
    if inventory_path is not None:  # a broken inventory is named (exit 2), never passed over
        read_inventory(inventory_path)  # and a secret written out in it warned about
    try:
        location = resolve(cli_value=history, no_history=False, inventory_path=inventory_path)
    except ConfigError as exc:  # a bad --history or history: is a usage error
        raise click.UsageError(str(exc)) from None
    assert location is not None
    database = location.url.database or ""
    if location.url.drivername.startswith("sqlite") and not Path(database).exists():
        raise HistoryError(
            f"no history at {location.shown}: run a check first, or point --history at the "
            "store the scheduled runs write"
        )
    return HistoryStore.open(location)


store_options = [
    click.option(
        "--history",
        default=None,
        metavar="URL|PATH",
        envvar="MML_TOOL_HISTORY",
        show_envvar=True,
        help="History store (default: the inventory's history:, else the state directory's).",
    ),
    click.option(
        "-i",
        "--inventory",
        "inventory_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="Use the store this inventory's history: names.",
    ),
]


key_option = click.option(
    "--key",
    default=None,
    metavar="NAME|PATH",
    help="Only the runs of this inventory: its name:, else its absolute path (the key column "
    "of `history runs`).",
)


def _with_store(f: Any) -> Any:
    for option in reversed(store_options):
        f = option(f)
    return f


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=160)


@click.group(name="history", invoke_without_command=True)
@_with_store
@click.option("--host", default=None, help="Only this host.")
@click.option("--control", default=None, help="Only this control ID.")
@key_option
@click.option(
    "--since",
    default=None,
    metavar="DURATION",
    callback=_since,
    help="Only runs in this window, e.g. 7d, 12h (default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def history(
    ctx: click.Context,
    history: str | None,
    inventory_path: Path | None,
    host: str | None,
    control: str | None,
    key: str | None,
    since: timedelta | None,
    as_json: bool,
) -> None:
    """Per host and control: the timeline of status changes, when the current status began,
    time spent non-compliant, the last compliant and last readable run.

    \b
    Examples:  mml-tool history --since 7d
               mml-tool history --host uap-1 --control P978-BIT0 --json
               mml-tool history runs --since 1d
               mml-tool history prune --keep 90d
    """
    if ctx.invoked_subcommand is not None:
        ctx.meta[_STORE_KEY] = (history, inventory_path)  # meta is shared with the subcommand
        ctx.meta[_KEY_KEY] = key
        return
    now = datetime.now(timezone.utc)
    with _open(history, inventory_path) as store:
        lines = store.timelines(
            host=host, control=control, since=now - since if since else None, now=now, key=key
        )
    if as_json:
        click.echo(json.dumps([t.to_dict() for t in lines], indent=2, ensure_ascii=False))
        return
    if not lines:
        click.echo("No runs recorded for that host, control and window.")
        return
    table = Table("host", "control", "status", "since", "non-compliant", "last compliant",
                  "last read", "changes")  # fmt: skip
    for t in lines:
        changes = " -> ".join(f"{c.now} {c.at:%m-%d %H:%M}" for c in t.changes[-4:])
        table.add_row(
            Text(t.host),
            Text(t.control),
            Text(t.status, style=_STYLES.get(t.status, "")),
            _when(t.since),
            _duration(t.non_compliant_seconds),
            _when(t.last_compliant),
            _when(t.last_read),
            Text(("... " if len(t.changes) > 4 else "") + changes),
        )
    _console().print(table)


def _store_args(
    ctx: click.Context, history: str | None, inventory: Path | None
) -> tuple[str | None, Path | None]:
    """The subcommand's own --history / -i, else those given before it
    (`history --history X runs`)."""
    parent_history, parent_inventory = ctx.meta.get(_STORE_KEY, (None, None))
    return history or parent_history, inventory or parent_inventory


@history.command(name="runs")
@_with_store
@click.option("--since", default=None, metavar="DURATION", callback=_since, help="e.g. 7d.")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
@key_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs(
    ctx: click.Context,
    history: str | None,
    inventory_path: Path | None,
    since: timedelta | None,
    limit: int,
    key: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first, with their counts, exit codes and inventory keys."""
    history, inventory_path = _store_args(ctx, history, inventory_path)
    key = key or ctx.meta.get(_KEY_KEY)
    now = datetime.now(timezone.utc)
    with _open(history, inventory_path) as store:
        found = store.runs(since=now - since if since else None, limit=limit, key=key)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in found], indent=2, ensure_ascii=False))
        return
    table = Table("run", "command", "started", "took", "exit", "hosts", "pass", "fail", "error",
                  "waived", "change", "operator@machine", "key", "inventory")  # fmt: skip
    for r in found:
        table.add_row(
            str(r.id),
            r.command,
            _when(r.started),
            f"{(r.finished - r.started).total_seconds():.1f}s",
            Text(str(r.exit_code), style="green" if r.exit_code == 0 else "red"),
            str(r.hosts),
            str(r.passed),
            str(r.failed),
            str(r.errors),
            str(r.waived),
            Text(r.change_id or "-"),
            Text(f"{r.operator}@{r.machine}"),
            Text(r.scope),
            Text(r.inventory),
        )
    _console().print(table)


@history.command(name="prune")
@_with_store
@click.option(
    "--keep",
    required=True,
    metavar="DURATION",
    callback=_since,
    help="Keep runs that started within this long (e.g. 90d); delete older ones.",
)
@click.pass_context
def prune(
    ctx: click.Context, history: str | None, inventory_path: Path | None, keep: timedelta
) -> None:
    """Delete runs older than --keep, with their findings, changes and verifications."""
    history, inventory_path = _store_args(ctx, history, inventory_path)
    with _open(history, inventory_path) as store:
        gone = store.prune(keep)
    click.echo(f"pruned {gone} run(s) older than {keep}")
