"""`watch`: check the fleet every interval on kept-open sessions (``mml_tool.watch.Watcher``),
recording each round in the history and the metrics file; SIGTERM ends it after the round in
progress."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click

from mml_tool.cli._common import (
    inventory_option,
    limit_option,
    nothing_checked,
    policy_option,
    read_inventory,
    read_policy,
    select_hosts,
    template_dirs,
    workers_option,
)
from mml_tool.cli._console import fail
from mml_tool.history import hooks, options
from mml_tool.history.durations import duration_option
from mml_tool.watch import DEFAULT_MAX_SESSIONS, Round, Watcher

log = logging.getLogger("mml_tool.watch")


def _interval(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    result = duration_option(value)
    assert result is not None
    return result


@click.command()
@inventory_option
@policy_option
@limit_option
@click.option(
    "--interval",
    default="5m",
    show_default=True,
    metavar="DURATION",
    callback=_interval,
    help="From the start of one round to the next: 30s, 5m, 1h.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, None),
    default=None,
    help="Stop after this many rounds (default: until SIGTERM or Ctrl-C).",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(1, 100000),
    default=DEFAULT_MAX_SESSIONS,
    show_default=True,
    help="Sessions kept open at once; hosts beyond get a new session each round.",
)
@workers_option
@hooks.history_options
@hooks.metrics_option
@click.pass_context
def watch(
    ctx: click.Context,
    inventory_path: Path,
    policy_path: Path | None,
    limit: str | None,
    interval: timedelta,
    rounds: int | None,
    max_sessions: int,
    workers: int,
) -> None:
    """Check the fleet every --interval on MML sessions kept open between rounds.

    \b
    Examples:
      mml-tool watch -i inv.yaml --interval 5m --metrics /var/lib/node_exporter/mml.prom
      mml-tool watch -i inv.yaml --interval 30s --rounds 10 --max-sessions 20 --no-history

    Logs only changes of status (the first round: every status). Each round is recorded in
    the history and written to --metrics. A dropped session is re-opened at once, without
    holding up the other hosts. A host that cannot be reached is `error` each round and tried
    again after 1 s, 2 s, 4 s ... at most every 60 s; the log says when it is back. SIGTERM
    (systemctl stop) ends the watch after the round in progress and logs out of every
    session.

    Exit: 0 stopped by SIGTERM; after --rounds N, the last round's exit code (0 compliant,
    100 non-compliant, 1 some host could not be decided).
    """
    policy = read_policy(policy_path)
    inventory = read_inventory(inventory_path)
    hosts = select_hosts(inventory, limit)
    nothing = nothing_checked(inventory, policy, hosts, limit)
    if nothing:  # as check: nothing evaluated is never compliant
        fail(f"nothing to watch: {nothing}", 1)
    # Only the secrets of the hosts watched are read (as check does).
    inventory = inventory.with_secrets(hosts=[h.name for h in hosts if policy.controls_for(h)])
    hosts = [inventory.hosts[h.name] for h in hosts]
    s = options.settings(ctx)
    store: Any = None  # opened at the first round, kept open; tried again while it fails

    def on_round(done: Round) -> None:
        nonlocal store
        run = hooks.findings_run(
            "watch", done.findings, inventory_path=inventory_path, policy_name=policy.name,
            policy_sha256=policy.sha256, started=done.started, finished=done.finished,
            exit_code=done.exit_code,
        )  # fmt: skip
        if store is None and not s.no_history:
            store = hooks.open_store(inventory_path, s)
        if store is not None:
            try:
                store.record(run)
                if s.keep is not None:
                    store.prune(s.keep)
            except Exception as exc:  # never stop watching for the history's sake
                hooks._warn(exc)
        if s.metrics is not None:
            hooks.write_metrics_file(
                s.metrics, done.findings, started=done.started, finished=done.finished,
                exit_code=done.exit_code,
            )  # fmt: skip

    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    click.echo(
        f"watching {len(hosts)} host(s) every {interval}, policy {policy.name}; "
        "logging changes only",
    )
    sys.stdout.flush()
    last = None
    try:
        with Watcher(
            hosts, policy, template_dirs=template_dirs(ctx), workers=workers,
            max_sessions=max_sessions, on_round=on_round, say=click.echo,
        ) as watcher:  # fmt: skip
            last = watcher.run(interval=interval.total_seconds(), rounds=rounds, stop=stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if store is not None:
            store.close()
    if stop.is_set():
        click.echo("stopped (SIGTERM): sessions logged out")
        sys.exit(0)
    sys.exit(last.exit_code if last is not None else 0)
