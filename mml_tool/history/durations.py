"""Durations on the command line: ``90d``, ``12h``, ``5m``, ``30s``, ``2w`` (one unit)."""

from __future__ import annotations

import re
from datetime import timedelta

import click

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Longer windows reach before year 1 (``now - since`` overflows); nobody keeps a century.
_MAX = timedelta(days=36500)
_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*", re.I)


def parse_duration(text: str) -> timedelta:
    """``"7d"`` -> 7 days; ValueError names the accepted form."""
    match = _RE.fullmatch(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a duration: give a positive number and one unit s, m, h, d or w "
            "(90d, 12h, 5m, 30s)"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds > _MAX.total_seconds():
        raise ValueError(f"{text!r} is too long: give at most 36500d (100 years)")
    return timedelta(seconds=seconds)


def duration_option(value: str | None) -> timedelta | None:
    """A command-line duration: a bad one is a usage error (exit 2), before anything is sent."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
