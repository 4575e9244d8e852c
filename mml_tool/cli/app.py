"""The root `mml-tool` group: global options, logging, the lazily loaded commands, main().

Each command lives in the module of its group and is imported only when it runs (or its
--help is shown), so `mml-tool --help` and a scheduler's `mml-tool check` do not pay for the
imports of every other command.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import click

from mml_tool import __version__
from mml_tool.cli._console import EXIT_ERROR, EXIT_USAGE, fail
from mml_tool.cli._context import CliContext
from mml_tool.errors import InventoryError, MmlToolError, PlanError

# name -> (module under mml_tool.cli, function, the one line `mml-tool --help` shows). The line
# is kept here so listing the commands imports none of them; a test holds it to the docstring.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "apply": (
        "change",
        "apply",
        "Apply a reviewed plan: lock, re-read, refuse drift, send, re-read, audit.",
    ),
    "capture": (
        "device",
        "capture",
        "Run one read-only command and save its reply as a template test sample.",
    ),
    "check": ("check", "check", "Check every host against the policy; read-only."),
    "demo": (
        "lab",
        "demo",
        "The whole story on built-in simulators: no device, no arguments needed.",
    ),
    "diff": (
        "baseline",
        "diff",
        "Compare hosts with a baseline snapshot: what differs, is missing or is extra; read-only.",
    ),
    "exec": ("device", "exec_command", "Run one MML command on one host and print the reply."),
    "history": (
        "history",
        "history",
        "Per host and control: the timeline of status changes, when the current status began,",
    ),
    "lab": (
        "lab",
        "lab",
        "Run the simulators in the foreground until Ctrl-C: UAP9600 nodes + a CC-Gateway.",
    ),
    "parse": (
        "device",
        "parse",
        "Parse a captured reply offline with the TextFSM templates (FILE may be - for stdin).",
    ),
    "plan": (
        "plan",
        "plan",
        "Make a change plan for the non-compliant hosts (nothing is changed).",
    ),
    "policy": (
        "policy",
        "policy",
        "Make policy files: `policy from-snapshot` (the golden element's values as controls).",
    ),
    "rollback": (
        "change",
        "rollback",
        "Undo what an apply changed, with the same care (lock, re-read, drift refusal, audit).",
    ),
    "run": (
        "run",
        "run",
        "The whole change: check, plan (shown, confirmed), apply, verify, rollback on failure.",
    ),
    "schema": (
        "schema",
        "schema",
        "Print the JSON Schema of an inventory or a policy file, for editors and linters.",
    ),
    "snapshot": (
        "baseline",
        "snapshot",
        "Read every software parameter of one host into a snapshot file (a baseline).",
    ),
    "verify": (
        "verify",
        "verify",
        "Prove one-way video end to end through the CC-Gateway REST API.",
    ),
    "watch": (
        "watch",
        "watch",
        "Check the fleet every --interval on MML sessions kept open between rounds.",
    ),
}


_freeze_start_up = False  # set by main(): only a whole process of ours freezes its start-up


def _import_command(module_name: str) -> ModuleType:
    """The command's module, imported with the cyclic GC paused; then everything start-up made
    (~60k objects that live until exit: modules, classes, functions) is frozen, so that no
    collection visits it again, the one at exit included. Together ~40 ms of CPU of the
    ~0.25 s a `check` takes to start (issue 14); collection goes on as before for all else.
    A host program (a test runner, a script calling the click group) is left as it is."""
    if not _freeze_start_up:
        return importlib.import_module(f"mml_tool.cli.{module_name}")
    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(f"mml_tool.cli.{module_name}")
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _verbose_after_subcommand(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        _setup_logging(value)


class _Group(click.Group):
    """Loads a command when it is used; turns the library's errors into one clear line and exit
    code 1 (2 for a bad inventory and other bad input)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return self.commands.get(cmd_name)
        module_name, attr, _ = COMMANDS[cmd_name]
        module = _import_command(module_name)
        command: click.Command = getattr(module, attr)
        command.name = cmd_name
        # `mml-tool check -v ...` as well as `mml-tool -v check ...`: people add -v at the end.
        command.params.append(
            click.Option(
                ["-v", "--verbose"],
                count=True,
                expose_value=False,
                callback=_verbose_after_subcommand,
                help="More logging on stderr (-vv: debug); also accepted before the command.",
            )
        )
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The summaries from COMMANDS: listing the commands imports none of them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in COMMANDS:
                # A bare stand-in shortens the line exactly as the real command would.
                stand_in = click.Command(name, help=COMMANDS[name][2])
                summary = stand_in.get_short_help_str(limit)
            else:
                summary = self.commands[name].get_short_help_str(limit)
            rows.append((name, summary))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (InventoryError, PlanError) as exc:
            # Every inventory error (its shape, a value, a secret that cannot be read) and every
            # plan-file error (unreadable, tampered with, unsigned, too old, steps the policy does
            # not derive) is found before any host is connected to: a usage error, as a bad
            # policy file or a forged record is.
            fail(str(exc), EXIT_USAGE)
        except MmlToolError as exc:
            fail(str(exc), EXIT_ERROR)
        except KeyboardInterrupt:
            fail("interrupted", 130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mml-tool")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv: debug).")
@click.option(
    "--templates",
    "template_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="MML_TOOL_TEMPLATES",
    show_envvar=True,
    help="Extra TextFSM template directory (with its own `index`), searched before the "
    "built-in one; repeat it for more. The variable holds dir1:dir2.",
)
@click.option(
    "--operator",
    default=None,
    envvar="MML_TOOL_OPERATOR",
    show_envvar=True,
    help="Who runs this, for plans, audit records and reports. Default: the login name.",
)
@click.pass_context
def cli(
    ctx: click.Context, verbose: int, template_dirs: tuple[Path, ...], operator: str | None
) -> None:
    """Keep Huawei UAP9600 platforms configured right, change them safely, prove it works.

    \b
    Typical use:
      mml-tool demo                                  # the whole story on built-in simulators
      mml-tool check -i inv.yaml --report md:check.md
      mml-tool plan  -i inv.yaml --change-id CHG42 -o plan.json
      mml-tool apply plan.json -i inv.yaml           # shows the plan, asks, applies, audits
      mml-tool verify -i inv.yaml                    # one-way video through the CC-Gateway
      mml-tool run -i inv.yaml --change-id CHG42 --evidence evidence/

    Exit codes: 0 compliant/done, 1 error, 2 usage, 100 non-compliant, 101 verification failed.
    """
    _setup_logging(verbose)
    ctx.obj = CliContext(template_dirs=list(template_dirs), operator=operator or None)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler `mml-tool` installs (so -v after the subcommand can adjust it)."""


def _setup_logging(verbose: int) -> None:
    """Log to stderr unless the host program (a test runner, a script) already set logging up.
    Called again by a subcommand's own -v/-vv: the higher count wins."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _OurHandler)]
    if root.handlers and not ours:
        return
    handler = ours[0] if ours else _OurHandler()
    if not ours:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    level = max(logging.WARNING - 10 * verbose, logging.DEBUG)
    if ours and level >= root.level:
        return
    for old in handler.filters[:]:
        handler.removeFilter(old)
    if verbose < 2:
        # paramiko (the lab's SSH servers, and key files) logs routine disconnects at ERROR.
        handler.addFilter(lambda record: not record.name.startswith("paramiko"))
    root.setLevel(level)


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def handle_sigterm() -> None:
    """Treat SIGTERM (a scheduler's timeout, `systemctl stop`) like Ctrl-C, so cleanup runs:
    the video agent is signed out, the call released, an apply stops and writes its record."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


# One line: the record was written ahead, so leaving now loses nothing that rollback needs.
AGAIN = (
    "interrupted again: exiting now, without waiting for a command still in flight (the "
    "apply/rollback record holds it as unknown; rollback re-reads before undoing it)"
)


def _interrupts(leaving: threading.Event) -> Callable[[int, object], None]:
    """The process's SIGINT/SIGTERM handler: the first two are KeyboardInterrupt (an apply
    halts, then stops waiting for commands in flight); a third, or any one once ``main`` has
    returned (the interpreter joins threads still settling a command: a KeyboardInterrupt there
    is a traceback), ends the process at once with one line and 130."""
    count = 0

    def handler(signum: int, frame: object) -> None:
        nonlocal count
        count += 1
        if count < 3 and not leaving.is_set():
            raise KeyboardInterrupt
        for stream in (sys.stdout, sys.stderr):  # what was printed before stays printed
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os.write(2, f"{AGAIN}\n".encode())
        os._exit(130)

    return handler


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    global _freeze_start_up
    _freeze_start_up = True
    handle_sigterm()
    leaving = threading.Event()
    handler = _interrupts(leaving)
    # Only where Python's own handlers are in place (not ignored by the parent, not replaced).
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)
    if signal.getsignal(signal.SIGTERM) is _terminate:
        signal.signal(signal.SIGTERM, handler)
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="mml-tool")
    finally:
        leaving.set()
