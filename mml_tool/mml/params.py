"""How to reach one element: plain keyword parameters with defaults, no inventory needed.

    params = ConnectionParams(host="10.0.0.5", port=6000, transport="tcp",
                              username="op", password=Secret("..."))

The inventory builds these (``HostConfig.connection_params()``); code that has no YAML builds
them directly. Anything with a ``connection_params()`` method is accepted where a
``ConnectionParams`` is, so the protocol layer never imports the inventory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from mml_tool.errors import ConfigError
from mml_tool.mml.encoding import ENCODINGS, check_encoding
from mml_tool.secret import Secret

DEFAULT_PORTS = {"ssh": 22, "ssh-tunnel": 6000, "tcp": 6000}
DEFAULT_PLATFORM = "huawei_uap9600"


@dataclass(frozen=True)
class JumpHost:
    """The SSH jump host an ``ssh-tunnel`` connection goes through."""

    hostname: str
    port: int = 22
    username: str = ""
    password: Secret | None = None
    key_file: Path | None = None
    known_hosts: Path | None = None
    key_passphrase: Secret | None = None  # for an encrypted key_file


@dataclass(frozen=True)
class ConnectionParams:
    """Everything a session needs to reach, log in to and select one element.

    ``host`` is the address; ``name`` labels logs and errors (the address when not given).
    ``port`` defaults by transport (ssh 22, tcp and ssh-tunnel 6000). ``password`` is the MML
    (LGI) password, and the SSH password for ``ssh``; with no password and a ``key_file`` the
    session sends no LGI. ``timeout`` bounds each command's reply, ``connect_timeout`` the
    connection. ``encoding`` is ``auto`` (UTF-8, or GB18030 once a reply is not UTF-8),
    ``utf-8`` or ``gb18030``.
    """

    host: str
    port: int = 0  # 0: the transport's usual port
    transport: str = "ssh"
    username: str = ""
    password: Secret | None = None
    key_file: Path | None = None
    key_passphrase: Secret | None = None
    known_hosts: Path | None = None
    trust_on_first_use: bool = False
    connect_timeout: float = 10.0
    timeout: float = 30.0
    ne_name: str | None = None
    meid: int | None = None
    jump: JumpHost | None = None
    encoding: str = "auto"
    platform: str = DEFAULT_PLATFORM  # picks the TextFSM templates that parse replies
    name: str = ""

    def __post_init__(self) -> None:
        label = self.name or self.host
        if not self.host:
            raise ConfigError("ConnectionParams: host is empty: give the element's address")
        if isinstance(self.password, str) or isinstance(self.key_passphrase, str):
            raise ConfigError(f"{label}: wrap passwords in mml_tool.Secret(...), not a plain str")
        port = self.port or DEFAULT_PORTS.get(self.transport, 0)
        if not 0 < port < 65536 or isinstance(port, bool):
            raise ConfigError(f"{label}: port {port!r} is not between 1 and 65535")
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ConfigError(f"{label}: timeout and connect_timeout must be above 0 seconds")
        try:
            encoding = check_encoding(self.encoding)
        except ValueError:
            raise ConfigError(
                f"{label}: unknown encoding {self.encoding!r}: use one of {', '.join(ENCODINGS)}"
            ) from None
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "name", label)
        object.__setattr__(self, "encoding", encoding)

    @property
    def hostname(self) -> str:
        return self.host

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def secrets(self) -> list[Secret]:
        """Every secret given (passwords, passphrases, the jump host's too): what a session
        scrubs, by value, from everything it keeps or prints."""
        found = [self.password, self.key_passphrase]
        if self.jump is not None:
            found += [self.jump.password, self.jump.key_passphrase]
        return [s for s in found if s]

    def replace(self, **changes: object) -> ConnectionParams:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@runtime_checkable
class HasConnectionParams(Protocol):
    """Anything that knows how to reach its element, e.g. an inventory's ``HostConfig``."""

    def connection_params(self) -> ConnectionParams: ...


def as_params(target: ConnectionParams | HasConnectionParams) -> ConnectionParams:
    """``target`` itself, or the ``ConnectionParams`` it builds."""
    if isinstance(target, ConnectionParams):
        return target
    return target.connection_params()
