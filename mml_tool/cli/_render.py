"""How plans and records look on the terminal (shared by plan, apply, rollback, run)."""

from __future__ import annotations

from pathlib import Path

from mml_tool.change import ApplyRecord, Plan
from mml_tool.cli._console import out_console
from mml_tool.report import natural_key


def show_plan(the_plan: Plan, path: Path) -> None:
    console = out_console()
    console.print(
        f"[bold]Plan[/] {path}  change {the_plan.change_id or '-'}  made by "
        f"{the_plan.created_by} at {the_plan.created}  policy {the_plan.policy_name}",
        highlight=False,
    )
    if not the_plan.steps:
        # Not "compliant": hosts that could not be read are not in the plan either.
        console.print("Nothing to change: the plan has no step.")
        return
    for step in sorted(the_plan.steps, key=lambda s: natural_key(s.host)):
        console.print(
            f"\n[bold]{step.host}[/]  {step.control_id}: {step.describe()} "
            f"{step.start_value} -> {step.target_value}",
            highlight=False,
        )
        for command in step.commands:
            console.print(f"  send     {command}", highlight=False, markup=False)
        for command in step.undo_commands:
            console.print(f"  rollback {command}", highlight=False, markup=False)


def print_record(record: ApplyRecord) -> None:
    console = out_console()
    styles = {"changed": "green", "already-compliant": "green", "skipped": "yellow"}
    for result in sorted(record.results, key=lambda r: natural_key(r.step.host)):
        style = styles.get(result.status, "red")
        line = (
            f"[{style}]{result.status:<17}[/] {result.step.host}  {result.step.control_id}  "
            f"{result.step.describe()}: {result.before} -> {result.after}"
        )
        console.print(line, highlight=False)
        if result.error:
            console.print(f"                  {result.error}", highlight=False, markup=False)
