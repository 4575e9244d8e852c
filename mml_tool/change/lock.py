"""One change per host at a time, across processes, users and CI jobs on a machine.

A host's lock is ``flock`` on ``LOCK_DIR/HOST.lock``. The kernel frees it when the holder dies,
so a crash leaves no stale lock. ``LOCK_DIR`` is shared by everyone who changes the same hosts:
the inventory's ``lock_dir`` (for several machines: a folder on a shared filesystem whose locks
work across machines, e.g. NFSv4), else the folder given (``--lock-dir``, ``$MML_TOOL_LOCKS``:
read by the CLI, not here), else a per-machine folder that is the same for every user
(``/run/lock/mml-tool``, ``/var/lock/mml-tool`` or ``/tmp/mml-tool``).

Several users must be able to lock the same files: a folder this module creates is made
``1777`` (everyone may create lock files, nobody may delete another's) and lock files ``0666``.
The holder (user, machine, pid, change id, since) is written into the file while the lock is
held, so whoever is refused is told who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from mml_tool.audit import operator_name
from mml_tool.errors import LockError

LOCK_ENV = "MML_TOOL_LOCKS"
# World-writable folders with the sticky bit that every user of a machine sees alike (not
# $TMPDIR, which may be per user; /run/lock is not hidden by systemd's PrivateTmp, /tmp may be).
SHARED_BASES = (Path("/run/lock"), Path("/var/lock"), Path("/tmp"))
DIR_MODE = 0o1777
FILE_MODE = 0o666
_HOLDER_MAX = 4096


def default_lock_dir() -> Path:
    """``mml-tool`` in the first of /run/lock, /var/lock, /tmp that is a world-writable sticky
    folder: the same for every user of this machine. ``$MML_TOOL_LOCKS`` is read by the CLI
    (``--lock-dir``), not here."""
    return shared_lock_dir()


def lock_dir_for(configured: Path | None, given: Path | None) -> Path:
    """The lock folder of a change: the inventory's ``lock_dir`` (``configured``) first, since
    every operator who changes these hosts must meet the same locks and a per-shell setting
    must not sidestep them; else ``given`` (``--lock-dir``, ``$MML_TOOL_LOCKS``, a parameter);
    else the machine's shared folder."""
    return configured or given or shared_lock_dir()


def shared_lock_dir() -> Path:
    """``mml-tool`` in the first of /run/lock, /var/lock, /tmp that is a world-writable sticky
    folder: every user of the machine must meet the same locks, so not a per-user folder."""
    for base in SHARED_BASES:
        try:
            mode = base.stat().st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) and mode & (stat.S_ISVTX | stat.S_IWOTH) == (
            stat.S_ISVTX | stat.S_IWOTH
        ):
            return base / "mml-tool"
    return Path("/tmp/mml-tool")


def _unusable(path: Path, why: str) -> LockError:
    return LockError(
        f"cannot use the lock folder {path} ({why}): every operator who changes these hosts "
        "must be able to create files there. Set `lock_dir:` in the inventory (or "
        f"{LOCK_ENV}) to a folder shared by your team (e.g. `install -d -m 1777 DIR`, or "
        "`chmod 2770` with a common group). Nothing was sent."
    )


def prepare_lock_dir(path: Path) -> Path:
    """Create ``path`` (mode 1777) if missing and check that this user can lock there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            pass
        else:
            os.chmod(path, DIR_MODE)  # the umask took bits off; other users need them
        if not path.is_dir():
            raise _unusable(path, "not a folder")
    except OSError as exc:
        raise _unusable(path, exc.strerror or str(exc)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise _unusable(path, "read-only for this user or file system")
    return path


def _open(path: Path) -> tuple[int, bool]:
    """An fd of the lock file and whether the holder can be written into it.

    Not O_CREAT on an existing file: with fs.protected_regular a user may not O_CREAT-open
    another user's file in a sticky folder, though it is mode 0666. O_NOFOLLOW: a symlink
    planted in a shared folder must not make us write into someone else's file.
    """
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):
        try:
            return os.open(path, flags), True
        except FileNotFoundError:
            pass
        except PermissionError:
            # Made by another user without write for us (an older mml-tool): flock works on
            # a read-only fd too; only the holder line is lost.
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), False
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            continue  # another process made it just now: open theirs
        os.fchmod(fd, FILE_MODE)  # the umask took bits off; other users need them
        return fd, True
    raise OSError(errno.EAGAIN, "the lock file keeps disappearing", str(path))


def _holder_text(fd: int) -> str:
    try:
        raw = os.pread(fd, _HOLDER_MAX, 0)
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError
    except (OSError, ValueError):
        return "holder unknown (an older mml-tool, or one that is just starting)"
    parts = [
        f"user {data.get('user', '?')} on {data.get('machine', '?')}",
        f"pid {data.get('pid', '?')}",
        f"change {data.get('change_id') or '-'}",
    ]
    if data.get("action"):
        parts.append(f"{data['action']}")
    if data.get("since"):
        parts.append(f"since {data['since']}")
    return ", ".join(str(p) for p in parts)


@contextlib.contextmanager
def host_lock(
    lock_dir: Path,
    host: str,
    *,
    change_id: str = "",
    operator: str = "",
    action: str = "",
) -> Iterator[None]:
    """Hold the exclusive lock of ``host``; ``LockError`` (naming the holder) if it is taken."""
    if not lock_dir.is_dir():
        prepare_lock_dir(lock_dir)
    path = lock_dir / f"{host}.lock"
    try:
        fd, writable = _open(path)
    except OSError as exc:
        raise _unusable(lock_dir, f"{path.name}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockError(
                f"{host}: another mml-tool change holds {path}: {_holder_text(fd)}; "
                "wait for it to finish (nothing was sent to this host)."
            ) from None
        try:
            if writable:
                holder = {
                    "user": operator or operator_name(),
                    "machine": socket.gethostname(),
                    "pid": os.getpid(),
                    "change_id": change_id,
                    "action": action,
                    "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                with contextlib.suppress(OSError):  # only informative
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
            yield
        finally:
            if writable:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)  # nobody holds it now
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
