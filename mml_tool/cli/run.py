"""`run`: the whole change for a ticket, with its evidence bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mml_tool.change import Plan
from mml_tool.change.record import fresh_folder
from mml_tool.change_id import evidence_folder
from mml_tool.cli._changing import audit_trail, change_id_value, lock_folder
from mml_tool.cli._common import (
    audit_option,
    directions_option,
    inventory_option,
    limit_option,
    lock_dir_option,
    nothing_checked,
    operator,
    policy_option,
    read_inventory,
    read_policy,
    select_hosts,
    template_dirs,
    waiver_warnings,
    workers_option,
    yes_option,
)
from mml_tool.cli._console import EXIT_ERROR, echo, err_console, fail, out_console
from mml_tool.cli._render import show_plan
from mml_tool.history import hooks as history_hooks
from mml_tool.workflow import gateways_for, run_change


@click.command()
@inventory_option
@policy_option
@limit_option
@workers_option
@click.option(
    "--change-id",
    required=True,
    callback=change_id_value,
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
@lock_dir_option
@history_hooks.history_options
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
    lock_dir: Path | None,
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
    evidence = evidence_folder(evidence_root, change_id)
    policy = read_policy(policy_path)
    inventory = read_inventory(inventory_path)
    _ = inventory.plan_signing_key  # a key set but unreadable: refused before connecting
    hosts = select_hosts(inventory, limit)
    waiver_warnings(inventory, policy)
    nothing = nothing_checked(inventory, policy, hosts, limit)
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

    def approve(the_plan: Plan) -> bool:
        show_plan(the_plan, evidence / "plan.json")
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
        audit=audit_trail(audit_path, inventory),
        lock_dir=lock_folder(inventory, lock_dir),
        rollback_on_failure=not no_rollback,
        directions=directions,
        template_dirs=template_dirs(ctx),
        workers=workers,
        say=lambda line: out_console().print(line, highlight=False, markup=False),
        operator=operator(ctx),
    )
    for note in outcome.notes:  # soft_wrap: a long path stays whole, to copy and paste
        err_console.print(note, highlight=False, markup=False, soft_wrap=True)
    echo(f"evidence: {evidence}")
    history_hooks.after_run(outcome, inventory_path, policy, change_id)
    sys.exit(outcome.exit_code)
