"""`check`: read the fleet and judge it (`plan` builds on it: cli/plan.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

import mml_tool as mt
from mml_tool._io import now_iso
from mml_tool.cli._common import (
    inventory_option,
    limit_option,
    nothing_checked,
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
from mml_tool.cli._console import EXIT_ERROR, fail, out_console
from mml_tool.cli._progress import BarProgress
from mml_tool.history import hooks as history_hooks
from mml_tool.inventory import Inventory
from mml_tool.policy import Policy
from mml_tool.report import Outcome, Report, render_table, write_reports
from mml_tool.results import CheckResult


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
    # In the report too: a scheduled job's reader may see only the report, not stderr.
    warnings = [*inventory.warnings, *waiver_warnings(inventory, policy)]
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
