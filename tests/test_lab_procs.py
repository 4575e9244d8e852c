"""The multi-process lab: nodes served by worker processes, one block each, as one lab."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

from conftest import WatchedOutput, lab_env

from mml_tool.compliance import check_fleet
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import make_nodes, run_lab_foreground
from mml_tool.lab.procs import ProcessLab, split_blocks
from mml_tool.lab.uap import NodeConfig
from mml_tool.policy import load_policy


def test_split_blocks_covers_every_node_once_in_order() -> None:
    nodes = make_nodes(7)
    blocks = split_blocks(nodes, 3)
    assert [len(b) for b in blocks] == [3, 2, 2]
    assert [n.name for b in blocks for n in b] == [n.name for n in nodes]
    assert len(split_blocks(nodes[:2], 8)) == 2  # never an empty worker


def test_a_fleet_check_over_nodes_in_three_processes(tmp_path: Path) -> None:
    nodes = [*make_nodes(5), NodeConfig("uap-6", params={"P978": 0})]
    lab = ProcessLab(nodes, processes=3, workdir=tmp_path, password="procs-" + "x" * 10)
    with lab:
        pids = lab.worker_pids
        assert len(set(pids)) == 3 and os.getpid() not in pids
        path = lab.write_inventory(tmp_path / "inventory.yaml")
        inventory = load_inventory(path, env=lab_env(path))
        findings = check_fleet(list(inventory.hosts.values()), load_policy(None), workers=6)
        assert [f.status for f in findings] == ["fail"] * 5 + ["pass"]
        # The gateway side asks the node's own worker for its state.
        assert lab.one_way_video_ready("uap-6") and not lab.one_way_video_ready("uap-1")
        assert not lab.one_way_video_ready("no-such-node")
        processes = [w.process for w in lab._workers]
    assert not any(p.is_alive() for p in processes)
    assert lab.nodes == []


def test_mml_tool_lab_with_processes_serves_and_stops(tmp_path: Path) -> None:
    """`mml-tool lab --processes 2`: one ready line, an inventory whose nodes answer, and no
    worker left once it is told to stop."""

    out, stop = WatchedOutput(), threading.Event()
    inv = tmp_path / "inventory.yaml"
    before = set(multiprocessing.active_children())
    runner = threading.Thread(
        target=run_lab_foreground,
        kwargs={
            "nodes": 4,
            "inventory": inv,
            "with_gateway": False,
            "out": out,
            "stop_event": stop,
            "processes": 2,
        },
    )
    runner.start()
    try:
        assert out.ready.wait(60)
        assert out.text.startswith("lab ready: 4 UAP nodes (SSH 127.0.0.1:")
        workers = set(multiprocessing.active_children()) - before
        assert len(workers) == 2
        inventory = load_inventory(inv, env=lab_env(inv))
        findings = check_fleet(list(inventory.hosts.values()), load_policy(None), workers=4)
        assert [f.status for f in findings] == ["fail"] * 4
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert not any(w.is_alive() for w in workers)
