"""One command on one host, as `mml-tool exec` runs it: a write is locked and audited.

A read-only command is simply sent. A write (the caller has shown and confirmed it) takes the
host's lock like apply does, so two changes never meet on one host, and is written to the audit
trail before it is sent and after its answer; when the answer is lost the record says
"unknown", because the command may have taken effect. A one-bit ``MOD SFP`` (what apply sends)
is then read back in a session of its own, still under the lock, and the settled outcome is a
third audit line; any other write stays "unknown" and the user is told to read it back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from mml_tool._io import utc_now
from mml_tool.audit import AuditRecord, AuditTrail
from mml_tool.change.lock import host_lock
from mml_tool.compliance import read_bit
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
    lost: MmlToolError | None = None
    with lock:
        with MmlSession(host, transcript=transcript) as session:
            if writing:
                record("sending")
            started = time.monotonic()
            try:
                response = session.run(command)
            except MmlToolError as exc:
                if not writing:
                    raise
                record("unknown", None, str(exc), round(time.monotonic() - started, 3))
                lost = exc
            else:
                if writing:
                    record(
                        "ok" if response.ok else "failed",
                        response.retcode,
                        response.message,
                        round(time.monotonic() - started, 3),
                    )
        if lost is not None:
            # The command may have taken effect: read it back in a session of its own (that
            # one no longer answers), still under the host's lock, as apply settles a lost reply.
            said = _settle(host, command, record, transcript)
            lost.args = (f"{lost.args[0] if lost.args else lost}: {said}", *lost.args[1:])
            raise lost
    return response


def _bit_written(command: MmlCommand) -> tuple[str, int, int] | None:
    """(parameter, bit, value) of a one-bit ``MOD SFP`` (the command apply sends), else None:
    exec cannot tell how to read back any other write."""
    if (command.verb, command.obj, command.param("MODTYPE")) != ("MOD", "SFP", "P1"):
        return None
    parameter, bit, value = (command.param(n) for n in ("ID", "BIT", "BITVAL"))
    if not isinstance(parameter, str) or not isinstance(bit, int) or not isinstance(value, int):
        return None
    return parameter, bit, value


def _settle(
    host: HostConfig,
    command: MmlCommand,
    record: Callable[..., None],
    transcript: Transcript | None,
) -> str:
    """Read back what a write whose reply was lost did; audit and return what was found."""
    written = _bit_written(command)
    if written is None:
        return "it may have taken effect: read the setting back before sending it again"
    parameter, bit, value = written
    try:
        with MmlSession(host, transcript=transcript) as session:
            read = MmlCommand.create("LST", "SFP", ID=parameter)
            now = read_bit(session, read, parameter, bit).bit_value
    except MmlToolError as exc:
        record("unknown", None, f"not settled: a fresh read failed ({exc})")
        return (
            f"it may have taken effect and could not be read back ({exc}): read {parameter} "
            "before sending it again"
        )
    took = now == value
    found = f"{parameter} bit {bit} = {now}"
    record(
        "ok" if took else "failed",
        None,
        f"settled by a fresh read: {found}, " + ("took effect" if took else "no effect"),
    )
    if took:
        return f"a fresh read shows {found}: it took effect, do not send it again"
    return f"a fresh read shows {found}: it did not take effect"
