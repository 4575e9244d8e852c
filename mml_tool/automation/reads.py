"""Hosts and reads for the integrations: a host from an inventory or its fields, a parameter
read and judged, a read-only command, one host checked against a policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mml_tool.compliance import check_host
from mml_tool.errors import (
    AnswerError,
    CommandError,
    ConfigError,
    ParseError,
)
from mml_tool.inventory import HostConfig, Inventory, load_inventory
from mml_tool.mml.command import MmlCommand
from mml_tool.mml.response import MmlResponse
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output
from mml_tool.policy import (
    MAX_BIT,
    Finding,
    Policy,
    bit_from_records,
    load_policy,
    parameter_state,
)

SessionFactory = Callable[[HostConfig], MmlSession]


# -- hosts ------------------------------------------------------------------------------------


def host_from_inventory(path: Path | str, name: str) -> tuple[Inventory, HostConfig]:
    """The inventory at ``path`` and its host ``name`` with its secrets read (only that
    host's: another host's unset variable does not matter); ``ConfigError`` naming both if
    the host is absent."""
    inventory = load_inventory(path, resolve_secrets=False)
    if name not in inventory.hosts:
        raise ConfigError(
            f"{path}: no host {name!r}; hosts: {', '.join(sorted(inventory.hosts)) or '(none)'}"
        )
    inventory = inventory.with_secrets(hosts=[name])
    return inventory, inventory.hosts[name]


# -- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterInfo:
    """A software parameter as read: the parsed records, the whole value when the reply gives
    it, and every bit the reply tells (bit index -> 0/1)."""

    parameter: str
    records: list[dict[str, str]]
    value: int | None
    bits: dict[int, int]
    state: str  # parameter_state(): "value=5" or "0=1,1=0,..."
    raw: str  # the masked reply


def _check_parameter(parameter: str) -> str:
    try:
        return str(MmlCommand.create("LST", "SFP", ID=parameter).param("ID"))
    except CommandError as exc:
        raise ConfigError(f"parameter {parameter!r}: {exc}") from None


def read_parameter(
    host: HostConfig,
    parameter: str,
    *,
    template_dirs: Sequence[Path] = (),
    session_factory: SessionFactory = MmlSession,
) -> ParameterInfo:
    """``LST SFP: ID=<parameter>;`` parsed by the templates; errors are the library's own."""
    command = MmlCommand.create("LST", "SFP", ID=_check_parameter(parameter))
    with session_factory(host) as session:
        response = session.run(command)
        response.raise_for_retcode()
    _refuse_late_answer(session)
    records = parse_output(command.render(), response.text, host.platform, template_dirs)
    state = parameter_state(records, parameter)  # ParseError for a value that is no number
    if not state:
        raise ParseError(f"{host.name}: {parameter} is not in the reply to {command.render()}")
    # The bits the reply tells: all of them from a whole value, else those listed one by one;
    # each read by the library's own rule, which refuses records that disagree.
    parts = state.split(",")
    wholes = [int(part[len("value=") :]) for part in parts if part.startswith("value=")]
    listed = list(range(MAX_BIT + 1)) if wholes else [int(part.split("=", 1)[0]) for part in parts]
    bits = {bit: bit_from_records(records, parameter, bit) for bit in listed}
    value = wholes[0] if len(set(wholes)) == 1 else None
    if value is None and len(bits) == MAX_BIT + 1:
        value = sum(v << b for b, v in bits.items())
    return ParameterInfo(parameter, records, value, bits, state, response.raw)


@dataclass(frozen=True)
class CommandResult:
    command: str  # masked
    retcode: int | None
    message: str
    records: list[dict[str, str]]
    raw: str  # masked
    ok: bool


def run_read_only(
    host: HostConfig, text: str, *, session_factory: SessionFactory = MmlSession
) -> CommandResult:
    """One read-only command (LST, DSP, ...); a write verb is refused before connecting."""
    command = read_only_command(text)
    with session_factory(host) as session:
        response = session.run(command)
    _refuse_late_answer(session)
    return command_result(response)


def _refuse_late_answer(session: MmlSession) -> None:
    """A second answer seen at logout means this session's answers cannot be trusted (as
    ``check`` treats it)."""
    if isinstance(session.refused, AnswerError):
        raise session.refused


def read_only_command(text: str) -> MmlCommand:
    """``text`` parsed; ``CommandError`` for a malformed one or a write verb (nothing is sent)."""
    command = MmlCommand.parse(text)
    if not command.is_read_only:
        raise CommandError(
            f"{command.verb} changes the element: only read-only commands (LST, DSP, ...) are "
            "run here; change a bit with the sfp module / mml_set_bit task (locked, re-read, "
            "audited). Nothing was sent."
        )
    return command


def command_result(response: MmlResponse) -> CommandResult:
    return CommandResult(
        response.command,
        response.retcode,
        response.message,
        response.records,
        response.raw,
        response.ok,
    )


def check_one_host(
    host: HostConfig,
    policy: Policy | Path | str | None = None,
    *,
    template_dirs: Sequence[Path] = (),
    session_factory: SessionFactory = MmlSession,
) -> list[Finding]:
    """The findings of ``policy`` (a Policy, a file, or None: the built-in one) for ``host``."""
    if not isinstance(policy, Policy):
        policy = load_policy(None if policy is None else Path(policy))
    return check_host(host, policy, template_dirs=template_dirs, session_factory=session_factory)
