"""The apply record on disk: written ahead, accumulated across runs, never silently replaced.

``RecordJournal`` is the ``Journal`` that ``change.execute`` writes through:

- ``check()`` (before anything is connected) refuses a record file of another plan, an
  existing file where a new one is wanted, and a folder that cannot take a file (read-only,
  full).
- ``begin()`` takes the record's lock (one writer per record file; ``.NAME.lock`` beside it,
  opened with O_NOFOLLOW, removed again when released), re-reads the earlier record of the
  same plan and writes the record before the first command is sent; if it cannot, it raises
  ``RecordError`` and nothing is sent.
- ``flush()`` rewrites the record atomically ahead of every command (the step in flight is
  ``unknown``) and after every step. When the file cannot be written any more, the record goes
  to a fallback file (named on stderr), else it is printed on stderr; either way the change
  stops sending when it can be written nowhere.

With ``signing_key`` (the inventory's plan_signing_key) every text written is signed
(``hmac_sha256``) and the earlier record merged in must be signed with it.

``merge()`` accumulates the runs of one plan: a step changed by any run stays "changed" with the
state read before that run, so ``rollback`` undoes every host any run changed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from mml_tool._io import probe_folder, state_dir, write_text_atomic, write_text_new
from mml_tool.change import ApplyRecord, load_record, record_json
from mml_tool.change.merge import _compact_json as _compact_json
from mml_tool.change.merge import _Memo as _Memo
from mml_tool.change.merge import merge as merge
from mml_tool.errors import PlanError, RecordError
from mml_tool.secret import Secret


def fresh_path(path: Path) -> Path:
    """``path`` if free, else the first free ``NAME.2.json``, ``NAME.3.json``, ..."""
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


def fresh_folder(root: Path, name: str) -> Path:
    """Create and return ``root/name``, or ``root/name.2``, ... when an earlier run left files
    there: evidence is never mixed with or replaced by a later run's."""
    n = 1
    while True:
        folder = root / (name if n == 1 else f"{name}.{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            if folder.is_dir() and not any(folder.iterdir()):
                return folder
        n += 1


def default_fallback_dirs(audit_path: Path | None = None) -> list[Path]:
    """Where a record goes when its own folder fails: ``records/`` beside the audit trail
    ``audit_path`` (when given), in the user's state folder, then the temp folder."""
    dirs = [
        *([audit_path.parent / "records"] if audit_path is not None else []),
        state_dir() / "records",
        Path(tempfile.gettempdir()),
    ]
    return list(dict.fromkeys(dirs))


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` (not followed) is the file open as ``fd``."""
    try:
        here = os.lstat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _say_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class RecordJournal:
    """Writes one record file for one run of ``action`` on the plan ``plan_sha256``.

    ``accumulate``: an existing record of the same plan is merged in (apply); otherwise an
    existing file is refused (rollback records, evidence).
    """

    def __init__(
        self,
        path: Path,
        *,
        plan_sha256: str,
        action: str = "apply",
        accumulate: bool = True,
        fallback_dirs: list[Path] | None = None,
        say: Callable[[str], None] = _say_stderr,
        hint: str = "",
        signing_key: Secret | None = None,
    ) -> None:
        self.path = Path(path)
        # The inventory's plan_signing_key: every text written is signed with it (the record,
        # the fallback file, the record printed when it can be written nowhere), and the
        # earlier record merged in must be signed with it.
        self.signing_key = signing_key
        self.plan_sha256 = plan_sha256
        self.action = action
        self.accumulate = accumulate
        self.fallback_dirs = default_fallback_dirs() if fallback_dirs is None else fallback_dirs
        self._say = say
        self.hint = hint  # how the caller names another path, e.g. "give another --record"
        self.fallback: Path | None = None
        self._lock = threading.Lock()  # one write at a time
        # Group commit: hosts asking for a write while one is under way share the next one.
        self._cond = threading.Condition()
        self._asked = 0  # writes asked for
        self._done = 0  # the last ask covered by a finished write
        self._writing = False
        self._ok = True
        self._memo = _Memo()
        self._lock_fd: int | None = None
        self._previous: ApplyRecord | None = None
        self._current: Callable[[], ApplyRecord] | None = None
        self._lost = False  # the last write reached no file
        self._settled = False  # every host's thread has returned (``settled``)
        self._release_later = False  # finish kept the lock for threads still at work

    @property
    def written_to(self) -> Path:
        """The file that holds the record: the asked path, or the fallback."""
        return self.fallback or self.path

    def say(self, message: str) -> None:
        self._say(message)

    def _refuse(self, message: str) -> RecordError:
        return RecordError(f"{message}; {self.hint}" if self.hint else message)

    def check(self) -> ApplyRecord | None:
        """Refuse, before anything is connected, what ``begin`` would refuse; return the
        earlier record of the same plan, if any."""
        previous = self._load_previous()
        if self.lock_path.is_symlink():
            raise self._symlinked_lock()
        try:
            probe_folder(self.path.parent)
        except OSError as exc:
            raise self._refuse(
                f"cannot write the record in {self.path.parent} ({exc.strerror or exc})"
            ) from None
        return previous

    def _load_previous(self) -> ApplyRecord | None:
        if not (self.path.exists() or self.path.is_symlink()):
            return None
        if not self.accumulate:
            raise self._refuse(f"{self.path} exists and is never replaced")
        try:
            previous = load_record(self.path, signing_key=self.signing_key)
        except (PlanError, RecordError) as exc:
            raise self._refuse(f"{exc} It is not overwritten") from None
        if previous.action != self.action or previous.plan_sha256 != self.plan_sha256:
            raise self._refuse(
                f"{self.path} is the {previous.action} record of another plan (sha256 "
                f"{previous.plan_sha256[:16]}...), and is never overwritten"
            )
        return previous

    @property
    def lock_path(self) -> Path:
        """The record's lock file, beside it: ``.NAME.lock``."""
        return self.path.parent / f".{self.path.name}.lock"

    def _symlinked_lock(self) -> RecordError:
        return self._refuse(
            f"{self.lock_path} (the lock of the record {self.path}) is a symbolic link, and is "
            "never followed (it would make mml-tool create or lock another file): remove it, "
            "and find out who made it"
        )

    def _lock_record(self) -> None:
        """Hold ``flock`` on the lock file. Removed when released (``_unlock``), so a run that
        opened it just before may hold the lock of a file no longer at the path: the lock only
        counts once the path still names the file locked (else open the new one)."""
        lock = self.lock_path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._refuse(
                f"cannot write the record in {self.path.parent} ({exc.strerror or exc}): "
                "nothing was sent"
            ) from None
        for _ in range(10):
            try:
                # O_NOFOLLOW: a link planted here must not make us create or lock another file.
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._symlinked_lock() from None
                raise self._refuse(
                    f"cannot write the record in {self.path.parent} ({exc.strerror or exc}): "
                    "nothing was sent"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RecordError(
                    f"another mml-tool run is writing {self.path} (lock {lock}); wait for it to "
                    "finish: nothing was sent"
                ) from None
            if _same_file(fd, lock):
                self._lock_fd = fd
                return
            os.close(fd)  # its holder removed it as we opened it: take the one there now
        raise RecordError(
            f"the lock {lock} of the record {self.path} keeps being replaced; another program "
            "is at work in that folder: nothing was sent"
        )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            # Removed while still held, and only if the path still names the file we locked:
            # whoever opens it from now on finds it gone (see _lock_record) or takes a new one.
            if _same_file(self._lock_fd, self.lock_path):
                with contextlib.suppress(OSError):
                    os.unlink(self.lock_path)
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def begin(self, current: Callable[[], ApplyRecord]) -> None:
        """Lock, merge the earlier record and write it before any command; ``RecordError``
        (nothing sent) when that fails."""
        self._lock_record()
        try:
            self._previous = self._load_previous()
            self._current = current
            text = record_json(merge(self._previous, current()), signing_key=self.signing_key)
            if self._previous is None:
                write_text_new(self.path, text)
            else:
                write_text_atomic(self.path, text)
        except FileExistsError:
            self._unlock()
            raise self._refuse(f"{self.path} appeared meanwhile and is never replaced") from None
        except OSError as exc:
            self._unlock()
            raise RecordError(
                f"cannot write the record {self.path} ({exc.strerror or exc}): nothing was "
                "sent. Free space or fix permissions there, or write the record elsewhere"
            ) from None
        except BaseException:
            self._unlock()
            raise

    def flush(self) -> bool:
        """Write the record as it is now; returns once a write made after this call began has
        finished (hosts asking together share one write)."""
        with self._cond:
            self._asked += 1
            mine = self._asked
            while self._done < mine:
                if not self._writing:
                    self._writing = True
                    covers = self._asked  # the state read below is at least that new
                    break
                self._cond.wait()
            else:
                return self._ok
        ok = False
        try:
            with self._lock:
                if self._current is None:
                    ok = True
                else:
                    record = merge(self._previous, self._current(), self._memo)
                    ok = self._write(_compact_json(record, self._memo, self.signing_key))
        finally:
            with self._cond:
                self._writing = False
                self._done = max(self._done, covers)
                self._ok = ok
                self._cond.notify_all()
        return ok

    def finish(self, record: ApplyRecord, *, still_running: bool = False) -> ApplyRecord:
        """Write ``record`` (merged) as the final record and return it. ``still_running``:
        a host's thread still waits for a command (a second interrupt): later flushes keep
        updating the record until it settles, and the lock stays until the process ends."""
        merged = merge(self._previous, record)
        with self._lock:
            if not still_running:
                self._current = lambda: record
            self._write(record_json(merged, signing_key=self.signing_key), final=True)
            # The threads may have returned since the caller looked: then nobody else releases.
            keep = self._release_later = still_running and not self._settled
        if not keep:
            self._unlock()
        return merged

    def settled(self) -> None:
        """Every host's thread has returned. A lock ``finish`` kept for them is released now,
        after a last write of the record as they left it."""
        with self._lock:
            self._settled = True
            release, self._release_later = self._release_later, False
        if release:
            self.flush()
            self._unlock()

    def _write(self, text: str, final: bool = False) -> bool:
        """Write ``text`` where the record lives, failing over; False if nowhere (then the
        record is printed: the first time, and the final record)."""
        if self.fallback is None:
            try:
                write_text_atomic(self.path, text)
                return True
            except OSError as exc:
                self._fail_over(exc, text)
                if self.fallback is not None:
                    return True
        else:
            try:
                write_text_atomic(self.fallback, text)
                return True
            except OSError as exc:
                self._say(f"error: cannot write the fallback record {self.fallback} ({exc})")
        if final or not self._lost:
            self._lost = True
            self._say(
                "error: the record could be written nowhere; no further command is sent. "
                f"The record so far (save it as a .json file for `mml-tool rollback`):\n{text}"
            )
        return False

    def _fail_over(self, exc: OSError, text: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        name = f"{self.path.stem}.{stamp}.{os.getpid()}{self.path.suffix}"
        tried = []
        for folder in self.fallback_dirs:
            candidate = folder / name
            try:
                write_text_new(candidate, text, 0o600)  # /tmp may be shared: others never read it
            except OSError as error:
                tried.append(f"{folder} ({error.strerror or error})")
                continue
            self.fallback = candidate
            self._say(
                f"error: cannot write the record {self.path} ({exc.strerror or exc}); it is "
                f"written to {candidate} instead: roll back with "
                f"`mml-tool rollback {candidate}`"
            )
            return
        self._say(
            f"error: cannot write the record {self.path} ({exc.strerror or exc}), nor a "
            f"fallback in {', '.join(tried) or 'no folder'}"
        )
