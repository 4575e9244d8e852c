"""Where the command line writes: stdout/stderr consoles, errors, the progress bar."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

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


class BarProgress:
    """A rich progress bar on a terminal; nothing when output is piped or scheduled.

    Interrupted, it says at once what it waits for; with ``exit_on_second_interrupt`` (a
    read-only run) a second Ctrl-C or SIGTERM ends the process at once, without waiting for
    a host that hangs in its handshake."""

    def __init__(
        self, label: str, console: Console | None = None, exit_on_second_interrupt: bool = False
    ) -> None:
        self.console = console or err_console
        self.label = label
        self.bar: RichBar | None = None
        self.task: Any = None
        self.exit_on_second_interrupt = exit_on_second_interrupt
        self._saved: dict[int, Any] = {}

    def started(self, total: int) -> None:
        if not self.console.is_terminal or total == 0:
            return
        self.bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=total)

    def host_done(self, host: str, ok: bool) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def finished(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()

    def stopping(self, running: int) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        again = ""
        if self.exit_on_second_interrupt and threading.current_thread() is threading.main_thread():
            # Before saying so: a second Ctrl-C right after the message must find it in place.
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._saved[signum] = signal.signal(signum, exit_now)
            again = ", Ctrl-C again to exit now"
        self.console.print(
            f"stopping: waiting for {running} host(s) to close{again}",
            highlight=False,
            markup=False,
        )


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
