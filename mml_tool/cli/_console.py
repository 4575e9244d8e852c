"""Where the command line writes: stdout/stderr consoles, errors, the progress bar."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from mml_tool.cli._context import CliContext
from mml_tool.exitcodes import ExitCode

EXIT_OK, EXIT_ERROR, EXIT_USAGE = ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE
EXIT_VERIFY_FAILED = ExitCode.VERIFY_FAILED

# soft_wrap: messages (paths, `export VAR=...` hints, commands) are never broken into lines at
# the terminal width, so a log grep finds them whole; tables still fit the width.
err_console = Console(stderr=True, soft_wrap=True)


def stdout_taken() -> bool:
    """Whether a report goes to stdout (`--report json:-`): then nothing else may go there."""
    ctx = click.get_current_context(silent=True)
    obj = None if ctx is None else ctx.find_root().obj
    return isinstance(obj, CliContext) and obj.stdout_taken


def out_console() -> Console:
    """stdout; wide when piped so tables in logs and CI output are not folded to 80 columns.
    stderr when a report goes to stdout (`--report json:-`)."""
    stderr = stdout_taken()
    console = Console(stderr=stderr, soft_wrap=True)
    return console if console.is_terminal else Console(stderr=stderr, soft_wrap=True, width=160)


def echo(text: str) -> None:
    """A line for the operator: stdout, unless a report goes there."""
    click.echo(text, err=stdout_taken())


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    # Escaped: messages quote paths and device replies, which may hold rich markup like [/].
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    sys.exit(code)


def exit_now(signum: int, frame: object) -> NoReturn:
    """A second interrupt: nothing is being written, so leave without waiting for threads
    (an SSH handshake can hold one for connect_timeout; the interpreter would join it)."""
    sys.stderr.write("interrupted again: exiting now\n")
    sys.stderr.flush()
    os._exit(130)
