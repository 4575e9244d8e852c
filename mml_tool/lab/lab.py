"""Start a lab of simulated UAP9600 nodes (and one CC-Gateway), write an inventory for it.

``Lab`` is a context manager: it starts a ``UapServer`` for the nodes and, with
``with_gateway=True``, a gateway simulator (``mml_tool.lab.gateway``, imported lazily) that asks
``Lab.one_way_video_ready(host)`` whether a UAP node allows one-way video (P978 bit 0 == 0).

LAB.yaml: format and validation in ``mml_tool.lab.config`` (``load_lab_config``,
``load_gateway_settings``, re-exported here).

``write_inventory(path)`` writes, in path's folder: the inventory (one host per node, transport
ssh, its SSH port, group ``lab``, ``ne_name``; with a gateway one ``gw-<node>`` gateway entry per
node, agent 101, 102, ... linked to that node), ``lab_known_hosts`` (the lab's Ed25519 host key
for ``[127.0.0.1]:<port>``) and ``lab.env`` (mode 0600: ``export MML_LAB_PASSWORD=...`` and,
with a gateway, ``export CCGW_AGENT_PASSWORD=...``). Passwords are generated when not given and
are never printed.
"""

from __future__ import annotations

import functools
import os
import secrets
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

import yaml

from mml_tool.atomic import write_text_atomic
from mml_tool.errors import ConfigError
from mml_tool.lab.config import (
    EVENT_SHAPES,
    EventShape,
    load_gateway_settings,
    load_lab_config,
)
from mml_tool.lab.uap import NodeConfig, UapNode, UapServer
from mml_tool.secret import Secret

PASSWORD_ENV = "MML_LAB_PASSWORD"
AGENT_PASSWORD_ENV = "CCGW_AGENT_PASSWORD"
FIRST_AGENT_ID = 101
CALLED_NUMBER = "40040"
SKILL_ID = 25
DEFAULT_USERNAME = "admin"


class GatewayLike(Protocol):
    """What Lab needs from a gateway simulator."""

    def start(self) -> Any: ...
    def stop(self) -> Any: ...


GatewayFactory = Callable[["Lab"], GatewayLike]


def make_nodes(
    count: int, *, varied: bool = False, workdir: Path | None = None
) -> list[NodeConfig]:
    """``count`` nodes uap-1..uap-N (NE names UAP-1.., meid 1..). ``varied`` cycles the layouts
    (table, vertical, value) and makes every fourth node Chinese. With ``workdir`` each node
    keeps its state in ``workdir/state/<name>.json``."""
    if count < 1:
        raise ConfigError("a lab needs at least one node (--nodes N, N >= 1)")
    layouts = ("table", "vertical", "value")
    nodes = []
    for i in range(count):
        name = f"uap-{i + 1}"
        nodes.append(
            NodeConfig(
                name,
                meid=i + 1,
                layout=layouts[i % 3] if varied else "table",
                language="zh" if varied and i % 4 == 3 else "en",
                state_file=workdir / "state" / f"{name}.json" if workdir else None,
            )
        )
    return nodes


def _default_gateway_factory(lab: Lab) -> GatewayLike:
    # Lazy: the gateway module (and its TLS set-up) is only needed when a gateway is wanted.
    from mml_tool.lab.gateway import AgentSpec, GatewaySimulator

    password = lab.agent_password.reveal()
    agents = {
        agent_id: AgentSpec(password=password, uap_host=node.name)
        for agent_id, node in zip(lab.agent_ids(), lab.node_configs, strict=True)
    }
    folder = lab.workdir / "gateway"
    folder.mkdir(parents=True, exist_ok=True)
    return GatewaySimulator(
        folder,
        one_way_video_ready=lab.one_way_video_ready,
        agents=agents,
        event_shape=lab.gateway_event_shape,
    )


class Lab:
    """N simulated UAP9600 nodes (SSH + TCP each) and, optionally, one CC-Gateway."""

    def __init__(
        self,
        nodes: Sequence[NodeConfig] | int,
        *,
        base_port: int = 0,
        password: Secret | str | None = None,
        agent_password: Secret | str | None = None,
        username: str = DEFAULT_USERNAME,
        with_gateway: bool = True,
        workdir: Path,
        gateway_factory: GatewayFactory | None = None,
        host: str = "127.0.0.1",
        host_key_file: Path | None = None,
        gateway_event_shape: EventShape = "documented",
    ) -> None:
        self.workdir = Path(workdir)
        if gateway_event_shape not in EVENT_SHAPES:
            raise ConfigError(
                f"gateway event shape {gateway_event_shape!r}: use documented or wrapped"
            )
        self.gateway_event_shape = gateway_event_shape
        self.node_configs = (
            make_nodes(nodes, workdir=self.workdir) if isinstance(nodes, int) else list(nodes)
        )
        if not self.node_configs:
            raise ConfigError("a lab needs at least one node")
        if password is None:
            password = secrets.token_urlsafe(18)  # URL-safe: no quote or ';' to escape in LGI
        self.password = password if isinstance(password, Secret) else Secret(password)
        if agent_password is None:
            agent_password = secrets.token_urlsafe(18)
        self.agent_password = (
            agent_password if isinstance(agent_password, Secret) else Secret(agent_password)
        )
        self.username = username
        self.base_port = base_port
        self.host = host
        self.with_gateway = with_gateway
        self._gateway_factory = gateway_factory or _default_gateway_factory
        self.server = UapServer(host_key_file=host_key_file)
        self.gateway: GatewayLike | None = None
        self._started = False

    @property
    def nodes(self) -> list[UapNode]:
        return self.server.nodes

    def node(self, name: str) -> UapNode:
        return self.server.node(name)

    def agent_ids(self) -> list[str]:
        """The gateway agent linked to each node, in node order (101, 102, ...)."""
        return [str(FIRST_AGENT_ID + i) for i in range(len(self.node_configs))]

    def one_way_video_ready(self, host: str) -> bool:
        """True when node ``host`` has P978 bit 0 == 0 (one-way video allowed)."""
        try:
            return self.server.node(host).store.get_bit("P978", 0) == 0
        except KeyError:
            return False

    def start(self) -> Lab:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server.start(
            self.node_configs,
            host=self.host,
            base_port=self.base_port,
            username=self.username,
            password=self.password,
        )
        self._started = True
        self._start_gateway()
        return self

    def _start_gateway(self) -> None:
        """Start the gateway (when asked for) in front of the started nodes; all stops if it
        fails, so a half-built lab holds no ports or threads."""
        if self.with_gateway:
            try:
                self.gateway = self._gateway_factory(self)
                self.gateway.start()
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        gateway, self.gateway = self.gateway, None
        try:
            if gateway is not None:
                gateway.stop()
        finally:  # the UAP nodes' ports and threads go even if the gateway fails to stop
            self.server.stop()
            self._started = False

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_inventory(self, path: Path) -> Path:
        """Write the inventory YAML, ``lab_known_hosts`` and ``lab.env`` (0600) beside it."""
        if not self._started:
            raise RuntimeError("start the lab before writing its inventory")
        path = Path(path)
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        known = folder / "lab_known_hosts"
        lines = [self.server.known_hosts_line(node.ssh_port) for node in self.nodes]
        known.write_text("\n".join(lines) + "\n", encoding="utf-8")
        hosts, gateways = self._inventory_hosts(folder)
        doc: dict[str, Any] = {
            "defaults": {
                "transport": "ssh",
                "username": self.username,
                "password": "${" + PASSWORD_ENV + "}",
                "known_hosts": known.name,
                "trust_on_first_use": False,
                "connect_timeout": 10,
                "timeout": 30,
                "platform": "huawei_uap9600",
            },
            "groups": {"lab": {"vars": {"platform": "huawei_uap9600"}}},
            "hosts": hosts,
        }
        if gateways:
            doc["gateways"] = gateways
        header = (
            "# mml-tool lab inventory (generated). Credentials: source lab.env in this folder.\n"
            "# Plain-TCP MML ports: "
            + ", ".join(f"{n.name}={n.tcp_port}" for n in self.nodes[:20])
            + (" ..." if len(self.nodes) > 20 else "")
            + "\n"
        )
        write_text_atomic(path, header + yaml.safe_dump(doc, sort_keys=False), 0o644)
        env_lines = [f"export {PASSWORD_ENV}={_sh_quote(self.password.reveal())}"]
        if gateways:
            env_lines.append(
                f"export {AGENT_PASSWORD_ENV}={_sh_quote(self.agent_password.reveal())}"
            )
        write_text_atomic(folder / "lab.env", "\n".join(env_lines) + "\n", 0o600)
        return path

    def _inventory_hosts(
        self, folder: Path
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The inventory's hosts (one per node) and, with a gateway, one gateway per node."""
        hosts: dict[str, dict[str, Any]] = {}
        gateways: dict[str, dict[str, Any]] = {}
        url = getattr(self.gateway, "url", None)
        ca_path = getattr(self.gateway, "ca_path", None)
        for i, (node, agent_id) in enumerate(zip(self.nodes, self.agent_ids(), strict=True)):
            entry: dict[str, Any] = {
                "hostname": self.host,
                "port": node.ssh_port,
                "groups": ["lab"],
                "ne_name": node.config.ne_name,
            }
            if url:
                gw_name = f"gw-{node.name}"
                entry["gateway"] = gw_name
                gateways[gw_name] = {
                    "url": url,
                    "verify_tls": True,
                    "agent_id": agent_id,
                    "agent_password": "${" + AGENT_PASSWORD_ENV + "}",
                    "phone_number": str(40100 + i + 1),
                    "called": CALLED_NUMBER,
                    "skill_id": SKILL_ID,
                    "timeout": 15,
                }
                if ca_path:
                    gateways[gw_name]["ca_bundle"] = str(_relative(Path(ca_path), folder))
            hosts[node.name] = entry
        return hosts, gateways

    def ready_line(self, inventory: Path | None) -> str:
        ssh = _ports([n.ssh_port for n in self.nodes], self.host)
        tcp = _ports([n.tcp_port for n in self.nodes], self.host)
        count = len(self.nodes)
        line = f"lab ready: {count} UAP node{'s' if count != 1 else ''} (SSH {ssh}, TCP {tcp})"
        url = getattr(self.gateway, "url", None)
        if url:
            line += f", gateway {url}"
        if inventory is not None:
            line += (
                f", inventory: {inventory}; source {inventory.parent / 'lab.env'} for credentials"
            )
        return line


def _sh_quote(value: str) -> str:
    """``value`` in single quotes for ``sh`` (a password from $MML_LAB_PASSWORD may hold ')."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _relative(path: Path, folder: Path) -> Path:
    try:
        return path.resolve().relative_to(folder.resolve())
    except ValueError:
        return path.resolve()


def _ports(ports: list[int], host: str) -> str:
    if len(ports) == 1:
        return f"{host}:{ports[0]}"
    if ports == list(range(ports[0], ports[0] + len(ports))):
        return f"{host}:{ports[0]}-{ports[-1]}"
    if len(ports) <= 4:
        return f"{host}:" + ",".join(map(str, ports))
    return f"{host}:{min(ports)}..{max(ports)} (see inventory)"


def run_lab_foreground(
    *,
    nodes: int | None = None,
    config: Path | None = None,
    base_port: int = 0,
    inventory: Path | None = None,
    workdir: Path | None = None,
    with_gateway: bool = True,
    gateway_factory: GatewayFactory | None = None,
    out: TextIO | None = None,
    stop_event: threading.Event | None = None,
    processes: int = 1,
) -> int:
    """``mml-tool lab``: start, write the inventory, print one ready line, block until
    SIGINT/SIGTERM (or ``stop_event``), stop. The password comes from $MML_LAB_PASSWORD or is
    generated; it is only ever written to lab.env. Returns the exit code (0)."""
    out = out or sys.stdout
    if workdir is None:
        workdir = inventory.parent if inventory else Path(tempfile.mkdtemp(prefix="mml-lab-"))
    event_shape: EventShape = "documented"
    if config is not None:
        node_configs: Sequence[NodeConfig] | int = load_lab_config(config)
        event_shape = load_gateway_settings(config)
    else:
        node_configs = make_nodes(nodes or 3, workdir=workdir)
    inventory = inventory or workdir / "inventory.yaml"
    stop = stop_event or threading.Event()
    lab_class: Callable[..., Lab] = Lab
    if processes > 1:  # nodes served by worker processes (lab/procs.py)
        from mml_tool.lab.procs import ProcessLab

        lab_class = functools.partial(ProcessLab, processes=processes)
    lab = lab_class(
        node_configs,
        base_port=base_port,
        password=os.environ.get(PASSWORD_ENV) or None,
        with_gateway=with_gateway,
        workdir=workdir,
        gateway_factory=gateway_factory,
        host_key_file=workdir / "lab_host_key",
        gateway_event_shape=event_shape,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        with lab:
            lab.write_inventory(inventory)
            print(lab.ready_line(inventory), file=out, flush=True)
            while not stop.wait(0.5):  # short waits keep signal handling prompt
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
