"""Atomic writes now live in ``mml_tool._io``; this name stays for existing imports."""

from __future__ import annotations

from mml_tool._io import probe_folder, write_text_atomic, write_text_new

__all__ = ["probe_folder", "write_text_atomic", "write_text_new"]
