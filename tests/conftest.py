"""Shared fixtures: running labs of UAP9600 simulators over loopback, and their inventories.

- ``lab``: a session-wide lab (uap-1 table, uap-2 vertical, uap-3 value layout, plus the
  CC-Gateway simulator), its inventory written to ``lab.workdir / "inventory.yaml"``, and the
  variables of its ``lab.env`` (``MML_LAB_PASSWORD``, ``CCGW_AGENT_PASSWORD``) set in the
  environment for the whole session. Treat its state as shared: restore what you change.
- ``lab_inventory`` (and ``lab_inventory_path``): the ``Inventory`` loaded from that file.
- ``lab_hosts``: a ``RunningLab`` for ``lab`` whose ``host(name, transport)`` gives the
  ``HostConfig`` of a node over ssh, ssh-tunnel (the lab's SSH server as the jump host) or tcp.
- ``start_lab``: a factory for extra labs (own nodes, faults, password), stopped at session end.
- helpers a test module imports (``from conftest import ...``): ``module_lab`` for a module's own
  lab, ``set_command_env`` for the variables the commands read, ``lab_in_env`` for a fresh lab
  per test, ``invoke`` / ``invoke_on`` to run the CLI in-process, ``write_lab_inventory``.
- every JSON report any test writes (``--report json:...``, ``run``'s report.json) is validated
  against the JSON Schema shipped in the package (``mml_tool/schemas/report.schema.json``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result

from mml_tool import report as report_module
from mml_tool.cli import cli
from mml_tool.inventory import HostConfig, Inventory, JumpConfig, load_inventory
from mml_tool.lab.lab import PASSWORD_ENV, Lab, make_nodes
from mml_tool.lab.uap import NodeConfig

TRANSPORTS = ("ssh", "ssh-tunnel", "tcp")


@dataclass
class RunningLab:
    """A started lab, its inventory file and a way to reach each node over each transport."""

    lab: Lab
    inventory_path: Path
    inventory: Inventory

    def host(self, name: str, transport: str = "ssh", **changes: Any) -> HostConfig:
        """The inventory's host ``name`` reached over ``transport``; ``changes`` override
        HostConfig fields (e.g. ``timeout=1``)."""
        base = self.inventory.hosts[name]
        node = self.lab.node(name)
        if transport == "tcp":
            base = dataclasses.replace(base, transport="tcp", port=node.tcp_port)
        elif transport == "ssh-tunnel":
            jump = JumpConfig(
                hostname=base.hostname,
                port=node.ssh_port,
                username=base.username,
                password=base.password,
                key_file=None,
                known_hosts=base.known_hosts,
            )
            base = dataclasses.replace(base, transport="ssh-tunnel", port=node.tcp_port, jump=jump)
        elif transport != "ssh":
            raise ValueError(transport)
        return dataclasses.replace(base, **changes)


StartLab = Callable[..., RunningLab]


class ReadyFlag:
    """The gateway simulator's ``one_way_video_ready``: P978 state as the UAP would report it,
    flipped by tests from any thread; ``asked`` lists the UAP hosts it was asked about."""

    def __init__(self, value: bool = True) -> None:
        self._lock = threading.Lock()
        self._value = value
        self.asked: list[str] = []

    def set(self, value: bool) -> None:
        with self._lock:
            self._value = value

    def __call__(self, uap_host: str) -> bool:
        with self._lock:
            self.asked.append(uap_host)
            return self._value


class WatchedOutput:
    """A text stream for ``run_lab_foreground(out=...)``: keeps what is written and sets
    ``ready`` at the first write, so a test waits on an event, not a sleep."""

    def __init__(self) -> None:
        self.text = ""
        self.ready = threading.Event()

    def write(self, s: str) -> int:
        self.text += s
        self.ready.set()
        return len(s)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Commands record their runs in the history under the state directory: the tests' own,
    never the user's (XDG_STATE_HOME is what platformdirs reads on Linux)."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(state))
        mp.delenv("MML_TOOL_HISTORY", raising=False)
        yield state


@pytest.fixture(scope="session")
def report_validator() -> jsonschema.protocols.Validator:
    schema = report_module.json_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.fixture(autouse=True)
def _validate_json_reports(
    monkeypatch: pytest.MonkeyPatch, report_validator: jsonschema.protocols.Validator
) -> None:
    """Every JSON report written during a test must match the published schema."""
    render = report_module.RENDERERS["json"]

    def validated(report: report_module.Report) -> str:
        text = render(report)
        report_validator.validate(json.loads(text))
        return text

    monkeypatch.setitem(report_module.RENDERERS, "json", validated)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def lab_password() -> str:
    return "lab-" + secrets.token_urlsafe(12)


@pytest.fixture(scope="session")
def start_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartLab]:
    """``start_lab(nodes, password=..., with_gateway=False)`` -> RunningLab; the lab's
    variables (lab.env) reach ``load_inventory`` through ``env``, not os.environ."""
    with ExitStack() as stack:

        def start(
            nodes: Sequence[NodeConfig] | int,
            *,
            password: str | None = None,
            with_gateway: bool = False,
        ) -> RunningLab:
            workdir = tmp_path_factory.mktemp("lab")
            pwd = password or "lab-" + secrets.token_urlsafe(12)
            lab = stack.enter_context(
                Lab(nodes, workdir=workdir, password=pwd, with_gateway=with_gateway)
            )
            path = lab.write_inventory(workdir / "inventory.yaml")
            return RunningLab(lab, path, load_inventory(path, env=lab_env(path)))

        yield start


def write_lab_inventory(lab: Lab, **defaults: Any) -> Path:
    """Write ``lab``'s inventory with ``defaults`` overridden (e.g. short timeouts)."""
    path = lab.write_inventory(lab.workdir / "inventory.yaml")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["defaults"].update(defaults)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def lab_env(inventory_path: Path) -> dict[str, str]:
    """The variables of the ``lab.env`` file that ``Lab.write_inventory`` writes beside it."""
    text = (inventory_path.parent / "lab.env").read_text(encoding="utf-8")
    return dict(re.findall(r"^export (\w+)='([^']*)'$", text, re.M))


def module_lab(
    tmp_path_factory: pytest.TempPathFactory,
    folder: str,
    nodes: Sequence[NodeConfig],
    password: str,
) -> Iterator[Lab]:
    """For a module's own ``lab`` fixture (``yield from``): ``nodes``, without a gateway, in a
    fresh folder named ``folder``; stopped when the module is done."""
    workdir = tmp_path_factory.mktemp(folder)
    with Lab(nodes, workdir=workdir, password=password, with_gateway=False) as running:
        yield running


@dataclass
class CommandEnv:
    """Where one test's commands keep their audit trail and locks; ``tmp`` is its tmp_path."""

    audit: Path
    locks: Path
    tmp: Path


def set_command_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    password: str | None = None,
    operator: str | None = None,
) -> CommandEnv:
    """Set what the commands read: the lab password (when given), an audit trail and a lock
    folder of this test only, and the operator (when given)."""
    env = CommandEnv(tmp_path / "audit.jsonl", tmp_path / "locks", tmp_path)
    if password is not None:
        monkeypatch.setenv(PASSWORD_ENV, password)
    monkeypatch.setenv("MML_TOOL_AUDIT", str(env.audit))
    monkeypatch.setenv("MML_TOOL_LOCKS", str(env.locks))
    if operator is not None:
        monkeypatch.setenv("MML_TOOL_OPERATOR", operator)
    return env


@contextmanager
def lab_in_env(
    nodes: Sequence[NodeConfig] | int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
) -> Iterator[tuple[Lab, Path]]:
    """A lab with its gateway in ``tmp_path / "lab"``, its variables, an audit trail and a lock
    folder in the environment: (lab, inventory path). For a fresh lab per test."""
    with Lab(nodes, workdir=tmp_path / "lab", password=password) as lab:
        inventory = lab.write_inventory(tmp_path / "lab" / "inventory.yaml")
        for key, value in lab_env(inventory).items():
            monkeypatch.setenv(key, value)
        set_command_env(monkeypatch, tmp_path)
        yield lab, inventory


def invoke(*args: str | Path) -> Result:
    """The CLI in-process, 250 columns wide so that no line the tests look for is wrapped."""
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "250"})


def invoke_on(running: RunningLab, tmp_path: Path, *args: str | Path, **env: str) -> Result:
    """``invoke`` with ``running``'s lab variables, an audit trail and locks in ``tmp_path``,
    and ``env`` (e.g. ``MML_TOOL_OPERATOR``) passed to the command only."""
    variables = {
        **lab_env(running.inventory_path),
        "COLUMNS": "250",
        "MML_TOOL_AUDIT": str(tmp_path / "audit.jsonl"),
        "MML_TOOL_LOCKS": str(tmp_path / "locks"),
        **env,
    }
    return CliRunner().invoke(cli, [str(a) for a in args], env=variables)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_password: str) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("shared-lab")
    with (
        pytest.MonkeyPatch.context() as mp,
        Lab(make_nodes(3, varied=True), workdir=workdir, password=lab_password) as running,
    ):
        mp.setenv(PASSWORD_ENV, lab_password)
        for key, value in lab_env(running.write_inventory(workdir / "inventory.yaml")).items():
            mp.setenv(key, value)
        yield running


@pytest.fixture(scope="session")
def lab_inventory_path(lab: Lab) -> Path:
    return lab.workdir / "inventory.yaml"


@pytest.fixture(scope="session")
def lab_inventory(lab_inventory_path: Path) -> Inventory:
    return load_inventory(lab_inventory_path)


@pytest.fixture(scope="session")
def lab_hosts(lab: Lab, lab_inventory_path: Path, lab_inventory: Inventory) -> RunningLab:
    return RunningLab(lab, lab_inventory_path, lab_inventory)
