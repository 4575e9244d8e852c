"""The one clock of the history: timezone-aware UTC (its own module: the command line reads
it at start-up, before anything of the history's rows or database is needed)."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
