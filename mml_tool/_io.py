"""Small I/O helpers every layer shares: the clock, atomic writes, state paths.

Writes: a reader sees the old content or the new, never half of it. Clock: ISO 8601 UTC
strings, so nothing imports ``change`` (or ``audit``) just for a timestamp. State paths:
``platformdirs``' user state folder (``$XDG_STATE_HOME/mml-tool``, by default
``~/.local/state/mml-tool``); the inventory and the command line override them.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import platformdirs

APP_NAME = "mml-tool"


def now_iso() -> str:
    """ISO 8601 UTC with "+00:00" (plan and record times; ``datetime.fromisoformat`` reads it)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def utc_now() -> str:
    """ISO 8601 UTC to the millisecond with "Z", the format of audit records."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state_dir() -> Path:
    """Where mml-tool keeps its state (audit trail, history) for this user; honours
    ``XDG_STATE_HOME``. Not created here: the writer creates what it needs."""
    return platformdirs.user_state_path(APP_NAME)


def default_audit_file() -> Path:
    return state_dir() / "audit.jsonl"


def _synced_temp(path: Path, text: str, mode: int) -> Path:
    """Write ``text`` to a new synced temp file beside ``path`` (folder created if missing);
    the caller renames or links it into place. Removed again if writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` through a synced temp file in the same folder and a rename.

    ``mode``: the new file's permissions; default: the old file's, else 0644.
    """
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    tmp = _synced_temp(path, text, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_new(path: Path, text: str, mode: int = 0o644) -> None:
    """Like ``write_text_atomic``, but never replaces a file: ``FileExistsError`` if ``path``
    exists, even when another process creates it at the same moment (a hard link is atomic)."""
    tmp = _synced_temp(path, text, mode)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def probe_folder(folder: Path, size: int = 16 * 1024) -> None:
    """Raise ``OSError`` unless a file of ``size`` bytes can be written in ``folder`` (created
    if missing): finds a read-only or full file system before anything depends on it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".mml-tool-probe.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        Path(tmp).unlink(missing_ok=True)
