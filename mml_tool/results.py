"""Typed results shared by every layer: StrEnum statuses, the check result, exit codes.

Like nornir's ``Result``: small dataclasses that say whether something ``failed`` or
``changed``. Statuses are ``StrEnum`` members, so they compare equal to (and serialise as)
the strings reports and records have always carried: ``FindingStatus.FAIL == "fail"``.
The exit code of a result is decided here, once, not in the report layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from mml_tool.errors import CheckError
from mml_tool.exitcodes import ExitCode

if TYPE_CHECKING:
    from mml_tool.inventory import Inventory
    from mml_tool.policy import Finding, Policy


class StrEnum(str, Enum):
    """``enum.StrEnum`` (Python 3.11) for 3.10 too: members are their value as a string."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    def __repr__(self) -> str:
        # As the plain string it replaced: printed records, tuples and logs stay as they were.
        return repr(self.value)


class FindingStatus(StrEnum):
    """The verdict of one control on one host."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # could not decide: connection, login, RETCODE, parse
    WAIVED = "waived"  # a fail or pass an active waiver accepts


class StepStatus(StrEnum):
    """What became of one step of a plan (or of a rollback)."""

    CHANGED = "changed"
    ALREADY_COMPLIANT = "already-compliant"
    DRIFTED = "drifted"  # the device was not as planned: nothing sent
    FAILED = "failed"
    UNKNOWN = "unknown"  # a reply was lost: only a fresh read tells
    SKIPPED = "skipped"
    LOCKED = "locked"  # another change held the host

    @property
    def ok(self) -> bool:
        return self in (StepStatus.CHANGED, StepStatus.ALREADY_COMPLIANT)


class _HasStatus(Protocol):
    @property
    def status(self) -> str: ...


def exit_code_for(findings: Iterable[_HasStatus]) -> int:
    """Process exit code for a set of findings.

    0: compliant (every finding passed or is waived); 1: could not decide for at least one
    (connection, auth, parse, RETCODE error) or nothing was evaluated at all; 100:
    non-compliant found and nothing errored.
    """
    statuses = {f.status for f in findings}
    if FindingStatus.ERROR in statuses or not statuses:
        return ExitCode.ERROR
    return ExitCode.NONCOMPLIANT if FindingStatus.FAIL in statuses else ExitCode.OK


@dataclass
class CheckResult:
    """The findings of one check: one per (host, control), in inventory order."""

    findings: list[Finding]
    inventory: Inventory | None = field(default=None, repr=False)
    policy: Policy | None = field(default=None, repr=False)
    started: str = ""
    finished: str = ""
    hosts: Sequence[str] = ()  # the hosts asked for (some may have no control)

    changed = False  # a check never changes anything

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts with a finding that failed or could not be decided, in order."""
        bad = (FindingStatus.FAIL, FindingStatus.ERROR)
        return list(dict.fromkeys(f.host for f in self.findings if f.status in bad))

    @property
    def error_hosts(self) -> list[str]:
        """Hosts where some control could not be decided."""
        return list(dict.fromkeys(f.host for f in self.findings if f.status == FindingStatus.ERROR))

    @property
    def compliant(self) -> bool:
        return self.exit_code == ExitCode.OK

    @property
    def failed(self) -> bool:
        """Whether anything failed or could not be decided (the exit code is not 0)."""
        return self.exit_code != ExitCode.OK

    @property
    def exit_code(self) -> int:
        """0 compliant, 100 non-compliant, 1 could not decide (or nothing checked)."""
        return exit_code_for(self.findings)

    def raise_on_error(self) -> CheckResult:
        """Raise ``CheckError`` when some host could not be decided; return self.

        A non-compliant host is a verdict, not an error: look at ``failed_hosts``.
        """
        hosts = self.error_hosts
        if hosts or not self.findings:
            errors = [f"{f.host} {f.control_id}: {f.error}" for f in self.findings if f.error]
            detail = "; ".join(errors) if errors else "no control targets the hosts checked"
            raise CheckError(
                f"could not decide for {', '.join(hosts) or 'any host'}: {detail}",
                hosts=hosts,
            )
        return self
