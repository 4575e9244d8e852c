"""`verify`: prove one-way video end to end through the CC-Gateway."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import mml_tool as mt
from mml_tool._io import now_iso
from mml_tool.cli._common import (
    directions_option,
    inventory_option,
    read_inventory,
    report_option,
    report_targets,
    run_info,
)
from mml_tool.cli._console import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_VERIFY_FAILED,
    err_console,
    out_console,
)
from mml_tool.errors import ConfigError
from mml_tool.gateway.pick import pick_gateway
from mml_tool.gateway.verify import VerifyStep
from mml_tool.history import hooks as history_hooks
from mml_tool.report import Report, write_reports


@click.command()
@inventory_option
@click.option(
    "--gateway",
    "gateway_name",
    default=None,
    help="Gateway name from the inventory's gateways: (default: the only one).",
)
@click.option(
    "--host",
    "host_name",
    default=None,
    help="Verify through the gateway this UAP host names (its `gateway:` in the inventory).",
)
@click.option("--agent", "agent_id", default=None, help="Video agent ID (overrides inventory).")
@click.option("--called", default=None, help="Number to call out to (overrides inventory).")
@directions_option
@click.option(
    "--wait-incoming",
    is_flag=True,
    help="Wait for a call to ring on the agent and answer it, instead of calling out.",
)
@click.option(
    "--ring-timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="With --wait-incoming: seconds to wait for the call to ring.",
)
@click.option(
    "--force-login",
    is_flag=True,
    help="Force sign-in when the agent is already signed in elsewhere.",
)
@report_option
@history_hooks.history_options
def verify(
    inventory_path: Path,
    gateway_name: str | None,
    host_name: str | None,
    agent_id: str | None,
    called: str | None,
    directions: tuple[int, ...],
    wait_incoming: bool,
    force_login: bool,
    ring_timeout: float,
    report_spec: str | None,
) -> None:
    """Prove one-way video end to end through the CC-Gateway REST API.

    Signs in the video agent, gets a voice call, switches it to video with each
    videoDirection (POST .../mediaswitch?mediaType=3&videoDirection=N), requires retcode "0"
    and an AgentEvent_MediaSwith with reason 0, switches back to audio, then releases the call
    and signs out, whatever failed.

    \b
    Examples:
      mml-tool verify -i inv.yaml --host uap-1
      mml-tool verify -i inv.yaml --gateway gw-1 --directions 1,2 --report junit:out/verify.xml

    Exit: 0 pass, 101 verification failed, 1 could not run, 2 usage error.
    """
    targets = report_targets(report_spec)
    inventory = read_inventory(inventory_path)
    try:
        gateway_name = pick_gateway(inventory, gateway=gateway_name, host=host_name)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    console = out_console()

    def show(step: VerifyStep) -> None:
        mark = "[green]ok[/]" if step.ok else "[red]FAILED[/]"
        console.print(f"{mark:<16} {step.name}  ({step.elapsed:.2f} s)", highlight=False)

    started = now_iso()
    result = mt.verify(
        inventory,
        gateway=gateway_name,
        agent=agent_id,
        called=called,
        directions=directions,
        wait_incoming=wait_incoming,
        force_sign_in=force_login,
        ring_timeout=ring_timeout,
        on_step=show,
    )
    for direction in result.directions:
        console.print(
            f"videoDirection {direction.direction}: "
            f"{'pass' if direction.ok else 'FAIL'}  {direction.reason}",
            highlight=False,
            markup=False,
        )
    if result.error:
        err_console.print(f"could not verify: {result.error}", highlight=False, markup=False)
    if result.cleanup_error:
        err_console.print(f"cleanup: {result.cleanup_error}", highlight=False, markup=False)
    console.print(f"verification: [bold]{result.status}[/]")
    if targets:
        info = run_info("verify", inventory_path, started)
        write_reports(Report(info, [], verification=result.to_dict()), targets)
    code = {"pass": EXIT_OK, "fail": EXIT_VERIFY_FAILED}.get(result.status, EXIT_ERROR)
    history_hooks.after_verify(result, inventory_path, code)
    sys.exit(code)
