"""`plan`: check the fleet, then plan the change for what is not compliant."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click
from rich.markup import escape

import mml_tool as mt
from mml_tool._io import probe_folder
from mml_tool.change import Plan, load_plan, save_plan
from mml_tool.cli._changing import change_id_value
from mml_tool.cli._common import (
    limit_option,
    operator,
    policy_option,
    workers_option,
)
from mml_tool.cli._console import EXIT_ERROR, echo, err_console, fail
from mml_tool.cli._render import show_plan
from mml_tool.cli.check import _check
from mml_tool.policy import Finding
from mml_tool.results import FindingStatus
from mml_tool.secret import Secret


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
    for what in _not_planned(done.result.findings, new_plan):
        err_console.print(f"[yellow]not planned[/] {escape(what)}", highlight=False)
    if undecided:
        sys.exit(EXIT_ERROR)


def _not_planned(findings: Sequence[Finding], new_plan: Plan) -> list[str]:
    """The hosts and controls the plan leaves out: those not decided, then those found
    non-compliant for which the policy names no change."""
    planned = {(s.host, s.control_id) for s in new_plan.steps}
    lines = [
        f"{f.host} {f.control_id}: {f.error}" for f in findings if f.status == FindingStatus.ERROR
    ]
    lines += [
        f"{f.host} {f.control_id}: {f.actual} (check-only: the policy names no remediation)"
        for f in findings
        if f.status == FindingStatus.FAIL and (f.host, f.control_id) not in planned
    ]
    return lines


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
