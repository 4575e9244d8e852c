"""What several commands share: options, inventory loading, selection, prompts, run info."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from mml_tool import __version__
from mml_tool._io import now_iso
from mml_tool.cli._console import EXIT_USAGE, err_console, fail, stdout_taken
from mml_tool.cli._context import cli_context
from mml_tool.errors import ConfigError, InventoryError, PolicyError
from mml_tool.fleet import DEFAULT_WORKERS
from mml_tool.inventory import HostConfig, Inventory, load_inventory
from mml_tool.policy import Policy, load_policy
from mml_tool.report import RunInfo, parse_report_targets, to_stdout


def report_targets(spec: str | None) -> list[tuple[str, Path]]:
    """Parse --report before anything is connected to or sent: a bad spec is a usage error."""
    if spec is None:
        return []
    try:
        targets = parse_report_targets(spec)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if to_stdout(targets):
        cli_context().stdout_taken = True
    return targets


def select_hosts(inventory: Inventory, limit: str | None) -> list[HostConfig]:
    """The hosts --limit names; one it names that does not exist is a usage error."""
    try:
        return list(inventory.select(limit))
    except InventoryError as exc:
        fail(str(exc), EXIT_USAGE)


def nothing_checked(
    inventory: Inventory, policy: Policy, hosts: list[HostConfig], limit: str | None
) -> str:
    """Why no control would be evaluated on ``hosts``, or "" when some would."""
    if not inventory.hosts:
        return f"the inventory {inventory.path} has no hosts"
    if not hosts:
        return f"--limit {limit!r} selects no host"
    if not any(policy.controls_for(h) for h in hosts):
        return f"no control of policy {policy.name!r} targets the selected host(s)"
    return ""


def waiver_warnings(inventory: Inventory, policy: Policy) -> list[str]:
    """A waiver for a host the inventory or a control the policy does not have waives
    nothing: say so, naming it."""
    controls = {c.id for c in policy.controls}
    warnings = [
        f"policy {policy.name!r}: the waiver of host {w.host!r} names control {w.control!r}, "
        f"which is not in the policy ({policy.path}): it waives nothing (a typo?)"
        for w in policy.waivers
        if w.control not in controls
    ]
    warnings += [
        f"policy {policy.name!r}: the waiver of control {w.control} names host {w.host!r}, "
        f"which is not in {inventory.path}: it waives nothing (a typo?)"
        for w in policy.waivers
        if w.host not in inventory.hosts
    ]
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    return warnings


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
    help="Hosts (or gateways being verified) worked on at once.",
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


def template_dirs(ctx: click.Context | None = None) -> list[Path]:
    return list(cli_context(ctx).template_dirs)


def operator(ctx: click.Context | None = None) -> str:
    """Who runs this: --operator / $MML_TOOL_OPERATOR, else the login name."""
    return cli_context(ctx).operator or getpass.getuser()


def read_inventory(path: Path) -> Inventory:
    """The inventory with no secret read yet: each command reads only those it uses
    (``Inventory.with_secrets``), so `check` never asks for the gateway's password."""
    inventory = load_inventory(path, prompt=prompt_secret, resolve_secrets=False)
    for warning in inventory.warnings:  # stderr: machine output on stdout stays clean
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    return inventory


def read_policy(path: Path | None) -> Policy:
    """The -p policy (None: the built-in one). A file that is not a valid policy is a usage
    error (exit 2), found before any host is connected to."""
    try:
        return load_policy(path)
    except PolicyError as exc:
        fail(str(exc), EXIT_USAGE)


def prompt_secret(label: str) -> str:
    if not sys.stdin.isatty():
        raise ConfigError(f"{label}: no terminal to prompt on; set the variable or use a file.")
    return str(click.prompt(label, hide_input=True, err=stdout_taken()))


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Refusing without a terminal: re-run with --yes to approve.")
    if not click.confirm(question, default=False, err=stdout_taken()):
        fail("not approved; nothing was sent.")


def print_json(body: object) -> None:
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


MAX_AGE_HELP = "Refuse a plan older than this many hours."


audit_option = click.option(
    "--audit",
    "audit_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="MML_TOOL_AUDIT",
    show_envvar=True,
    help="Audit trail (JSON lines). Default: audit.jsonl in the user's state folder "
    "($XDG_STATE_HOME/mml-tool, else ~/.local/state/mml-tool).",
)
lock_dir_option = click.option(
    "--lock-dir",
    "lock_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="MML_TOOL_LOCKS",
    show_envvar=True,
    help="Folder of the per-host locks, shared by every operator, when the inventory sets no "
    "lock_dir. Default: mml-tool in /run/lock, /var/lock or /tmp.",
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


def run_info(
    command: str,
    inventory_path: Path,
    started: str,
    *,
    policy_name: str = "",
    policy_sha256: str = "",
    change_id: str | None = None,
    finished: str | None = None,
) -> RunInfo:
    """The header of every report: one place that builds it."""
    return RunInfo(
        command=command,
        tool_version=__version__,
        policy_name=policy_name,
        policy_sha256=policy_sha256,
        change_id=change_id,
        inventory=str(inventory_path),
        started=started,
        finished=now_iso() if finished is None else finished,
        operator=operator(),
    )


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
