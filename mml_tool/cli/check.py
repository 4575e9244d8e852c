"""`check` and `plan`: read the fleet, judge it, and plan the change for what is not compliant."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click
from rich.markup import escape

import mml_tool as mt
from mml_tool._io import now_iso, probe_folder
from mml_tool.change import Plan, load_plan, save_plan
from mml_tool.cli._common import (
    change_id_value,
    inventory_option,
    limit_option,
    nothing_checked,
    operator,
    policy_option,
    read_inventory,
    read_policy,
    report_option,
    report_targets,
    run_info,
    select_hosts,
    template_dirs,
    waiver_warnings,
    workers_option,
)
from mml_tool.cli._console import EXIT_ERROR, echo, err_console, fail, out_console
from mml_tool.cli._progress import BarProgress
from mml_tool.cli._render import show_plan
from mml_tool.history import hooks as history_hooks
from mml_tool.inventory import Inventory
from mml_tool.policy import Policy
from mml_tool.report import Outcome, Report, render_table, write_reports
from mml_tool.results import CheckResult, FindingStatus
from mml_tool.secret import Secret


def _check(
    ctx: click.Context,
    inventory_path: Path,
    policy_path: Path | None,
    limit: str | None,
    workers: int,
    signing: bool = False,
) -> _Checked:
    """Everything wrong with the command line is found before any host is connected to."""
    policy = read_policy(policy_path)
    inventory = read_inventory(inventory_path)
    if signing:
        _ = inventory.plan_signing_key  # a key set but unreadable: refused before connecting
    hosts = select_hosts(inventory, limit)
    warnings = waiver_warnings(inventory, policy)
    nothing = nothing_checked(inventory, policy, hosts, limit)
    if nothing:
        empty = CheckResult([], inventory, policy, started=now_iso(), finished=now_iso())
        return _Checked(inventory, policy, empty, warnings, f"nothing was checked: {nothing}")
    result = mt.check(
        inventory,
        policy,
        limit=limit,
        workers=workers,
        template_dirs=template_dirs(ctx),
        progress=BarProgress(f"checking {len(hosts)} host(s)", exit_on_second_interrupt=True),
    )
    return _Checked(result.inventory or inventory, policy, result, warnings)


@dataclass
class _Checked:
    inventory: Inventory  # with the secrets of the hosts checked
    policy: Policy
    result: CheckResult
    warnings: list[str]
    nothing: str = ""  # why nothing was checked


@click.command()
@inventory_option
@policy_option
@limit_option
@workers_option
@report_option
@history_hooks.history_options
@history_hooks.metrics_option
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
    targets = report_targets(report_spec)
    done = _check(ctx, inventory_path, policy_path, limit, workers)
    outcome = Outcome("nothing checked", EXIT_ERROR, done.nothing) if done.nothing else None
    report = Report(
        run_info(
            "check",
            inventory_path,
            done.result.started,
            policy_name=done.policy.name,
            policy_sha256=done.policy.sha256,
        ),
        done.result.findings,
        warnings=done.warnings,
        outcome=outcome,
    )
    report.since_last = history_hooks.after_check(report, inventory_path)
    render_table(report, out_console())
    history_hooks.show_since_last(report.since_last, out_console())
    write_reports(report, targets)
    if done.nothing:
        fail(done.nothing, EXIT_ERROR)
    sys.exit(done.result.exit_code)


@click.command()
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
    callback=change_id_value,
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
    if show_path is not None:
        show_plan(load_plan(show_path, max_age=None), show_path)
        return
    if output is None or inventory_path is None:
        raise click.UsageError("to make a plan give -i INVENTORY and -o PLAN.json")
    _plan_output_usable(output, force)
    done = _check(ctx, inventory_path, policy_path, limit, workers, signing=True)
    if done.nothing:
        fail(done.nothing, EXIT_ERROR)
    undecided = [f for f in done.result.findings if f.status == FindingStatus.ERROR]
    new_plan = mt.plan(done.result, change_id=change_id or "", operator=operator(ctx))
    key = done.inventory.plan_signing_key
    digest = _write_plan(new_plan, output, force, key)
    show_plan(new_plan, output)
    signed = f", signed with the plan_signing_key of {inventory_path}" if key else ""
    echo(f"plan written: {output} (sha256 {digest[:16]}...{signed})")
    for finding in undecided:
        what = f"{finding.host} {finding.control_id}: {finding.error}"
        err_console.print(
            f"[yellow]not planned[/] {escape(what)}",
            highlight=False,
        )
    planned = {(s.host, s.control_id) for s in new_plan.steps}
    for finding in done.result.findings:  # non-compliant, but the policy names no change
        if (
            finding.status == FindingStatus.FAIL
            and (finding.host, finding.control_id) not in planned
        ):
            what = f"{finding.host} {finding.control_id}: {finding.actual}"
            what += " (check-only: the policy names no remediation)"
            err_console.print(f"[yellow]not planned[/] {escape(what)}", highlight=False)
    if undecided:
        sys.exit(EXIT_ERROR)


def _plan_output_usable(output: Path, force: bool) -> None:
    """Before anything is connected: never replace an earlier plan silently, and find a folder
    that cannot take the plan (read-only, full)."""
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


def _write_plan(new_plan: Plan, output: Path, force: bool, key: Secret | None) -> str:
    try:
        return str(save_plan(new_plan, output, signing_key=key, overwrite=force))
    except FileExistsError:
        fail(f"{output} appeared meanwhile and is not replaced: give another -o path, or --force")
    except OSError as exc:
        fail(f"cannot write the plan {output} ({exc.strerror or exc}): nothing was changed")
