"""The `mml-tool` command line: thin click commands over the library.

Exit codes (stable, for schedulers and scripts; the same for every command):
  0 compliant / done, 1 could not decide (or nothing was checked), 2 usage error (found before
  anything is connected to or sent), 100 non-compliant found, 101 end-to-end verification failed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

from mml_tool import __version__
from mml_tool.errors import ConfigError, MmlToolError
from mml_tool.exitcodes import ExitCode
from mml_tool.fleet import DEFAULT_WORKERS

EXIT_OK, EXIT_ERROR, EXIT_USAGE = ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE
EXIT_VERIFY_FAILED = ExitCode.VERIFY_FAILED

# soft_wrap: messages (paths, `export VAR=...` hints, commands) are never broken into lines at
# the terminal width, so a log grep finds them whole; tables still fit the width.
err_console = Console(stderr=True, soft_wrap=True)


def _stdout_taken() -> bool:
    """Whether a report goes to stdout (`--report json:-`): then nothing else may go there."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().meta.get(_STDOUT_TAKEN))


def out_console() -> Console:
    """stdout; wide when piped so tables in logs and CI output are not folded to 80 columns.
    stderr when a report goes to stdout (`--report json:-`)."""
    stderr = _stdout_taken()
    console = Console(stderr=stderr, soft_wrap=True)
    return console if console.is_terminal else Console(stderr=stderr, soft_wrap=True, width=160)


_STDOUT_TAKEN = "mml_tool.stdout_taken"


def _echo(text: str) -> None:
    """A line for the operator: stdout, unless a report goes there."""
    click.echo(text, err=_stdout_taken())


def _report_targets(spec: str | None) -> list[tuple[str, Path]]:
    """Parse --report before anything is connected to or sent: a bad spec is a usage error."""
    from mml_tool.report import parse_report_targets, to_stdout

    if spec is None:
        return []
    try:
        targets = parse_report_targets(spec)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if to_stdout(targets):
        click.get_current_context().find_root().meta[_STDOUT_TAKEN] = True
    return targets


def _select(inventory: Any, limit: str | None) -> list[Any]:
    """The hosts --limit names; one it names that does not exist is a usage error."""
    from mml_tool.errors import InventoryError

    try:
        return list(inventory.select(limit))
    except InventoryError as exc:
        fail(str(exc), EXIT_USAGE)


def _nothing_checked(inventory: Any, policy: Any, hosts: list[Any], limit: str | None) -> str:
    """Why no control would be evaluated on ``hosts``, or "" when some would."""
    if not inventory.hosts:
        return f"the inventory {inventory.path} has no hosts"
    if not hosts:
        return f"--limit {limit!r} selects no host"
    if not any(policy.controls_for(h) for h in hosts):
        return f"no control of policy {policy.name!r} targets the selected host(s)"
    return ""


def _waiver_warnings(inventory: Any, policy: Any) -> list[str]:
    """A waiver for a host the inventory does not have waives nothing: say so, naming it."""
    warnings = [
        f"policy {policy.name!r}: the waiver of control {w.control} names host {w.host!r}, "
        f"which is not in {inventory.path}: it waives nothing (a typo?)"
        for w in policy.waivers
        if w.host not in inventory.hosts
    ]
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    return warnings


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
                self._saved[signum] = signal.signal(signum, _exit_now)
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


class _Group(click.Group):
    """Turns the library's errors into one clear line and exit code 1 (2 for bad input)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MmlToolError as exc:
            fail(str(exc), EXIT_ERROR)
        except KeyboardInterrupt:
            fail("interrupted", 130)


inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Inventory YAML: hosts, groups, gateways (see inventories/).",
)
policy_option = click.option(
    "-p",
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Policy YAML with controls and waivers. Default: the built-in P978 one-way-video control.",
)
limit_option = click.option(
    "--limit",
    default=None,
    metavar="PATTERN",
    help="Only these hosts: comma-separated names, group names or shell patterns (uap-*).",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 512),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Hosts worked on at once (default: sized to this machine's cores).",
)
report_option = click.option(
    "--report",
    "report_spec",
    default=None,
    metavar="FORMAT:PATH,...",
    help="Write reports, several at once: json:out.json,junit:out.xml,md:ticket.md "
    "(PATH - is standard output; checked before anything is sent).",
)
yes_option = click.option(
    "--yes", is_flag=True, help="Do not ask for confirmation (the plan is still printed)."
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mml-tool")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv: debug).")
@click.option(
    "--templates",
    "template_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Extra TextFSM template directory (with its own `index`), searched before the "
    "built-in one. Also: MML_TOOL_TEMPLATES=dir1:dir2.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, template_dirs: tuple[Path, ...]) -> None:
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
    from mml_tool.parsing import template_dirs_from_env

    _setup_logging(verbose)
    ctx.obj = {"template_dirs": [*template_dirs, *template_dirs_from_env()]}


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
        # paramiko logs routine disconnects (the element closes after LGO) at ERROR.
        handler.addFilter(lambda record: not record.name.startswith("paramiko"))
    root.setLevel(level)


def _templates(ctx: click.Context) -> list[Path]:
    return list(ctx.obj["template_dirs"])


def _load_inventory(path: Path) -> Any:
    """The inventory with no secret read yet: each command reads only those it uses
    (``Inventory.with_secrets``), so `check` never asks for the gateway's password."""
    from mml_tool.inventory import load_inventory

    return load_inventory(path, prompt=_prompt_secret, resolve_secrets=False)


def _prompt_secret(label: str) -> str:
    if not sys.stdin.isatty():
        raise ConfigError(f"{label}: no terminal to prompt on; set the variable or use a file.")
    return str(click.prompt(label, hide_input=True, err=_stdout_taken()))


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Refusing without a terminal: re-run with --yes to approve.")
    if not click.confirm(question, default=False, err=_stdout_taken()):
        fail("not approved; nothing was sent.")


def _exit_now(signum: int, frame: object) -> NoReturn:
    """A second interrupt: nothing is being written, so leave without waiting for threads
    (an SSH handshake can hold one for connect_timeout; the interpreter would join it)."""
    sys.stderr.write("interrupted again: exiting now\n")
    sys.stderr.flush()
    os._exit(130)


def _terminate(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def handle_sigterm() -> None:
    """Treat SIGTERM (a scheduler's timeout, `systemctl stop`) like Ctrl-C, so cleanup runs:
    the video agent is signed out, the call released, an apply stops and writes its record."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    handle_sigterm()
    cli.main(args=list(argv) if argv is not None else None, prog_name="mml-tool")


def _change_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Checked while the command line is parsed: a usage error, before anything is read."""
    from mml_tool.change_id import validate_change_id

    if value is None:
        return None
    try:
        return validate_change_id(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _print_json(body: object) -> None:
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


_MAX_AGE_HELP = "Refuse a plan older than this many hours."


# -- check / plan / apply / rollback ------------------------------------------------------------


def _check(
    ctx: click.Context,
    inventory_path: Path,
    policy_path: Path | None,
    limit: str | None,
    workers: int,
    signing: bool = False,
) -> _Checked:
    from mml_tool.change import now_iso
    from mml_tool.check import check_fleet
    from mml_tool.policy import load_policy

    policy = load_policy(policy_path)  # validated before any connection
    inventory = _load_inventory(inventory_path)
    if signing:
        _ = inventory.plan_signing_key  # a key set but unreadable: refused before connecting
    hosts = _select(inventory, limit)
    warnings = _waiver_warnings(inventory, policy)
    started = now_iso()
    nothing = _nothing_checked(inventory, policy, hosts, limit)
    if nothing:
        return _Checked(inventory, policy, [], started, warnings, f"nothing was checked: {nothing}")
    inventory = inventory.with_secrets(hosts=[h.name for h in hosts if policy.controls_for(h)])
    hosts = [inventory.hosts[h.name] for h in hosts]
    findings = check_fleet(
        hosts,
        policy,
        template_dirs=_templates(ctx),
        workers=workers,
        progress=BarProgress(f"checking {len(hosts)} host(s)", exit_on_second_interrupt=True),
    )
    return _Checked(inventory, policy, findings, started, warnings)


@dataclass
class _Checked:
    inventory: Any
    policy: Any
    findings: list[Any]
    started: str
    warnings: list[str]
    nothing: str = ""  # why nothing was checked


def _run_info(
    command: str, policy: Any, inventory_path: Path, started: str, change_id: str | None = None
) -> Any:
    from mml_tool.audit import operator_name
    from mml_tool.change import now_iso
    from mml_tool.report import RunInfo

    return RunInfo(
        command=command,
        tool_version=__version__,
        policy_name=policy.name,
        policy_sha256=policy.sha256,
        change_id=change_id,
        inventory=str(inventory_path),
        started=started,
        finished=now_iso(),
        operator=operator_name(),
    )


@cli.command()
@inventory_option
@policy_option
@limit_option
@workers_option
@report_option
@click.pass_context
def check(
    ctx: click.Context,
    inventory_path: Path,
    policy_path: Path | None,
    limit: str | None,
    workers: int,
    report_spec: str | None,
) -> None:
    """Check every host against the policy; read-only.

    Connects to each host (concurrently), runs each control's read command (e.g.
    `LST SFP: ID=P978;`), parses the reply with the TextFSM templates and judges it.
    A host that cannot be read is an error, never compliant; nothing checked (no host, no
    control targets the selection) is never compliant either.

    \b
    Examples:
      mml-tool check -i inv.yaml
      mml-tool check -i inv.yaml --limit 'uap-1*,core' --report json:-
      mml-tool check -i inv.yaml -p policy.yaml --report junit:out/junit.xml,md:out/ticket.md

    Exit: 0 all pass (or waived), 100 some non-compliant, 1 some could not be decided or
    nothing was checked, 2 usage error.
    """
    from mml_tool.report import Outcome, Report, render_table, write_reports

    targets = _report_targets(report_spec)
    done = _check(ctx, inventory_path, policy_path, limit, workers)
    outcome = Outcome("nothing checked", EXIT_ERROR, done.nothing) if done.nothing else None
    report = Report(
        _run_info("check", done.policy, inventory_path, done.started),
        done.findings,
        warnings=done.warnings,
        outcome=outcome,
    )
    render_table(report, out_console())
    write_reports(report, targets)
    if done.nothing:
        fail(done.nothing, EXIT_ERROR)
    sys.exit(report.decide().exit_code)


@cli.command()
@click.option(
    "-i",
    "--inventory",
    "inventory_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Inventory YAML (needed to make a plan, not to --show one).",
)
@policy_option
@limit_option
@workers_option
@click.option(
    "--change-id",
    default=None,
    callback=_change_id,
    help="Change ticket ID recorded in the plan and audit.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the plan (JSON). An existing file is not replaced without --force.",
)
@click.option(
    "--force", is_flag=True, help="Replace the -o file if it exists (an earlier plan is lost)."
)
@click.option(
    "--show",
    "show_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Print an existing plan for review instead of making one.",
)
@click.pass_context
def plan(
    ctx: click.Context,
    inventory_path: Path | None,
    policy_path: Path | None,
    limit: str | None,
    workers: int,
    change_id: str | None,
    output: Path | None,
    force: bool,
    show_path: Path | None,
) -> None:
    """Make a change plan for the non-compliant hosts (nothing is changed).

    The plan holds, per host: the state read now (value and raw reply), the commands to send,
    the rollback commands, who made it and when, and a sha256 over its content; with
    `plan_signing_key` in the inventory also an HMAC-SHA256 signature. Review it with
    `mml-tool plan --show PLAN.json`; apply it with `mml-tool apply PLAN.json`.

    \b
    Examples:
      mml-tool plan -i inv.yaml --change-id CHG42 -o plan.json
      mml-tool plan --show plan.json

    Exit: 0 plan written, 1 some host could not be decided or nothing was checked, 2 usage.
    """
    from mml_tool.audit import operator_name
    from mml_tool.change import build_plan, load_plan

    if show_path is not None:
        _show_plan(load_plan(show_path, max_age=None), show_path)
        return
    if output is None or inventory_path is None:
        raise click.UsageError("to make a plan give -i INVENTORY and -o PLAN.json")
    _plan_output_usable(output, force)
    done = _check(ctx, inventory_path, policy_path, limit, workers, signing=True)
    if done.nothing:
        fail(done.nothing, EXIT_ERROR)
    inventory, policy, findings = done.inventory, done.policy, done.findings
    undecided = [f for f in findings if f.status == "error"]
    new_plan = build_plan(
        findings,
        policy,
        change_id=change_id or "",
        inventory=inventory_path,
        operator=operator_name(),
    )
    key = inventory.plan_signing_key
    digest = _write_plan(new_plan, output, force, key)
    _show_plan(new_plan, output)
    signed = f", signed with the plan_signing_key of {inventory_path}" if key else ""
    _echo(f"plan written: {output} (sha256 {digest[:16]}...{signed})")
    for finding in undecided:
        what = f"{finding.host} {finding.control_id}: {finding.error}"
        err_console.print(
            f"[yellow]not planned[/] {escape(what)}",
            highlight=False,
        )
    if undecided:
        sys.exit(EXIT_ERROR)


def _plan_output_usable(output: Path, force: bool) -> None:
    """Before anything is connected: never replace an earlier plan silently, and find a folder
    that cannot take the plan (read-only, full)."""
    from mml_tool.atomic import probe_folder

    if (output.exists() or output.is_symlink()) and not force:
        raise click.UsageError(
            f"{output} exists (an earlier plan?) and is not replaced: give another -o path, "
            "or --force to replace it"
        )
    try:
        probe_folder(output.parent)
    except OSError as exc:
        raise click.UsageError(
            f"cannot write the plan in {output.parent} ({exc.strerror or exc}): give -o a "
            "writable folder"
        ) from None


def _write_plan(new_plan: Any, output: Path, force: bool, key: Any) -> str:
    from mml_tool.change import save_plan

    try:
        return str(save_plan(new_plan, output, signing_key=key, overwrite=force))
    except FileExistsError:
        fail(f"{output} appeared meanwhile and is not replaced: give another -o path, or --force")
    except OSError as exc:
        fail(f"cannot write the plan {output} ({exc.strerror or exc}): nothing was changed")


def _show_plan(the_plan: Any, path: Path) -> None:
    from mml_tool.report import natural_key

    console = out_console()
    console.print(
        f"[bold]Plan[/] {path}  change {the_plan.change_id or '-'}  made by "
        f"{the_plan.created_by} at {the_plan.created}  policy {the_plan.policy_name}",
        highlight=False,
    )
    if not the_plan.steps:
        console.print("Nothing to change: every host checked is compliant.")
        return
    for step in sorted(the_plan.steps, key=lambda s: natural_key(s.host)):
        console.print(
            f"\n[bold]{step.host}[/]  {step.control_id}: {step.parameter} bit "
            f"{step.bit} {step.start_value} -> {step.target_value}",
            highlight=False,
        )
        for command in step.commands:
            console.print(f"  send     {command}", highlight=False, markup=False)
        for command in step.undo_commands:
            console.print(f"  rollback {command}", highlight=False, markup=False)


def _change_context(
    ctx: click.Context,
    inventory: Any,
    change_id: str,
    audit_path: Path | None,
    policy: Any,
    hosts: Iterable[str] = (),
) -> Any:
    """What apply and rollback need; only the secrets of ``hosts`` are read."""
    from mml_tool.audit import AuditTrail, default_audit_path, operator_name
    from mml_tool.change import ChangeContext, default_lock_dir

    return ChangeContext(
        inventory=inventory.with_secrets(hosts=hosts),
        audit=AuditTrail(audit_path or default_audit_path()),
        operator=operator_name(),
        change_id=change_id,
        lock_dir=inventory.lock_dir or default_lock_dir(),
        template_dirs=_templates(ctx),
        policy=policy,
    )


audit_option = click.option(
    "--audit",
    "audit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Audit trail (JSON lines). Default: $MML_TOOL_AUDIT or "
    "~/.local/state/mml-tool/audit.jsonl",
)
record_option = click.option(
    "--record",
    "record_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the record of what was done (input of `rollback`). It is written "
    "ahead of every command; an apply record of the same plan accumulates, any other file is "
    "never replaced.",
)


def _print_record(record: Any) -> None:
    from mml_tool.report import natural_key

    console = out_console()
    styles = {"changed": "green", "already-compliant": "green", "skipped": "yellow"}
    for result in sorted(record.results, key=lambda r: natural_key(r.step.host)):
        style = styles.get(result.status, "red")
        line = (
            f"[{style}]{result.status:<17}[/] {result.step.host}  {result.step.control_id}  "
            f"{result.step.parameter} bit {result.step.bit}: {result.before} -> {result.after}"
        )
        console.print(line, highlight=False)
        if result.error:
            console.print(f"                  {result.error}", highlight=False, markup=False)


@cli.command()
@click.argument("plan_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@inventory_option
@policy_option
@yes_option
@click.option(
    "--max-age", type=click.FloatRange(min=0), default=24.0, show_default=True, help=_MAX_AGE_HELP
)
@audit_option
@record_option
@workers_option
@report_option
@click.pass_context
def apply(
    ctx: click.Context,
    plan_path: Path,
    inventory_path: Path,
    policy_path: Path | None,
    yes: bool,
    max_age: float,
    audit_path: Path | None,
    record_path: Path | None,
    workers: int,
    report_spec: str | None,
) -> None:
    """Apply a reviewed plan: lock, re-read, refuse drift, send, re-read, audit.

    Refuses a plan whose sha256 does not match, that is older than --max-age hours, that is
    not signed with the inventory's plan_signing_key (when it sets one), or whose commands are
    not exactly those derived from the rules of the policy it was made with (-p, default the
    built-in one). Per host: takes a lock (in the inventory's lock_dir, shared by every
    operator), re-reads the state, skips a host already compliant, refuses one whose
    state changed since the plan, sends the commands and confirms the result. Every command is
    written to the audit trail before and after it is sent. The apply record (default:
    PLAN.record.json) is what `mml-tool rollback` takes: it is written before each command and
    after each step, and re-applying the plan adds to it, so it holds every host any run changed.

    \b
    Examples:
      mml-tool apply plan.json -i inv.yaml
      mml-tool apply plan.json -i inv.yaml --yes --report junit:out/apply.xml,md:out/apply.md

    Exit: 0 every host reached the planned state, 1 otherwise, 2 usage error (nothing sent).
    """
    from dataclasses import replace

    from mml_tool.change import apply_plan, check_plan, load_plan, plan_sha256
    from mml_tool.policy import load_policy

    targets = _report_targets(report_spec)
    inventory = _load_inventory(inventory_path)
    policy = load_policy(policy_path)
    the_plan = load_plan(
        plan_path, max_age=timedelta(hours=max_age), signing_key=inventory.plan_signing_key
    )
    check_plan(the_plan, policy, inventory, str(plan_path))  # before the operator is asked
    _show_plan(the_plan, plan_path)
    if not the_plan.steps:
        _write_change_reports(targets, "apply", None, inventory_path, the_plan)
        return
    record_path = record_path or plan_path.with_suffix(".record.json")
    journal = _journal(
        record_path,
        plan_sha256(the_plan),
        "apply",
        True,
        "nothing was sent; give another --record PATH",
    )
    context = _change_context(
        ctx, inventory, the_plan.change_id, audit_path, policy, hosts=the_plan.hosts
    )
    _confirm(f"Apply these commands to {len(the_plan.hosts)} host(s)?", yes)
    record = apply_plan(
        the_plan,
        replace(context, journal=journal),
        workers=workers,
        progress=BarProgress(f"applying to {len(the_plan.hosts)} host(s)"),
    )
    _print_record(record)
    _echo(f"apply record: {journal.written_to}")
    _write_change_reports(targets, "apply", record, inventory_path, the_plan)
    sys.exit(EXIT_OK if record.ok else EXIT_ERROR)


def _journal(path: Path, plan_digest: str, action: str, accumulate: bool, hint: str) -> Any:
    """A record journal, checked before anything is connected: exit 2 when the file belongs to
    another plan, exists where a new one is needed, or its folder cannot take it."""
    from mml_tool.errors import RecordError
    from mml_tool.record import RecordJournal

    journal = RecordJournal(
        path,
        plan_sha256=plan_digest,
        action=action,
        accumulate=accumulate,
        # soft_wrap: a record printed as JSON must stay valid JSON (no line breaks added)
        say=lambda line: err_console.print(line, highlight=False, markup=False, soft_wrap=True),
        hint=hint,
    )
    try:
        journal.check()
    except RecordError as exc:
        raise click.UsageError(str(exc)) from None
    return journal


def _write_change_reports(
    targets: list[tuple[str, Path]],
    command: str,
    record: Any,
    inventory_path: Path,
    the_plan: Any,
) -> None:
    """One report entry (and JUnit testcase) per (host, step) of the record; with no record
    (nothing to do) a report that says so, never an empty success."""
    if not targets:
        return
    from mml_tool.audit import operator_name
    from mml_tool.change import now_iso
    from mml_tool.report import Outcome, Report, RunInfo, write_reports

    now = now_iso()
    info = RunInfo(
        command=command,
        tool_version=__version__,
        policy_name=getattr(the_plan, "policy_name", "") or "",
        policy_sha256=getattr(the_plan, "policy_sha256", "") or "",
        change_id=getattr(record or the_plan, "change_id", None) or None,
        inventory=str(inventory_path),
        started=record.started if record is not None else now,
        finished=record.finished if record is not None else now,
        operator=operator_name(),
    )
    if record is None:
        done = Outcome("done", EXIT_OK, f"nothing to {command}: the input holds no step")
        write_reports(Report(info, [], outcome=done), targets)
        return
    write_reports(Report(info, [], changes=[r.to_dict() for r in record.results]), targets)


@cli.command()
@click.argument("record_path_in", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@inventory_option
@policy_option
@yes_option
@audit_option
@record_option
@workers_option
@report_option
@click.pass_context
def rollback(
    ctx: click.Context,
    record_path_in: Path,
    inventory_path: Path,
    policy_path: Path | None,
    yes: bool,
    audit_path: Path | None,
    record_path: Path | None,
    workers: int,
    report_spec: str | None,
) -> None:
    """Undo what an apply changed, with the same care (lock, re-read, drift refusal, audit).

    Only steps the apply record shows as changed (or unknown: sent without a clean answer) are
    rolled back, to the value read before the change, and only with the command derived from
    the rule of the policy the plan was made with (-p, default the built-in one). It shows the
    commands and asks first, like apply (--yes to skip). The rollback record (default:
    RECORD.rollback.json, or RECORD.rollback.2.json, ... when that exists) is written ahead of
    every command like the apply record; an existing --record file is never replaced.

    \b
    Examples:
      mml-tool rollback plan.record.json -i inv.yaml
      mml-tool rollback plan.record.json -i inv.yaml --yes --report junit:out/rollback.xml

    Exit: 0 every step rolled back, 1 otherwise, 2 usage error (nothing sent).
    """
    from dataclasses import replace

    from mml_tool.change import check_record, load_record, rollback_record, rollback_steps
    from mml_tool.policy import load_policy
    from mml_tool.record import fresh_path

    targets = _report_targets(report_spec)
    inventory = _load_inventory(inventory_path)
    policy = load_policy(policy_path)
    record = load_record(record_path_in)
    check_record(record, policy, inventory, str(record_path_in))
    steps = rollback_steps(record)
    if not steps:
        _echo("Nothing to roll back: the record shows no change.")
        _write_change_reports(targets, "rollback", None, inventory_path, None)
        return
    for step in steps:
        _echo(
            f"{step.host}  {step.parameter} bit {step.bit} {step.start_value} -> "
            f"{step.target_value}:  {' '.join(step.commands)}"
        )
    if not record.finished:
        err_console.print(
            f"note: {record_path_in} is the record of a run that did not finish (killed?); "
            "steps in flight are rolled back after a fresh read",
            highlight=False,
            markup=False,
        )
    out = record_path or fresh_path(
        record_path_in.with_name(record_path_in.stem + ".rollback.json")
    )
    journal = _journal(
        out,
        record.plan_sha256,
        "rollback",
        False,
        "nothing was sent; give another --record PATH, or leave --record out for a fresh name",
    )
    context = _change_context(
        ctx, inventory, record.change_id, audit_path, policy, hosts=[s.host for s in steps]
    )
    _confirm(f"Roll back {len(steps)} step(s)?", yes)
    result = rollback_record(record, replace(context, journal=journal), workers=workers)
    _print_record(result)
    _echo(f"rollback record: {journal.written_to}")
    _write_change_reports(targets, "rollback", result, inventory_path, None)
    sys.exit(EXIT_OK if result.ok else EXIT_ERROR)


# -- parse / exec -------------------------------------------------------------------------------


def _response_json(response: Any) -> dict[str, Any]:
    return {
        "host": response.host,
        "command": response.command,
        "retcode": response.retcode,
        "message": response.message,
        "elapsed": round(response.elapsed, 3),
        "reports": [
            {
                "ne": r.ne,
                "timestamp": r.timestamp,
                "serial": r.serial,
                "retcode": r.retcode,
                "message": r.message,
                "continued": r.continued,
                "blocks": [
                    {"title": b.title, "count": b.count, "layout": b.layout, "records": b.records}
                    for b in r.blocks
                ],
            }
            for r in response.reports
        ],
    }


encoding_option = click.option(
    "--encoding",
    type=click.Choice(["auto", "utf-8", "gb18030"], case_sensitive=False),
    default="auto",
    show_default=True,
    help="Text encoding of the reply: auto reads UTF-8, or GB18030 (Chinese-language elements) "
    "when the bytes are not valid UTF-8.",
)


@cli.command()
@click.option(
    "--command",
    "command_text",
    default=None,
    help='The command the reply answers, e.g. "LST SFP: ID=P978;" (picks the template). '
    "Only needed when the reply has no %%echo%% line.",
)
@click.option("--platform", default="huawei_uap9600", show_default=True)
@encoding_option
@click.option("--json", "as_json", is_flag=True, help="Print records as JSON.")
@click.argument("file", type=click.File("rb"))
@click.pass_context
def parse(
    ctx: click.Context,
    command_text: str | None,
    platform: str,
    encoding: str,
    as_json: bool,
    file: Any,
) -> None:
    """Parse a captured reply offline with the TextFSM templates (FILE may be - for stdin).

    \b
    Example:  mml-tool parse lst_sfp.raw
              mml-tool --templates my-templates parse --encoding gb18030 reply.txt
    The way to develop and check a template: capture what your UAP9600 prints (mml-tool
    capture), run this, and when it fails it names the template and the first line it could
    not read. The command comes from the reply's echo (%%LST SFP: ID=P978;%%).
    Exit: 0 read, 1 the reply failed (RETCODE != 0) or could not be read, 2 usage.
    """
    from mml_tool.capture import parse_capture, read_capture

    name = getattr(file, "name", "-")
    try:
        text, _ = read_capture(file, name, encoding.lower())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        parsed = parse_capture(text, command_text, platform, _templates(ctx))
    except ConfigError as exc:  # no echo and no --command, or the two disagree
        fail(f"{name}: {exc}", EXIT_USAGE)
    except MmlToolError as exc:
        fail(f"{name}: {exc}", EXIT_ERROR)
    records = parsed.records
    if as_json:
        _print_json(records)
        return
    from rich.table import Table

    table = Table(*(records[0].keys() if records else ["(no records)"]))
    for record in records:
        table.add_row(*record.values())
    out_console().print(table)


@cli.command()
@inventory_option
@click.argument("host_name", metavar="HOST")
@click.argument("command_text", metavar="COMMAND")
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("captures"),
    show_default=True,
    help="Folder for the sample: <platform>/<verb>_<object>/<host>_<time>.raw and .yml.",
)
@click.option(
    "--anonymize",
    is_flag=True,
    help="Replace host and element names and IP addresses in the sample.",
)
@click.pass_context
def capture(
    ctx: click.Context,
    inventory_path: Path,
    host_name: str,
    command_text: str,
    out_dir: Path,
    anonymize: bool,
) -> None:
    """Run one read-only command and save its reply as a template test sample.

    \b
    Example:  mml-tool capture -i inv.yaml uap-1 "LST SFP: ID=P978;" -o captures --anonymize
    Writes the reply's bytes (.raw, passwords masked), what the current templates make of it
    (.yml: the records, or the parse error and its line) and the command and platform, laid
    out like tests/templates. Then write or adjust a template in your own folder (with its
    own index), check it with `mml-tool --templates DIR parse FILE.raw`, and run with
    --templates DIR. Exit: 0 read by the templates, 1 written but not read (or no reply).
    """
    from mml_tool.capture import capture as run_capture
    from mml_tool.mml.command import MmlCommand

    try:
        command = MmlCommand.parse(command_text)
        if not command.is_read_only:
            raise ConfigError(
                f"capture runs read-only commands only (LST, DSP), not {command.verb}: "
                "nothing was sent"
            )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    inventory = _load_inventory(inventory_path)
    hosts = _select(inventory, host_name)
    if len(hosts) != 1:
        raise click.UsageError(f"HOST must name one host; {host_name!r} matches {len(hosts)}")
    host = inventory.with_secrets(hosts=[hosts[0].name]).hosts[hosts[0].name]
    result = run_capture(
        host, command, out_dir, anonymized=anonymize, template_dirs=_templates(ctx)
    )
    click.echo(f"reply:   {result.raw_path}")
    click.echo(f"records: {result.yml_path}")
    if result.error is not None:
        fail(
            f"the templates could not read the reply: {result.error}. The sample is written: "
            "copy it into your template folder and adapt the template (see README, "
            '"When the device prints something new").'
        )
    click.echo(f"{len(result.records or [])} record(s) read by the current templates")


@cli.command(name="exec")
@inventory_option
@click.argument("host_name", metavar="HOST")
@click.argument("command_text", metavar="COMMAND")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed frame as JSON.")
@click.option(
    "--allow-write", is_flag=True, help="Allow MOD/ADD/RMV/SET (asks for confirmation; audited)."
)
@yes_option
@audit_option
@click.option(
    "--transcript",
    "transcript_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the (masked) session transcript here.",
)
def exec_command(
    inventory_path: Path,
    host_name: str,
    command_text: str,
    as_json: bool,
    allow_write: bool,
    yes: bool,
    audit_path: Path | None,
    transcript_path: Path | None,
) -> None:
    """Run one MML command on one host and print the reply.

    \b
    Example:  mml-tool exec -i inv.yaml uap-1 "LST SFP: ID=P978;"
    Read-only verbs (LST, DSP) only, unless --allow-write is given; then the command is shown,
    confirmed and written to the audit trail.
    Exit: 0 RETCODE = 0, 1 otherwise.
    """
    import contextlib
    import time

    from mml_tool.audit import (
        AuditRecord,
        AuditTrail,
        default_audit_path,
        operator_name,
        utc_now,
    )
    from mml_tool.locks import default_lock_dir, host_lock
    from mml_tool.mml.command import MmlCommand
    from mml_tool.mml.session import MmlSession, Transcript

    try:
        command = MmlCommand.parse(command_text)
    except ConfigError as exc:  # the COMMAND argument is a bad value: usage, nothing sent
        fail(str(exc), EXIT_USAGE)
    inventory = _load_inventory(inventory_path)
    host = _select(inventory, host_name)
    if len(host) != 1:
        raise click.UsageError(f"HOST must name one host; {host_name!r} matches {len(host)}")
    host = [inventory.with_secrets(hosts=[host[0].name]).hosts[host[0].name]]
    trail = None
    if not command.is_read_only:
        if not allow_write:
            fail(
                f"{command.verb} changes the element; exec refuses it without --allow-write "
                "(prefer plan/apply, which re-read, lock and roll back).",
                EXIT_USAGE,
            )
        click.echo(f"{host[0].name}: {command.masked()}")
        _confirm("Send this command?", yes)
        trail = AuditTrail(audit_path or default_audit_path())
    transcript = Transcript() if transcript_path else None
    # A write takes the host's lock like apply does: never two changes on one host at once.
    lock = (
        contextlib.nullcontext()
        if trail is None
        else host_lock(inventory.lock_dir or default_lock_dir(), host[0].name, action="exec")
    )
    try:
        with lock, MmlSession(host[0], transcript=transcript) as session:
            if trail is not None:

                def audit(
                    outcome: str,
                    retcode: int | None = None,
                    message: str = "",
                    elapsed: float = 0.0,
                ) -> None:
                    trail.append(
                        AuditRecord(
                            time=utc_now(),
                            operator=operator_name(),
                            change_id=None,
                            host=host[0].name,
                            command=command.masked(),
                            retcode=retcode,
                            message=message,
                            elapsed=elapsed,
                            outcome=outcome,
                            action="exec",
                        )
                    )

                audit("sending")
            started = time.monotonic()
            try:
                response = session.run(command)
            except MmlToolError as exc:
                if trail is not None:  # the command may have taken effect: say so
                    audit("unknown", None, str(exc), round(time.monotonic() - started, 3))
                raise
            if trail is not None:
                audit(
                    "ok" if response.ok else "failed",
                    response.retcode,
                    response.message,
                    round(time.monotonic() - started, 3),
                )
    finally:
        # Written on failure too: that is when the transcript is needed most.
        if transcript is not None and transcript_path is not None:
            transcript.write(transcript_path)
    if as_json:
        _print_json(_response_json(response))
    else:
        click.echo(response.raw.rstrip())
    sys.exit(EXIT_OK if response.ok else EXIT_ERROR)


# -- verify / run / demo / lab ------------------------------------------------------------------


def _directions(value: str) -> tuple[int, ...]:
    try:
        directions = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give numbers 1-4, comma-separated (1,2)") from None
    if not directions or any(d not in (1, 2, 3, 4) for d in directions):
        raise click.BadParameter(
            f"{value!r}: 1 user receives only, 2 user sends only, 3 both, 4 no direction set"
        )
    return directions


directions_option = click.option(
    "--directions",
    default="1,2",
    show_default=True,
    callback=lambda ctx, param, value: _directions(value),
    help="videoDirection values to prove: 1 receive-only, 2 send-only, 3 both, 4 unset.",
)


@cli.command()
@inventory_option
@click.option(
    "--gateway",
    "gateway_name",
    default=None,
    help="Gateway name from the inventory's gateways: (default: the only one).",
)
@click.option(
    "--host",
    "host_name",
    default=None,
    help="Verify through the gateway this UAP host names (its `gateway:` in the inventory).",
)
@click.option("--agent", "agent_id", default=None, help="Video agent ID (overrides inventory).")
@click.option("--called", default=None, help="Number to call out to (overrides inventory).")
@directions_option
@click.option(
    "--wait-incoming",
    is_flag=True,
    help="Wait for a call to ring on the agent and answer it, instead of calling out.",
)
@click.option(
    "--ring-timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="With --wait-incoming: seconds to wait for the call to ring.",
)
@click.option(
    "--force-login",
    is_flag=True,
    help="Force sign-in when the agent is already signed in elsewhere.",
)
@report_option
def verify(
    inventory_path: Path,
    gateway_name: str | None,
    host_name: str | None,
    agent_id: str | None,
    called: str | None,
    directions: tuple[int, ...],
    wait_incoming: bool,
    force_login: bool,
    ring_timeout: float,
    report_spec: str | None,
) -> None:
    """Prove one-way video end to end through the CC-Gateway REST API.

    Signs in the video agent, gets a voice call, switches it to video with each
    videoDirection (POST .../mediaswitch?mediaType=3&videoDirection=N), requires retcode "0"
    and an AgentEvent_MediaSwith with reason 0, switches back to audio, then releases the call
    and signs out, whatever failed.

    \b
    Examples:
      mml-tool verify -i inv.yaml --host uap-1
      mml-tool verify -i inv.yaml --gateway gw-1 --directions 1,2 --report junit:out/verify.xml

    Exit: 0 pass, 101 verification failed, 1 could not run, 2 usage error.
    """
    from dataclasses import replace

    from mml_tool.audit import operator_name
    from mml_tool.change import now_iso
    from mml_tool.gateway.verify import verify_gateway

    targets = _report_targets(report_spec)
    inventory = _load_inventory(inventory_path)
    if host_name is not None:
        if gateway_name is not None:
            raise click.UsageError("give --gateway or --host, not both")
        if host_name not in inventory.hosts:
            raise click.UsageError(f"no host {host_name!r} in {inventory_path}")
        gateway_name = inventory.hosts[host_name].gateway
        if gateway_name is None:
            raise click.UsageError(f"host {host_name!r} names no `gateway:` in {inventory_path}")
    if gateway_name is None:
        if len(inventory.gateways) != 1:
            raise click.UsageError(
                f"the inventory has {len(inventory.gateways)} gateways "
                f"({', '.join(inventory.gateways) or 'none'}): pick one with --gateway NAME "
                "or --host UAP-HOST"
            )
        gateway_name = next(iter(inventory.gateways))
    if gateway_name not in inventory.gateways:
        raise click.UsageError(f"no gateway {gateway_name!r} in {inventory_path}")
    gateway = inventory.with_secrets(gateways=[gateway_name]).gateways[gateway_name]
    overrides = {k: v for k, v in (("agent_id", agent_id), ("called", called)) if v}
    gateway = replace(gateway, **overrides)
    console = out_console()

    def show(step: Any) -> None:
        mark = "[green]ok[/]" if step.ok else "[red]FAILED[/]"
        console.print(f"{mark:<16} {step.name}  ({step.elapsed:.2f} s)", highlight=False)

    started = now_iso()
    result = verify_gateway(
        gateway,
        directions=directions,
        wait_incoming=wait_incoming,
        force_sign_in=force_login,
        ring_timeout=ring_timeout,
        on_step=show,
    )
    for direction in result.directions:
        console.print(
            f"videoDirection {direction.direction}: "
            f"{'pass' if direction.ok else 'FAIL'}  {direction.reason}",
            highlight=False,
            markup=False,
        )
    if result.error:
        err_console.print(f"could not verify: {result.error}", highlight=False, markup=False)
    if result.cleanup_error:
        err_console.print(f"cleanup: {result.cleanup_error}", highlight=False, markup=False)
    console.print(f"verification: [bold]{result.status}[/]")
    if targets:
        from mml_tool.report import Report, RunInfo, write_reports

        info = RunInfo(
            "verify",
            __version__,
            "",
            "",
            None,
            str(inventory_path),
            started,
            now_iso(),
            operator=operator_name(),
        )
        write_reports(Report(info, [], verification=result.to_dict()), targets)
    sys.exit({"pass": EXIT_OK, "fail": EXIT_VERIFY_FAILED}.get(result.status, EXIT_ERROR))


@cli.command()
@inventory_option
@policy_option
@limit_option
@workers_option
@click.option(
    "--change-id",
    required=True,
    callback=_change_id,
    help="Change ticket ID (plan, audit, evidence folder name): letters, digits, . _ - + # @.",
)
@yes_option
@click.option(
    "--evidence",
    "evidence_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("evidence"),
    show_default=True,
    help="Folder for the evidence bundle (a sub-folder per change ID).",
)
@click.option("--no-rollback", is_flag=True, help="Keep the change even if verification fails.")
@directions_option
@audit_option
@click.pass_context
def run(
    ctx: click.Context,
    inventory_path: Path,
    policy_path: Path | None,
    limit: str | None,
    workers: int,
    change_id: str,
    yes: bool,
    evidence_root: Path,
    no_rollback: bool,
    directions: tuple[int, ...],
    audit_path: Path | None,
) -> None:
    """The whole change: check, plan (shown, confirmed), apply, verify, rollback on failure.

    Writes an evidence bundle for the ticket under EVIDENCE/CHANGE-ID: summary.md, report.json,
    plan.json, apply-record.json, rollback-record.json, verify-*.json, transcripts/. When an
    earlier run left files there they are kept, and this run writes EVIDENCE/CHANGE-ID.2 (.3...).

    If a host cannot be read, nothing is changed. If apply fails on some hosts, nothing is
    verified and the hosts that did change keep the change (they are compliant); undo them with
    `mml-tool rollback EVIDENCE/CHANGE-ID/apply-record.json` if needed.

    \b
    Examples:
      mml-tool run -i inv.yaml --change-id CHG42 --limit uap-1 --evidence evidence/
      mml-tool run -i inv.yaml --change-id CHG43 --yes --directions 1,2

    Exit: 0 done and verified, 1 could not decide, not approved or nothing checked,
    2 usage error, 101 verification failed (rolled back unless --no-rollback).
    """
    from mml_tool.audit import AuditTrail, default_audit_path
    from mml_tool.change import default_lock_dir
    from mml_tool.change_id import evidence_folder
    from mml_tool.policy import load_policy
    from mml_tool.record import fresh_folder
    from mml_tool.workflow import gateways_for, run_change

    evidence = evidence_folder(evidence_root, change_id)
    policy = load_policy(policy_path)
    inventory = _load_inventory(inventory_path)
    _ = inventory.plan_signing_key  # a key set but unreadable: refused before connecting
    hosts = _select(inventory, limit)
    _waiver_warnings(inventory, policy)
    nothing = _nothing_checked(inventory, policy, hosts, limit)
    if nothing:
        fail(f"nothing was checked: {nothing}", EXIT_ERROR)
    # Both kinds of secret, for the selection only, all missing ones named at once.
    inventory = inventory.with_secrets(
        hosts=[h.name for h in hosts], gateways=gateways_for(inventory, hosts)
    )
    hosts = [inventory.hosts[h.name] for h in hosts]
    try:
        evidence = fresh_folder(evidence_root, evidence.name)
    except OSError as exc:
        raise click.UsageError(
            f"cannot create the evidence folder under {evidence_root} ({exc.strerror or exc}): "
            "give --evidence a writable folder"
        ) from None
    if evidence != evidence_root / change_id:
        err_console.print(
            f"note: {evidence_root / change_id} holds an earlier run's evidence, which is kept; "
            f"this run's goes to {evidence}",
            highlight=False,
            markup=False,
        )

    def approve(the_plan: Any) -> bool:
        _show_plan(the_plan, evidence / "plan.json")
        if yes:
            return True
        if not sys.stdin.isatty():
            fail("approval needed and there is no terminal: re-run with --yes.")
        return bool(click.confirm("Apply this plan?", default=False))

    outcome = run_change(
        inventory,
        policy,
        hosts,
        change_id=change_id,
        evidence=evidence,
        approve=approve,
        audit=AuditTrail(audit_path or default_audit_path()),
        lock_dir=inventory.lock_dir or default_lock_dir(),
        rollback_on_failure=not no_rollback,
        directions=directions,
        template_dirs=_templates(ctx),
        workers=workers,
        say=lambda line: out_console().print(line, highlight=False, markup=False),
    )
    for note in outcome.notes:  # soft_wrap: a long path stays whole, to copy and paste
        err_console.print(note, highlight=False, markup=False, soft_wrap=True)
    _echo(f"evidence: {evidence}")
    sys.exit(outcome.exit_code)


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the lab, audit trail and evidence go (default: a new temp folder).",
)
@click.option("--nodes", type=click.IntRange(1, 50), default=3, show_default=True)
def demo(workdir: Path | None, nodes: int) -> None:
    """The whole story on built-in simulators: no device, no arguments needed.

    Starts UAP9600 simulators (P978 bit 0 = 1, so one-way video is refused) and a CC-Gateway,
    shows verification failing, runs the change, shows verification passing, and prints where
    the evidence bundle is.

    \b
    Example:
      mml-tool demo --workdir /tmp/mml-demo
    """
    from mml_tool.demo import run_demo

    sys.exit(run_demo(workdir, nodes=nodes))


@cli.command()
@click.option(
    "--nodes",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="How many UAP9600 nodes (ignored with --config).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="LAB.yaml: per-node layout, language, parameters and faults; the gateway's event shape.",
)
@click.option(
    "--port",
    "base_port",
    type=click.IntRange(0, 65000),
    default=0,
    show_default=True,
    help="First port (SSH, then TCP ports follow); 0 = any free ports.",
)
@click.option(
    "--write-inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an inventory for the lab here (credentials go to lab.env beside it).",
)
@click.option("--no-gateway", is_flag=True, help="UAP nodes only, no CC-Gateway simulator.")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Serve the nodes from this many worker processes (blocks of nodes), for large fleets.",
)
def lab(
    nodes: int,
    config_path: Path | None,
    base_port: int,
    inventory_path: Path | None,
    no_gateway: bool,
    processes: int,
) -> None:
    """Run the simulators in the foreground until Ctrl-C: UAP9600 nodes + a CC-Gateway.

    Prints one line when ready, with the ports and the inventory path; `source lab.env` (beside
    the inventory) sets the lab credentials for the other commands. Stop it with Ctrl-C (or
    `kill %1` when started in the background with `&`).

    \b
    Example:
      mml-tool lab --config inventories/lab-config.yaml --write-inventory lab/inventory.yaml
    """
    from mml_tool.lab.lab import run_lab_foreground

    sys.exit(
        run_lab_foreground(
            nodes=nodes,
            config=config_path,
            base_port=base_port,
            inventory=inventory_path,
            with_gateway=not no_gateway,
            processes=processes,
        )
    )


def _verbose_after_subcommand(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        _setup_logging(value)


# `mml-tool check -v ...` as well as `mml-tool -v check ...`: people add -v at the end.
for _command in cli.commands.values():
    _command.params.append(
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_verbose_after_subcommand,
            help="More logging on stderr (-vv: debug); also accepted before the command.",
        )
    )
