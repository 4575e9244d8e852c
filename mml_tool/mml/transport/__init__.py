"""Byte pipes to an MML port: plain TCP, an SSH shell, or TCP tunnelled through an SSH jump host.

A transport moves bytes and nothing else; framing and login live in ``session.py``. Every
failure is a ``TransportError`` that names ``host:port`` and what to check. SSH host keys are
verified against the ``known_hosts`` file: an unknown key is refused unless the connection
opts in to trust on first use (which records it); a changed key is always refused.

Transports are chosen by name from a small registry; ``register_transport`` adds one (a test
double, or a new way in) without touching the session.
"""

from __future__ import annotations

from collections.abc import Callable

from mml_tool.errors import TransportError
from mml_tool.mml.params import ConnectionParams, HasConnectionParams, as_params
from mml_tool.mml.transport.base import KEEPALIVE, READ_SIZE, Transport
from mml_tool.mml.transport.keys import check_key_file
from mml_tool.mml.transport.known_hosts import DEFAULT_KNOWN_HOSTS, HostKey, fingerprint
from mml_tool.mml.transport.ssh import SshShellTransport, SshTunnelTransport
from mml_tool.mml.transport.tcp import TcpTransport

TransportFactory = Callable[[ConnectionParams], Transport]

_REGISTRY: dict[str, TransportFactory] = {
    "ssh": SshShellTransport,
    "ssh-tunnel": SshTunnelTransport,
    "tcp": TcpTransport,
}


def register_transport(name: str, factory: TransportFactory) -> None:
    """Make ``transport=name`` build its pipe with ``factory(params)``."""
    _REGISTRY[name] = factory


def transport_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def make_transport(target: ConnectionParams | HasConnectionParams) -> Transport:
    """The transport ``target.transport`` names, not yet open."""
    params = as_params(target)
    factory = _REGISTRY.get(params.transport)
    if factory is None:
        raise TransportError(
            f"{params.name}: unknown transport {params.transport!r}: use "
            f"{', '.join(transport_names())}"
        )
    return factory(params)


__all__ = [
    "DEFAULT_KNOWN_HOSTS",
    "KEEPALIVE",
    "READ_SIZE",
    "HostKey",
    "SshShellTransport",
    "SshTunnelTransport",
    "TcpTransport",
    "Transport",
    "TransportFactory",
    "check_key_file",
    "fingerprint",
    "make_transport",
    "register_transport",
    "transport_names",
]
