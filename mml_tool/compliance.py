"""Compliance check: read each control's state from a host and evaluate it (``mml_tool.check()``
is the public entry; this module is not named check.py so that name stays the function).

Used by `check` directly and by `plan`, `apply` and `rollback` to re-read state: one place
decides what a host's parameter bit is, so every step agrees on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mml_tool.errors import AnswerError, MmlToolError
from mml_tool.fleet import DEFAULT_WORKERS, Progress, run_fleet
from mml_tool.inventory import HostConfig
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output
from mml_tool.policy import Control, Finding, Policy, bit_from_records, evaluate


@dataclass(frozen=True)
class Reading:
    """One control's state as read from a host: parsed records, masked raw reply, the bit."""

    records: list[dict[str, str]]
    raw: str
    bit_value: int


def read_bit(
    session: MmlSession,
    command: MmlCommand,
    parameter: str,
    bit: int,
    template_dirs: Sequence[Path] = (),
) -> Reading:
    """Run a read command and return the value of ``parameter`` bit ``bit``.

    Raises RetcodeError, ParseError or a session error: unknown state is never a value.
    """
    response = session.run(command)
    response.raise_for_retcode()
    records = parse_output(  # the reports only: not what a terminal printed before them
        command.render(), response.text, session.params.platform, template_dirs=template_dirs
    )
    return Reading(records, response.raw, bit_from_records(records, parameter, bit))


def read_control(
    session: MmlSession, control: Control, template_dirs: Sequence[Path] = ()
) -> Reading:
    """Read the state a control judges."""
    rule = control.rule
    return read_bit(session, control.check_command, rule.parameter, rule.bit, template_dirs)


def check_host(
    host: HostConfig,
    policy: Policy,
    *,
    template_dirs: Sequence[Path] = (),
    today: date | None = None,
    session_factory: Callable[[HostConfig], MmlSession] = MmlSession,
) -> list[Finding]:
    """Evaluate every control that targets ``host``; a control that cannot be read is `error`."""
    today = today or date.today()
    controls = policy.controls_for(host)
    findings: list[Finding] = []
    if not controls:  # nothing targets this host: do not even connect
        return findings
    try:
        with session_factory(host) as session:
            for control in controls:
                findings.append(_check_one(session, host, control, policy, template_dirs, today))
        refused = getattr(session, "refused", None)  # a hostile answer seen at logout
        if isinstance(refused, AnswerError):
            raise refused
    except MmlToolError as exc:
        if isinstance(exc, AnswerError):
            findings.clear()  # nothing this session read can be trusted
        done = {f.control_id for f in findings}
        findings.extend(
            evaluate(
                host.name,
                c,
                None,
                error=str(exc),
                waiver=policy.waiver_for(host.name, c.id),
                today=today,
            )
            for c in controls
            if c.id not in done
        )
    return findings


def _check_one(
    session: MmlSession,
    host: HostConfig,
    control: Control,
    policy: Policy,
    template_dirs: Sequence[Path],
    today: date,
) -> Finding:
    waiver = policy.waiver_for(host.name, control.id)
    try:
        reading = read_control(session, control, template_dirs)
    except MmlToolError as exc:
        if not session.healthy:
            raise
        return evaluate(host.name, control, None, error=str(exc), waiver=waiver, today=today)
    return evaluate(
        host.name, control, reading.records, raw=reading.raw, waiver=waiver, today=today
    )


def check_fleet(
    hosts: Sequence[HostConfig],
    policy: Policy,
    *,
    template_dirs: Sequence[Path] = (),
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    session_factory: Callable[[HostConfig], MmlSession] = MmlSession,
) -> list[Finding]:
    """Check every host concurrently; findings in inventory order, one per (host, control)."""
    today = date.today()
    results = run_fleet(
        hosts,
        lambda host: check_host(
            host, policy, template_dirs=template_dirs, today=today, session_factory=session_factory
        ),
        workers=workers,
        progress=progress,
    )
    findings: list[Finding] = []
    for host, result in zip(hosts, results, strict=True):
        if result.error is None:
            findings.extend(result.value or [])
        else:  # a job that died (an unforeseen error): every control of the host is an error
            findings.extend(
                evaluate(
                    host.name,
                    control,
                    None,
                    error=str(result.error),
                    waiver=policy.waiver_for(host.name, control.id),
                    today=today,
                )
                for control in policy.controls_for(host)
            )
    return findings
