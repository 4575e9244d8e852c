"""`snapshot` and `diff`: a golden element's software parameters, and the fleet against them."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

import mml_tool as mt
from mml_tool.baseline import parse_ignore
from mml_tool.cli._common import (
    inventory_option,
    limit_option,
    read_inventory,
    report_option,
    report_targets,
    run_info,
    select_hosts,
    template_dirs,
    workers_option,
)
from mml_tool.cli._console import EXIT_USAGE, echo, err_console, fail, out_console
from mml_tool.cli._progress import BarProgress
from mml_tool.errors import ConfigError
from mml_tool.exitcodes import ExitCode
from mml_tool.report import Outcome, Report, render_table, write_reports


@click.command()
@inventory_option
@click.argument("host_name", metavar="HOST")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Snapshot file to write. Default: snapshot-HOST.json in the current folder.",
)
@click.option("--force", is_flag=True, help="Replace the output file when it exists.")
@click.pass_context
def snapshot(
    ctx: click.Context, inventory_path: Path, host_name: str, output: Path | None, force: bool
) -> None:
    """Read every software parameter of one host into a snapshot file (a baseline).

    Runs `LST SFP:;` (all pages) on HOST and writes, as JSON, each parameter's value and bits,
    the reply as received, when and from where it was read; `mml-tool diff --baseline FILE`
    compares hosts with it. An existing file is never replaced unless --force is given.
    Read-only.

    \b
    Example:  mml-tool snapshot -i inv.yaml uap-1 -o golden.json
    Exit: 0 written, 1 the host could not be read, 2 usage error (nothing connected to).
    """
    inventory = read_inventory(inventory_path)
    hosts = select_hosts(inventory, host_name)
    if len(hosts) != 1:
        fail(f"HOST must name one host; {host_name!r} matches {len(hosts)}", EXIT_USAGE)
    name = hosts[0].name
    path = output if output is not None else Path(f"snapshot-{name}.json")
    if path.exists() and not force:
        fail(
            f"{path} exists: refusing to replace it; choose another file with -o, or replace it "
            "with --force (nothing was read)",
            EXIT_USAGE,
        )
    # A file where the folder should be is found now, not after the host was read.
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        fail(f"{path}: {folder} is not a folder: choose another file with -o", EXIT_USAGE)
    host = inventory.with_secrets(hosts=[name]).hosts[name]
    taken = mt.take_snapshot(host, template_dirs=template_dirs(ctx))
    taken.save(path, force=force)
    echo(f"snapshot of {name}: {len(taken.parameters)} parameters -> {path}")


@click.command()
@inventory_option
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Snapshot file (from `mml-tool snapshot`) to compare the hosts with.",
)
@limit_option
@click.option(
    "--ignore",
    default=None,
    metavar="P001,P002",
    help="Parameters that legitimately differ between elements: not compared.",
)
@workers_option
@report_option
@click.pass_context
def diff(
    ctx: click.Context,
    inventory_path: Path,
    baseline_path: Path,
    limit: str | None,
    ignore: str | None,
    workers: int,
    report_spec: str | None,
) -> None:
    """Compare hosts with a baseline snapshot: what differs, is missing or is extra; read-only.

    Reads `LST SFP:;` from every selected host (concurrently) and reports, per host, each
    parameter bit that differs from the snapshot, each parameter that is missing on the host
    and each that is not in the snapshot. A host that cannot be read is an error, never a
    match.

    \b
    Examples:
      mml-tool diff -i inv.yaml --baseline golden.json
      mml-tool diff -i inv.yaml --baseline golden.json --limit 'uap-*' --ignore P001,P017 \\
          --report json:drift.json,md:drift.md

    Exit: 0 no host differs, 100 some host differs, 1 some host could not be read (or none
    selected), 2 usage error (a bad snapshot file, --ignore or --limit; nothing connected to).
    """
    targets = report_targets(report_spec)
    try:
        skip = parse_ignore(ignore)
        baseline = mt.load_snapshot(baseline_path, template_dirs=template_dirs(ctx))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    inventory = read_inventory(inventory_path)
    hosts = select_hosts(inventory, limit)
    result = mt.diff_fleet(
        inventory,
        baseline,
        limit=limit,
        ignore=skip,
        workers=workers,
        template_dirs=template_dirs(ctx),
        progress=BarProgress(f"comparing {len(hosts)} host(s)", exit_on_second_interrupt=True),
    )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, markup=True)
    code = result.exit_code
    if not result.hosts:
        outcome = Outcome("nothing checked", code, f"--limit {limit!r} selects no host")
    elif code == ExitCode.ERROR:
        outcome = Outcome("not decided", code, f"could not read {', '.join(result.error_hosts)}")
    elif code == ExitCode.NONCOMPLIANT:
        outcome = Outcome(
            "non-compliant",
            code,
            f"{len(result.differences)} difference(s) from the baseline on "
            f"{', '.join(result.drifted_hosts)}",
        )
    else:
        outcome = Outcome("compliant", code, "no host differs from the baseline")
    info = run_info(
        "diff",
        inventory_path,
        result.started,
        policy_name=f"baseline {baseline.host} taken {baseline.taken} ({baseline_path.name})",
        policy_sha256=baseline.sha256,
        finished=result.finished,
    )
    report = Report(info, result.findings, warnings=result.warnings, outcome=outcome)
    render_table(report, out_console())
    write_reports(report, targets)
    if code != ExitCode.OK:
        echo(outcome.message)
    sys.exit(code)
