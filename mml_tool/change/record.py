"""The apply record on disk: written ahead, accumulated across runs, never silently replaced.

``RecordJournal`` is the ``Journal`` that ``change.execute`` writes through:

- ``check()`` (before anything is connected) refuses a record file of another plan, an
  existing file where a new one is wanted, and a folder that cannot take a file (read-only,
  full).
- ``begin()`` takes the record's lock (one writer per record file), re-reads the earlier record
  of the same plan and writes the record before the first command is sent; if it cannot, it
  raises ``RecordError`` and nothing is sent.
- ``flush()`` rewrites the record atomically ahead of every command (the step in flight is
  ``unknown``) and after every step. When the file cannot be written any more, the record goes
  to a fallback file (named on stderr), else it is printed on stderr; either way the change
  stops sending when it can be written nowhere.

``merge()`` accumulates the runs of one plan: a step changed by any run stays "changed" with the
state read before that run, so ``rollback`` undoes every host any run changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mml_tool._io import probe_folder, write_text_atomic, write_text_new
from mml_tool.audit import default_audit_path
from mml_tool.change import ApplyRecord, StepResult, load_record, record_json
from mml_tool.change.approval import canonical
from mml_tool.errors import PlanError, RecordError
from mml_tool.results import StepStatus


def _key(result: StepResult) -> tuple[str, str, str, int]:
    step = result.step
    return step.host, step.control_id, step.parameter, step.bit


def _entry(result: StepResult, started: str) -> dict[str, Any]:
    """What one run did to one step, for the step's history."""
    return {
        "run_started": started,
        "status": result.status,
        "before": result.before,
        "after": result.after,
        "error": result.error,
        "commands": [c.as_dict() for c in result.commands],
    }


def _history(result: StepResult, started: str) -> list[dict[str, Any]]:
    return list(result.history) if result.history else [_entry(result, started)]


def _merge_step(old: StepResult, new: StepResult) -> StepResult:
    """The step as the record keeps it after ``old`` (earlier runs) and ``new`` (this run)."""
    if new.commands or (new.before is not None and not new.ok):
        # This run sent something, or read the host and found it not right (drift): its word
        # counts, and the commands of earlier runs stay (rollback re-reads before undoing).
        return replace(new, commands=[*old.commands, *new.commands])
    if new.before is None:
        return old  # this run never read the host (skipped, locked): nothing new is known
    if old.may_have_changed:
        # The host is at the target because an earlier run changed it: it stays changed, with
        # the state read before that run, so that rollback undoes it.
        if old.status == "changed":
            return old if old.after_state else replace(old, after_state=new.after_state)
        return replace(
            old,
            status=StepStatus.CHANGED,
            after=new.after,
            after_state=old.after_state or new.after_state,
            error=f"{old.error}; a later run read the target value",
        )
    return new


class _Memo:
    """What the flushes of one run can reuse: a step's merged result and its JSON, both keyed
    by the identity of objects that never change once made (the key objects are kept)."""

    def __init__(self) -> None:
        self.merged: dict[tuple[int, int], tuple[Any, StepResult, StepResult]] = {}
        self.text: dict[int, tuple[StepResult, bytes]] = {}

    def json(self, result: StepResult) -> bytes:
        hit = self.text.get(id(result))
        if hit is None or hit[0] is not result:
            hit = self.text[id(result)] = (result, canonical(result.to_dict()))
        return hit[1]


def _merged_step(
    old: StepResult | None, new: StepResult, previous_started: str, started: str
) -> StepResult:
    if old is None:
        return replace(new, history=[_entry(new, started)])
    history = [*_history(old, previous_started), _entry(new, started)]
    return replace(_merge_step(old, new), history=history)


def merge(
    previous: ApplyRecord | None, current: ApplyRecord, memo: _Memo | None = None
) -> ApplyRecord:
    """``current`` with the earlier runs of the same plan in ``previous`` folded in."""
    run = {"started": current.started, "finished": current.finished, "operator": current.operator}
    earlier = {} if previous is None else {_key(r): r for r in previous.results}
    before = "" if previous is None else previous.started
    results = []
    for new in current.results:
        old = earlier.pop(_key(new), None)
        hit = None if memo is None else memo.merged.get((id(old), id(new)))
        if hit is not None and hit[0] is old and hit[1] is new:
            results.append(hit[2])
            continue
        merged = _merged_step(old, new, before, current.started)
        if memo is not None:
            memo.merged[id(old), id(new)] = (old, new, merged)
        results.append(merged)
    if previous is None:
        return replace(current, results=results, runs=[run])
    results += earlier.values()  # steps only an earlier run had: never dropped
    runs = previous.runs or [
        {"started": previous.started, "finished": previous.finished, "operator": previous.operator}
    ]
    return replace(current, started=previous.started, results=results, runs=[*runs, run])


def _compact_json(record: ApplyRecord, memo: _Memo) -> str:
    """``record_json(record, compact=True)``, re-encoding only the steps that changed since
    the last flush: the sealed canonical text, assembled from each step's canonical text."""
    head = replace(record, results=[]).to_dict()
    head["ok"] = record.ok
    data = canonical(head)
    # Keys are sorted and string values escape their quotes: this is the "results" key.
    cut = data.index(b'"results":[]') + len(b'"results":[')
    data = data[:cut] + b",".join(memo.json(r) for r in record.results) + data[cut:]
    seal = hashlib.sha256(data).hexdigest()
    return data[:-1].decode("utf-8") + f',"sha256":"{seal}"}}\n'


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


def default_fallback_dirs() -> list[Path]:
    """Where a record goes when its own folder fails: ``records/`` beside the audit trail
    ($MML_TOOL_AUDIT), the user's state folder, then the temp folder."""
    dirs = [
        default_audit_path().parent / "records",
        Path.home() / ".local" / "state" / "mml-tool" / "records",
        Path(tempfile.gettempdir()),
    ]
    return list(dict.fromkeys(dirs))


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
    ) -> None:
        self.path = Path(path)
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
            previous = load_record(self.path)
        except PlanError as exc:
            raise self._refuse(f"{exc} It is not overwritten") from None
        if previous.action != self.action or previous.plan_sha256 != self.plan_sha256:
            raise self._refuse(
                f"{self.path} is the {previous.action} record of another plan (sha256 "
                f"{previous.plan_sha256[:16]}...), and is never overwritten"
            )
        return previous

    def _lock_record(self) -> None:
        lock = self.path.parent / f".{self.path.name}.lock"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
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
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def begin(self, current: Callable[[], ApplyRecord]) -> None:
        """Lock, merge the earlier record and write it before any command; ``RecordError``
        (nothing sent) when that fails."""
        self._lock_record()
        try:
            self._previous = self._load_previous()
            self._current = current
            text = record_json(merge(self._previous, current()))
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
                    ok = self._write(_compact_json(record, self._memo))
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
            self._write(record_json(merged), final=True)
        if not still_running:
            self._unlock()
        return merged

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
