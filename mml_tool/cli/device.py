"""`parse`, `capture` and `exec`: one reply, one command, one host."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO

import click
from rich.table import Table

from mml_tool.capture import capture as run_capture
from mml_tool.capture import parse_capture, read_capture
from mml_tool.cli._changing import audit_trail, lock_folder
from mml_tool.cli._common import (
    audit_option,
    confirm,
    inventory_option,
    lock_dir_option,
    operator,
    print_json,
    read_inventory,
    select_hosts,
    template_dirs,
    yes_option,
)
from mml_tool.cli._console import EXIT_ERROR, EXIT_OK, EXIT_USAGE, fail, out_console
from mml_tool.errors import ConfigError, MmlToolError
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.response import MmlResponse
from mml_tool.mml.session import Transcript
from mml_tool.oneshot import run_one


def _one_host(inventory: Inventory, host_name: str) -> HostConfig:
    """The one host HOST names, with its secrets read; none or several is a usage error."""
    hosts = select_hosts(inventory, host_name)
    if len(hosts) != 1:
        raise click.UsageError(f"HOST must name one host; {host_name!r} matches {len(hosts)}")
    return inventory.with_secrets(hosts=[hosts[0].name]).hosts[hosts[0].name]


def _response_json(response: MmlResponse) -> dict[str, Any]:
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


@click.command()
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
    file: BinaryIO,
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
    name = getattr(file, "name", "-")
    try:
        text, _ = read_capture(file, name, encoding.lower())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        parsed = parse_capture(text, command_text, platform, template_dirs(ctx))
    except ConfigError as exc:  # no echo and no --command, or the two disagree
        fail(f"{name}: {exc}", EXIT_USAGE)
    except MmlToolError as exc:
        fail(f"{name}: {exc}", EXIT_ERROR)
    records = parsed.records
    if as_json:
        print_json(records)
        return
    table = Table(*(records[0].keys() if records else ["(no records)"]))
    for record in records:
        table.add_row(*record.values())
    out_console().print(table)


@click.command()
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
    help="Replace host and element names and IP addresses in the sample (.raw and records).",
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
    try:
        command = MmlCommand.parse(command_text)
        if not command.is_read_only:
            raise ConfigError(
                f"capture runs read-only commands only (LST, DSP), not {command.verb}: "
                "nothing was sent"
            )
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    # A file where a folder should be is found now, not after the command was sent.
    folder = next((p for p in (out_dir / "x").absolute().parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        fail(f"{out_dir}: {folder} is not a folder: choose another one with -o", EXIT_USAGE)
    inventory = read_inventory(inventory_path)
    host = _one_host(inventory, host_name)
    result = run_capture(
        host, command, out_dir, anonymized=anonymize, template_dirs=template_dirs(ctx)
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


@click.command(name="exec")
@inventory_option
@click.argument("host_name", metavar="HOST")
@click.argument("command_text", metavar="COMMAND")
@click.option("--json", "as_json", is_flag=True, help="Print the parsed frame as JSON.")
@click.option(
    "--allow-write", is_flag=True, help="Allow MOD/ADD/RMV/SET (asks for confirmation; audited)."
)
@yes_option
@audit_option
@lock_dir_option
@click.option(
    "--transcript",
    "transcript_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the (masked) session transcript here.",
)
@click.pass_context
def exec_command(
    ctx: click.Context,
    inventory_path: Path,
    host_name: str,
    command_text: str,
    as_json: bool,
    allow_write: bool,
    yes: bool,
    audit_path: Path | None,
    lock_dir: Path | None,
    transcript_path: Path | None,
) -> None:
    """Run one MML command on one host and print the reply.

    \b
    Example:  mml-tool exec -i inv.yaml uap-1 "LST SFP: ID=P978;"
    Read-only verbs (LST, DSP) only, unless --allow-write is given; then the command is shown,
    confirmed and written to the audit trail.
    Exit: 0 RETCODE = 0, 1 otherwise.
    """
    try:
        command = MmlCommand.parse(command_text)
    except ConfigError as exc:  # the COMMAND argument is a bad value: usage, nothing sent
        fail(str(exc), EXIT_USAGE)
    inventory = read_inventory(inventory_path)
    host = _one_host(inventory, host_name)
    trail = None
    if not command.is_read_only:
        if not allow_write:
            fail(
                f"{command.verb} changes the element; exec refuses it without --allow-write "
                "(prefer plan/apply, which re-read, lock and roll back).",
                EXIT_USAGE,
            )
        click.echo(f"{host.name}: {command.masked()}")
        confirm("Send this command?", yes)
        trail = audit_trail(audit_path, inventory)
    transcript = Transcript() if transcript_path else None
    try:
        response = run_one(
            host,
            command,
            audit=trail,
            operator=operator(ctx),
            lock_dir=lock_folder(inventory, lock_dir),
            transcript=transcript,
        )
    finally:
        # Written on failure too: that is when the transcript is needed most.
        if transcript is not None and transcript_path is not None:
            transcript.write(transcript_path)
    if as_json:
        print_json(_response_json(response))
    else:
        click.echo(response.raw.rstrip())
    sys.exit(EXIT_OK if response.ok else EXIT_ERROR)
