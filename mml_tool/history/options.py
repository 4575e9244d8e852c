"""The command-line options of history and metrics: ``--history URL|PATH``, ``--no-history``,
``--keep DURATION`` (``history_options``) and ``--metrics PATH.prom`` (``metrics_option``).
They take no parameter of their own: the values go to ``ctx.meta`` as a ``Settings``, which the
hooks read after the command has its results. Bad values are usage errors, found before
anything is sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from mml_tool.errors import ConfigError
from mml_tool.history.clock import utc_now
from mml_tool.history.durations import duration_option

KEY = "mml_tool.history"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Settings:
    """What the command line said about history and metrics."""

    history: str | None = None
    no_history: bool = False
    keep: timedelta | None = None
    metrics: Path | None = None
    started: datetime = field(default_factory=utc_now)  # when the command line was read


def settings(ctx: click.Context | None = None) -> Settings:
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return Settings()
    found = ctx.meta.get(KEY)
    if not isinstance(found, Settings):
        found = ctx.meta[KEY] = Settings()
    return found


def _keep(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if name == "keep":
            value = duration_option(value)
        if name == "history" and value:
            from mml_tool.history.config import parse_location

            try:  # a bad value is a usage error, found before anything is sent
                parse_location(value, where="--history")
            except ConfigError as exc:
                raise click.BadParameter(str(exc)) from None
        if name == "metrics" and value is not None and value.suffix != ".prom":
            raise click.BadParameter(
                f"{value}: node_exporter's textfile collector reads only *.prom files"
            )
        if value is not None:
            setattr(settings(ctx), name, value)
        return value

    return callback


def history_options(f: F) -> F:
    """``--history``, ``--no-history``, ``--keep`` for a command that records its run."""
    f = click.option(
        "--keep",
        default=None,
        metavar="DURATION",
        expose_value=False,
        callback=_keep("keep"),
        help="Prune runs that started longer ago than this from the history (e.g. 90d).",
    )(f)
    f = click.option(
        "--no-history",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_keep("no_history"),
        help="Do not record this run in the history.",
    )(f)
    return click.option(
        "--history",
        default=None,
        metavar="URL|PATH",
        envvar="MML_TOOL_HISTORY",
        show_envvar=True,
        expose_value=False,
        callback=_keep("history"),
        help="History store: an SQLite file or postgresql://USER:${VAR}@HOST/DB. Default: the "
        "inventory's history:, else history.sqlite in the state directory.",
    )(f)


def metrics_option(f: F) -> F:
    return click.option(
        "--metrics",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="PATH.prom",
        expose_value=False,
        callback=_keep("metrics"),
        help="Write Prometheus metrics here (node_exporter textfile collector), atomically.",
    )(f)
