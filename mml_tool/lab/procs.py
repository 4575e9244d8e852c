"""A lab whose UAP nodes are served by several worker processes, one per block of nodes.

One ``UapServer`` runs every connection on threads of one process: at about a thousand
simultaneous SSH sessions (three threads each, paramiko's crypto under one GIL) the simulator,
not the client, becomes what a benchmark measures. ``ProcessLab`` splits the nodes into
``processes`` contiguous blocks and starts a ``UapServer`` for each block in its own process
(``multiprocessing``, spawn: no fork of a threaded parent). Every worker serves its nodes exactly
as the one-process lab does (same code, same host key, same credentials, same port layout for a
``base_port``), so a client cannot tell the difference.

The parent keeps one pipe per worker: it learns the ports from it at start, asks it for a
node's P978 bit when the gateway simulator (which stays in the parent) wants to know whether
one-way video is allowed, and tells it to stop. A worker whose parent dies sees the pipe close
and stops too. ``node(name)`` is not available: the node's state lives in its worker.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from mml_tool.errors import ConfigError
from mml_tool.lab.lab import Lab
from mml_tool.lab.uap import NodeConfig, UapNode, UapServer

READY_TIMEOUT = 120.0  # a worker imports paramiko and binds its ports: seconds, not minutes
REPLY_TIMEOUT = 10.0


def split_blocks(nodes: Sequence[NodeConfig], processes: int) -> list[list[NodeConfig]]:
    """``nodes`` in at most ``processes`` contiguous blocks of near-equal size."""
    count = max(1, min(processes, len(nodes)))
    size, extra = divmod(len(nodes), count)
    blocks, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        blocks.append(list(nodes[start:end]))
        start = end
    return blocks


def _serve_block(
    conn: Connection,
    configs: list[NodeConfig],
    host: str,
    base_port: int,
    username: str,
    password: str,
    host_key_file: Path,
) -> None:
    """A worker process: serve ``configs`` until the parent says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent; it stops us
    server = UapServer(host_key_file=host_key_file)
    try:
        nodes = server.start(
            configs, host=host, base_port=base_port, username=username, password=password
        )
    except ConfigError as exc:
        conn.send(("error", str(exc)))
        return
    try:
        conn.send(("ready", [(n.name, n.ssh_port, n.tcp_port) for n in nodes]))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if message[0] == "stop":
                break
            if message[0] == "bit":
                _, name, pid, bit = message
                try:
                    conn.send(("bit", server.node(name).store.get_bit(pid, bit)))
                except KeyError:
                    conn.send(("bit", None))
    finally:
        server.stop()


@dataclasses.dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    names: frozenset[str]
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class ProcessLab(Lab):
    """``Lab`` with its UAP nodes served by ``processes`` worker processes (the gateway
    simulator, if any, runs in this process). Same constructor as ``Lab`` plus ``processes``."""

    def __init__(self, nodes: Sequence[NodeConfig] | int, *, processes: int, **kwargs: Any):
        if processes < 1:
            raise ConfigError("a lab needs at least one process (--processes N, N >= 1)")
        workdir = Path(kwargs["workdir"])
        # Every worker must present the same host key: it lives in a file they all read.
        kwargs["host_key_file"] = kwargs.get("host_key_file") or workdir / "lab_host_key"
        super().__init__(nodes, **kwargs)
        self.processes = processes
        self._host_key_file: Path = kwargs["host_key_file"]
        self._workers: list[_Worker] = []

    @property
    def worker_pids(self) -> list[int]:
        return [w.process.pid or 0 for w in self._workers]

    def node(self, name: str) -> UapNode:
        raise RuntimeError(
            f"node {name}: its state lives in a worker process; use a one-process Lab to inspect it"
        )

    def one_way_video_ready(self, host: str) -> bool:
        for worker in self._workers:
            if host in worker.names:
                with worker.lock:  # one question at a time per pipe (gateway threads ask)
                    worker.conn.send(("bit", host, "P978", 0))
                    if not worker.conn.poll(REPLY_TIMEOUT):
                        return False
                    _, value = worker.conn.recv()
                return bool(value == 0)
        return False

    def start(self) -> ProcessLab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ctx = multiprocessing.get_context("spawn")
        offset = 0
        try:
            for block in split_blocks(self.node_configs, self.processes):
                parent, child = ctx.Pipe()
                process = ctx.Process(
                    target=_serve_block,
                    args=(
                        child,
                        block,
                        self.host,
                        self.base_port + offset if self.base_port else 0,
                        self.username,
                        self.password.reveal(),
                        self._host_key_file,
                    ),
                    name=f"uap-lab-{offset + 1}",
                    daemon=True,
                )
                process.start()
                child.close()
                self._workers.append(_Worker(process, parent, frozenset(n.name for n in block)))
                offset += len(block)
            self._collect_ports()
        except BaseException:
            self.stop()
            raise
        self._started = True
        self._start_gateway()
        return self

    def _collect_ports(self) -> None:
        """Wait (with a deadline) for every worker's ports; build this side's node records."""
        ports: dict[str, tuple[int, int]] = {}
        deadline = time.monotonic() + READY_TIMEOUT
        for worker in self._workers:
            if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                raise ConfigError(f"a lab worker did not start within {READY_TIMEOUT:g} s")
            try:
                kind, payload = worker.conn.recv()
            except EOFError:
                raise ConfigError(
                    f"a lab worker exited at start (code {worker.process.exitcode})"
                ) from None
            if kind == "error":
                raise ConfigError(payload)
            for name, ssh_port, tcp_port in payload:
                ports[name] = (ssh_port, tcp_port)
        # This process's view of the nodes (names, ports, NE names) for the inventory and the
        # ready line; the state is the workers' (no state file opened here).
        for config in self.node_configs:
            node = UapNode(dataclasses.replace(config, state_file=None))
            node.ssh_port, node.tcp_port = ports[config.name]
            self.server.nodes.append(node)

    def stop(self) -> None:
        gateway, self.gateway = self.gateway, None
        try:
            if gateway is not None:
                gateway.stop()
        finally:
            for worker in self._workers:
                try:
                    with worker.lock:
                        worker.conn.send(("stop",))
                except (OSError, ValueError):
                    pass
            for worker in self._workers:
                worker.process.join(timeout=10)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
                worker.conn.close()
            self._workers.clear()
            self.server.nodes.clear()
            self._started = False

    def __enter__(self) -> ProcessLab:
        return self.start()
