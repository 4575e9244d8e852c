"""`demo` and `lab`: the simulators, for a first look and for trying things out."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mml_tool.demo import run_demo
from mml_tool.lab.lab import run_lab_foreground


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the lab, audit trail and evidence go (default: a new temp folder).",
)
@click.option("--nodes", type=click.IntRange(1, 50), default=3, show_default=True)
def demo(workdir: Path | None, nodes: int) -> None:
    """The whole story on built-in simulators: no device, no arguments needed.

    Starts UAP9600 simulators (P978 bit 0 = 1, so one-way video is refused) and a CC-Gateway,
    shows verification failing, runs the change, shows verification passing, and prints where
    the evidence bundle is.

    \b
    Example:
      mml-tool demo --workdir /tmp/mml-demo
    """
    sys.exit(run_demo(workdir, nodes=nodes))


@click.command()
@click.option(
    "--nodes",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="How many UAP9600 nodes (ignored with --config).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="LAB.yaml: per-node layout, language, parameters and faults; the gateway's event shape.",
)
@click.option(
    "--port",
    "base_port",
    type=click.IntRange(0, 65000),
    default=0,
    show_default=True,
    help="First port (SSH, then TCP ports follow); 0 = any free ports.",
)
@click.option(
    "--write-inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an inventory for the lab here (credentials go to lab.env beside it).",
)
@click.option("--no-gateway", is_flag=True, help="UAP nodes only, no CC-Gateway simulator.")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Serve the nodes from this many worker processes (blocks of nodes), for large fleets.",
)
def lab(
    nodes: int,
    config_path: Path | None,
    base_port: int,
    inventory_path: Path | None,
    no_gateway: bool,
    processes: int,
) -> None:
    """Run the simulators in the foreground until Ctrl-C: UAP9600 nodes + a CC-Gateway.

    Prints one line when ready, with the ports and the inventory path; `source lab.env` (beside
    the inventory) sets the lab credentials for the other commands. Stop it with Ctrl-C (or
    `kill %1` when started in the background with `&`).

    \b
    Example:
      mml-tool lab --config inventories/lab-config.yaml --write-inventory lab/inventory.yaml
    """
    sys.exit(
        run_lab_foreground(
            nodes=nodes,
            config=config_path,
            base_port=base_port,
            inventory=inventory_path,
            with_gateway=not no_gateway,
            processes=processes,
        )
    )
