"""Which gateway of the inventory to verify through: named, the one a UAP host names, or the
only one there is. One rule for the CLI (``verify``) and the API (``mml_tool.verify``)."""

from __future__ import annotations

from mml_tool.errors import ConfigError
from mml_tool.inventory import Inventory


def pick_gateway(
    inventory: Inventory,
    *,
    gateway: str | None = None,
    host: str | None = None,
    names: tuple[str, str] = ("--gateway", "--host"),
) -> str:
    """The gateway's name; a ConfigError saying what to give when it cannot be told.

    ``names``: how the caller spells the two choices in its messages (the CLI's options, or
    the API's ``gateway=``/``host=``)."""
    by_gateway, by_host = names
    if host is not None:
        if gateway is not None:
            raise ConfigError(f"give {by_gateway} or {by_host}, not both")
        if host not in inventory.hosts:
            raise ConfigError(f"no host {host!r} in {inventory.path}")
        gateway = inventory.hosts[host].gateway
        if gateway is None:
            raise ConfigError(f"host {host!r} names no `gateway:` in {inventory.path}")
    if gateway is None:
        if len(inventory.gateways) != 1:
            raise ConfigError(
                f"the inventory has {len(inventory.gateways)} gateways "
                f"({', '.join(inventory.gateways) or 'none'}): pick one with {by_gateway} NAME "
                f"or {by_host} UAP-HOST"
            )
        gateway = next(iter(inventory.gateways))
    if gateway not in inventory.gateways:
        raise ConfigError(f"no gateway {gateway!r} in {inventory.path}")
    return gateway
