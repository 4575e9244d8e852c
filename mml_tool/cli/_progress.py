"""The progress bar of the commands that work on many hosts (imported only by them)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from mml_tool.cli._console import err_console, exit_now


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
