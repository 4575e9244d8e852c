"""`policy`: make policies (from a baseline snapshot)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mml_tool._io import write_text_atomic, write_text_new
from mml_tool.baseline import load_snapshot
from mml_tool.cli._console import EXIT_USAGE, echo, fail
from mml_tool.errors import ConfigError, PolicyError
from mml_tool.snapshot_policy import parse_parameters, policy_from_snapshot


@click.group()
def policy() -> None:
    """Make policy files: `policy from-snapshot` (the golden element's values as controls).

    \b
    Example:  mml-tool policy from-snapshot golden.json --parameters P978,P917 -o policy.yaml
    """


@policy.command("from-snapshot")
@click.argument("snapshot_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--parameters",
    "parameters",
    required=True,
    metavar="P978,P917",
    help="The parameters the policy requires to equal the snapshot's values.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Policy YAML to write. Default: standard output.",
)
@click.option("--force", is_flag=True, help="Replace the output file when it exists.")
def from_snapshot(snapshot_path: Path, parameters: str, output: Path | None, force: bool) -> None:
    """Write a policy requiring parameters to equal their values in a snapshot.

    Each parameter becomes a whole-value control (check-only: nothing is planned for it),
    ready to review and commit; `mml-tool check -p POLICY` then reports every host where it
    differs. Reads only the snapshot file: nothing is connected to.

    \b
    Example:  mml-tool policy from-snapshot golden.json --parameters P978,P917 -o policy.yaml
    Exit: 0 written, 2 usage error (a parameter not in the snapshot, a bad file).
    """
    if output is not None:  # a file where the folder should be: found before anything is read
        folder = next((p for p in output.absolute().parents if p.exists()), None)
        if folder is not None and not folder.is_dir():
            fail(f"{output}: {folder} is not a folder: choose another file with -o", EXIT_USAGE)
    try:
        wanted = parse_parameters(parameters)
        snapshot = load_snapshot(snapshot_path)
        text = policy_from_snapshot(snapshot, wanted, snapshot_path)
    except (ConfigError, PolicyError) as exc:
        fail(str(exc), EXIT_USAGE)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        if force:
            write_text_atomic(output, text)
        else:
            write_text_new(output, text)
    except FileExistsError:
        fail(f"{output} exists and is not replaced: give another -o path, or --force", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_USAGE)
    echo(f"policy written: {output} ({len(wanted)} control(s)); review it, then commit it")
