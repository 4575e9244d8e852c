"""One command on one host, as `mml-tool exec` runs it: a write is locked and audited.

A read-only command is simply sent. A write (the caller has shown and confirmed it) takes the
host's lock like apply does, so two changes never meet on one host, and is written to the audit
trail before it is sent and after its answer; when the answer is lost the record says
"unknown", because the command may have taken effect.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from mml_tool._io import utc_now
from mml_tool.audit import AuditRecord, AuditTrail
from mml_tool.change.lock import host_lock
from mml_tool.errors import MmlToolError
from mml_tool.inventory import HostConfig
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.response import MmlResponse
from mml_tool.mml.session import MmlSession, Transcript


def run_one(
    host: HostConfig,
    command: MmlCommand,
    *,
    audit: AuditTrail | None = None,
    operator: str = "",
    lock_dir: Path | None = None,
    transcript: Transcript | None = None,
) -> MmlResponse:
    """Send ``command`` to ``host`` and return the reply (whatever its RETCODE).

    A command that is not read-only needs ``audit`` and ``lock_dir``: it is sent under the
    host's lock and audited as action "exec" by ``operator``."""
    if not command.is_read_only and (audit is None or lock_dir is None):
        raise ValueError(f"{command.verb} changes the element: give audit and lock_dir")

    def record(
        outcome: str, retcode: int | None = None, message: str = "", elapsed: float = 0.0
    ) -> None:
        if audit is not None:
            audit.append(
                AuditRecord(
                    time=utc_now(),
                    operator=operator,
                    change_id=None,
                    host=host.name,
                    command=command.masked(),
                    retcode=retcode,
                    message=message,
                    elapsed=elapsed,
                    outcome=outcome,
                    action="exec",
                )
            )

    writing = not command.is_read_only
    lock = (
        host_lock(lock_dir, host.name, action="exec")
        if writing and lock_dir is not None
        else contextlib.nullcontext()
    )
    with lock, MmlSession(host, transcript=transcript) as session:
        if writing:
            record("sending")
        started = time.monotonic()
        try:
            response = session.run(command)
        except MmlToolError as exc:
            if writing:  # the command may have taken effect: say so
                record("unknown", None, str(exc), round(time.monotonic() - started, 3))
            raise
        if writing:
            record(
                "ok" if response.ok else "failed",
                response.retcode,
                response.message,
                round(time.monotonic() - started, 3),
            )
    return response
