"""`apply` and `rollback`: change hosts from a reviewed plan, undo from its record."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import click

import mml_tool as mt
from mml_tool._io import now_iso
from mml_tool.change import (
    ApplyRecord,
    Plan,
    check_plan,
    check_record,
    load_plan,
    load_record,
    plan_sha256,
    rollback_steps,
)
from mml_tool.change.record import RecordJournal, default_fallback_dirs, fresh_path
from mml_tool.cli._common import (
    MAX_AGE_HELP,
    audit_option,
    confirm,
    inventory_option,
    lock_dir_option,
    operator,
    policy_option,
    read_inventory,
    read_policy,
    record_option,
    report_option,
    report_targets,
    run_info,
    template_dirs,
    workers_option,
    yes_option,
)
from mml_tool.cli._console import EXIT_ERROR, EXIT_OK, EXIT_USAGE, echo, err_console, fail
from mml_tool.cli._progress import BarProgress
from mml_tool.cli._render import print_record, show_plan
from mml_tool.errors import RecordError
from mml_tool.history import hooks as history_hooks
from mml_tool.inventory import Inventory
from mml_tool.report import Outcome, Report, write_reports


def _secrets_first(inventory: Inventory, hosts: Iterable[str]) -> Inventory:
    """The inventory with the secrets of ``hosts`` read now, before the operator is asked
    (a missing one or a prompt comes first), and not read again by the library."""
    return replace(inventory.with_secrets(hosts=hosts), resolver=None)


@click.command()
@click.argument("plan_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@inventory_option
@policy_option
@yes_option
@click.option(
    "--max-age", type=click.FloatRange(min=0), default=24.0, show_default=True, help=MAX_AGE_HELP
)
@audit_option
@lock_dir_option
@record_option
@workers_option
@report_option
@history_hooks.history_options
@click.pass_context
def apply(
    ctx: click.Context,
    plan_path: Path,
    inventory_path: Path,
    policy_path: Path | None,
    yes: bool,
    max_age: float,
    audit_path: Path | None,
    lock_dir: Path | None,
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

    Exit: 0 every host reached the planned state, 1 otherwise, 2 a bad plan, inventory, policy
    or option (nothing sent).
    """
    targets = report_targets(report_spec)
    inventory = read_inventory(inventory_path)
    policy = read_policy(policy_path)
    the_plan = load_plan(
        plan_path, max_age=timedelta(hours=max_age), signing_key=inventory.plan_signing_key
    )
    check_plan(the_plan, policy, inventory, str(plan_path))  # before the operator is asked
    show_plan(the_plan, plan_path)
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
        inventory,
        audit_path,
    )
    inventory = _secrets_first(inventory, the_plan.hosts)
    confirm(f"Apply these commands to {len(the_plan.hosts)} host(s)?", yes)
    record = mt.apply(
        the_plan,
        inventory,
        audit=audit_path,
        record=journal,
        policy=policy,
        lock_dir=lock_dir,  # the inventory's lock_dir wins (docs/api.md)
        operator=operator(ctx),
        workers=workers,
        template_dirs=template_dirs(ctx),
        progress=BarProgress(f"applying to {len(the_plan.hosts)} host(s)"),
    )
    _finish("apply", record, journal, targets, inventory_path, the_plan, the_plan)


def _finish(
    command: str,
    record: ApplyRecord,
    journal: RecordJournal,
    targets: list[tuple[str, Path]],
    inventory_path: Path,
    the_plan: Plan | None,
    history_policy: object,
) -> None:
    """Show the record and where it was written, write the reports and the history entry,
    and exit 0 when every step went well, else 1."""
    print_record(record)
    echo(f"{command} record: {journal.written_to}")
    _write_change_reports(targets, command, record, inventory_path, the_plan)
    history_hooks.after_change(command, record, inventory_path, history_policy, int(not record.ok))
    sys.exit(EXIT_OK if record.ok else EXIT_ERROR)


def _journal(
    path: Path,
    plan_digest: str,
    action: str,
    accumulate: bool,
    hint: str,
    inventory: Inventory,
    audit_path: Path | None,
) -> RecordJournal:
    """A record journal, checked before anything is connected: exit 2 when the file belongs to
    another plan (or, with the inventory's plan_signing_key, is not signed with it), exists
    where a new one is needed, or its folder cannot take it. Its fallback folder is beside the
    audit trail (--audit)."""
    journal = RecordJournal(
        path,
        plan_sha256=plan_digest,
        action=action,
        accumulate=accumulate,
        fallback_dirs=default_fallback_dirs(inventory.audit_file(audit_path)),
        # soft_wrap: a record printed as JSON must stay valid JSON (no line breaks added)
        say=lambda line: err_console.print(line, highlight=False, markup=False, soft_wrap=True),
        hint=hint,
        signing_key=inventory.plan_signing_key,
    )
    try:
        journal.check()
    except RecordError as exc:
        raise click.UsageError(str(exc)) from None
    return journal


def _write_change_reports(
    targets: list[tuple[str, Path]],
    command: str,
    record: ApplyRecord | None,
    inventory_path: Path,
    the_plan: Plan | None,
) -> None:
    """One report entry (and JUnit testcase) per (host, step) of the record; with no record
    (nothing to do) a report that says so, never an empty success."""
    if not targets:
        return
    now = now_iso()
    info = run_info(
        command,
        inventory_path,
        record.started if record is not None else now,
        policy_name=getattr(the_plan, "policy_name", "") or "",
        policy_sha256=getattr(the_plan, "policy_sha256", "") or "",
        change_id=getattr(record or the_plan, "change_id", None) or None,
        finished=record.finished if record is not None else now,
    )
    if record is None:
        done = Outcome("done", EXIT_OK, f"nothing to {command}: the input holds no step")
        write_reports(Report(info, [], outcome=done), targets)
        return
    write_reports(Report(info, [], changes=[r.to_dict() for r in record.results]), targets)


@click.command()
@click.argument("record_path_in", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@inventory_option
@policy_option
@yes_option
@audit_option
@lock_dir_option
@record_option
@workers_option
@report_option
@history_hooks.history_options
@click.pass_context
def rollback(
    ctx: click.Context,
    record_path_in: Path,
    inventory_path: Path,
    policy_path: Path | None,
    yes: bool,
    audit_path: Path | None,
    lock_dir: Path | None,
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
    every command like the apply record; an existing --record file is never replaced. When the
    inventory sets plan_signing_key, records are signed with it, and a record that is not (or
    was changed since) is refused before anything is connected (exit 2).

    \b
    Examples:
      mml-tool rollback plan.record.json -i inv.yaml
      mml-tool rollback plan.record.json -i inv.yaml --yes --report junit:out/rollback.xml

    Exit: 0 every step rolled back, 1 otherwise, 2 a bad record, inventory, policy or option
    (nothing sent).
    """
    targets = report_targets(report_spec)
    inventory = read_inventory(inventory_path)
    policy = read_policy(policy_path)
    try:
        # Signed with the inventory's plan_signing_key, when it sets one: a re-hashed record
        # could make rollback set a compliant host back. Refused before anything is connected.
        record = load_record(record_path_in, signing_key=inventory.plan_signing_key)
    except RecordError as exc:
        fail(str(exc), EXIT_USAGE)
    check_record(record, policy, inventory, str(record_path_in))
    steps = rollback_steps(record)
    if not steps:
        echo("Nothing to roll back: the record shows no change.")
        _write_change_reports(targets, "rollback", None, inventory_path, None)
        return
    for step in steps:
        echo(
            f"{step.host}  {step.describe()} {step.start_value} -> "
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
        inventory,
        audit_path,
    )
    inventory = _secrets_first(inventory, [s.host for s in steps])
    confirm(f"Roll back {len(steps)} step(s)?", yes)
    result = mt.rollback(
        record,
        inventory,
        audit=audit_path,
        save_to=journal,
        policy=policy,
        lock_dir=lock_dir,
        operator=operator(ctx),
        workers=workers,
        template_dirs=template_dirs(ctx),
    )
    _finish("rollback", result, journal, targets, inventory_path, None, policy)
