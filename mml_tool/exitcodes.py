"""Process exit codes: a contract schedulers, CI jobs and scripts rely on; never renumber."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # compliant / done
    ERROR = 1  # could not decide: connection, login, parse, RETCODE, bad input
    USAGE = 2  # wrong command-line usage (click's own code)
    NONCOMPLIANT = 100  # some host does not meet a control
    VERIFY_FAILED = 101  # the end-to-end verification reached a "fail" verdict
