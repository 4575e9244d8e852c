"""`watch`: rounds of checks on kept-open sessions (the command lives in mml_tool.watch)."""

from __future__ import annotations

from mml_tool.watch import watch

__all__ = ["watch"]
