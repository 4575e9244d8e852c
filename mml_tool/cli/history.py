"""`history`: timelines, runs, pruning (the commands live with the store in mml_tool.history)."""

from __future__ import annotations

from mml_tool.history.commands import history

__all__ = ["history"]
