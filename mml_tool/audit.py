"""Append-only audit trail: one JSON line per command a change sent, with its outcome.

The trail is the record change management relies on, so a write that fails stops the change
(``AuditError``) instead of letting commands go out unrecorded. Each ``append`` writes one
whole line with a single ``O_APPEND`` write and fsyncs it before returning, so lines from
several threads or processes do not interleave and a recorded step survives a crash.
"""

from __future__ import annotations

import getpass
import json
import os
import threading
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from mml_tool._io import default_audit_file
from mml_tool._io import utc_now as utc_now  # it lived here
from mml_tool.errors import AuditError
from mml_tool.mml.command import mask_text

# "sending" is the write-ahead line change.py records before a command goes out. After an
# "unknown" line, a second line with the outcome a fresh read settled (ok / failed / unknown).
# "refused" and "skipped": a step whose commands were not sent (drift, lock; already compliant,
# not attempted).
OUTCOMES = ("sending", "ok", "failed", "unknown", "refused", "skipped")
ACTIONS = ("apply", "rollback", "exec")


@dataclass(frozen=True)
class AuditRecord:
    """One command sent (or refused/skipped) during a change."""

    time: str  # ISO 8601 UTC
    operator: str
    change_id: str | None
    host: str
    command: str  # masked
    retcode: int | None
    message: str
    elapsed: float
    outcome: str  # sending | ok | failed | unknown | refused | skipped
    action: str  # apply | rollback | exec

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if self.action not in ACTIONS:
            raise ValueError(f"audit action {self.action!r} is not one of {', '.join(ACTIONS)}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AuditRecord:
        names = {f.name for f in fields(cls)}
        missing = names - data.keys()
        if missing:
            raise ValueError(f"audit record lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]


def default_audit_path() -> Path:
    """``audit.jsonl`` in the user's state folder (``$XDG_STATE_HOME/mml-tool``, by default
    ``~/.local/state/mml-tool``). ``$MML_TOOL_AUDIT`` is read by the CLI (``--audit``), not here."""
    return default_audit_file()


def operator_name() -> str:
    """The login name of the current user. ``$MML_TOOL_OPERATOR`` is read by the CLI
    (``--operator``), not here: callers pass the name they were given."""
    return getpass.getuser()


class AuditTrail:
    """Appends ``AuditRecord`` lines to one JSONL file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record: AuditRecord) -> None:
        """Write one line and fsync it; any failure raises ``AuditError`` (the change stops)."""
        safe = replace(record, command=mask_text(record.command), message=mask_text(record.message))
        line = (json.dumps(safe.to_dict(), ensure_ascii=False, sort_keys=True) + "\n").encode()
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    # One write call per line keeps lines whole even with other writers.
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditError(
                    f"cannot write the audit trail {self.path}: {exc.strerror or exc}; "
                    "fix its permissions or free space, or point MML_TOOL_AUDIT at a writable "
                    "file, then run the change again"
                ) from exc

    def read(self) -> list[AuditRecord]:
        return read(self.path)


def read(path: Path) -> list[AuditRecord]:
    """All records of an audit file, oldest first; a missing file has none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AuditError(f"cannot read the audit trail {path}: {exc.strerror or exc}") from exc
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(AuditRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise AuditError(
                f"{path}:{number}: not an audit record ({exc}); the file was edited or damaged"
            ) from exc
    return records
