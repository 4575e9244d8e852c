"""History of runs: what each check found and each change did, for timelines, drift since
the last run and retention. See ``store`` (the store), ``config`` (where it is), ``record``
(turning a command's results into rows, never failing the command)."""

from __future__ import annotations

from mml_tool.history.config import HistoryLocation, default_path, parse_location, resolve
from mml_tool.history.store import (
    ChangeRow,
    FindingRow,
    HistoryStore,
    RunRecord,
    RunSummary,
    SinceLast,
    Timeline,
    VerificationRow,
)

__all__ = [
    "ChangeRow",
    "FindingRow",
    "HistoryLocation",
    "HistoryStore",
    "RunRecord",
    "RunSummary",
    "SinceLast",
    "Timeline",
    "VerificationRow",
    "default_path",
    "parse_location",
    "resolve",
]
