"""`run` verifies its gateways concurrently, at most --workers at once, and every verification
still releases its call and signs its agent out (observed on the gateway simulator)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from click.testing import CliRunner
from conftest import lab_in_env

from mml_tool.cli import cli
from mml_tool.inventory import load_inventory
from mml_tool.lab.gateway import GatewaySimulator
from mml_tool.lab.lab import Lab, make_nodes
from mml_tool.verify_fleet import verify_gateways

SECRET = "S3cr3t-Conc-Pass-9z"
NODES = 4


@pytest.fixture
def lab4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lab, Path]]:
    with lab_in_env(make_nodes(NODES), tmp_path, monkeypatch, SECRET) as running:
        yield running


def spans(sim: GatewaySimulator) -> dict[str, tuple[float, float]]:
    """Per agent: the time of its first and last request."""
    out: dict[str, tuple[float, float]] = {}
    for r in sim.requests_log:
        if r.agent_id:
            first, _ = out.get(r.agent_id, (r.time, r.time))
            out[r.agent_id] = (first, r.time)
    return out


def most_at_once(sim: GatewaySimulator) -> int:
    edges = sorted(
        [(a, 1) for a, _ in spans(sim).values()] + [(b, -1) for _, b in spans(sim).values()],
        key=lambda e: (e[0], e[1]),
    )
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def released_and_signed_out(sim: GatewaySimulator) -> set[str]:
    agents = set()
    for agent in {r.agent_id for r in sim.requests_log if r.agent_id}:
        paths = [r.path for r in sim.requests_log if r.agent_id == agent and r.method == "DELETE"]
        if any(p.endswith("/release") for p in paths) and any(p.endswith("/logout") for p in paths):
            agents.add(agent)
    return agents


@pytest.mark.parametrize("workers", [NODES, 1])
def test_run_verifies_gateways_concurrently_within_the_bound(
    lab4: tuple[Lab, Path], workers: int
) -> None:
    lab, inventory = lab4
    sim = cast(GatewaySimulator, lab.gateway)
    result = CliRunner().invoke(
        cli,
        ["run", "-i", str(inventory), "--change-id", "CHG-C", "--yes", "--workers", str(workers)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert len(spans(sim)) == NODES  # one agent per node's gateway, each verified
    assert released_and_signed_out(sim) == set(spans(sim))
    assert sim.signed_in_agents() == [] and sim.active_calls() == {}
    if workers == 1:
        assert most_at_once(sim) == 1
    else:  # each takes >= 0.3 s of simulator delays; together they overlap
        assert most_at_once(sim) > 1
    for name in (f"gw-uap-{i + 1}" for i in range(NODES)):
        assert f"verify: {name}: pass" in result.output


def test_entries_sharing_one_agent_are_verified_in_turn(lab4: tuple[Lab, Path]) -> None:
    lab, inventory = lab4
    sim = cast(GatewaySimulator, lab.gateway)
    gateways = load_inventory(inventory).gateways
    first = gateways["gw-uap-1"]
    twin = dataclasses.replace(first, name="gw-twin")  # same URL, same agent
    results = verify_gateways([first, twin, gateways["gw-uap-2"]], workers=8)
    assert [r.gateway for r in results] == ["gw-uap-1", "gw-twin", "gw-uap-2"]
    calls = [r for r in sim.requests_log if r.agent_id == first.agent_id]
    outs = [r.time for r in calls if r.path.endswith("/logout")]
    sign_ins = [
        r.time for r in calls if r.method == "PUT" and r.path.endswith(f"/{first.agent_id}")
    ]
    assert len(outs) == 2 and len(sign_ins) == 2 and outs[0] < sign_ins[1]
    assert sim.signed_in_agents() == [] and sim.active_calls() == {}
