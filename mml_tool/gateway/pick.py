"""Which gateway of the inventory to verify through: named, the one a UAP host names, or the
only one there is."""

from __future__ import annotations

from mml_tool.errors import ConfigError
from mml_tool.inventory import Inventory


def pick_gateway(
    inventory: Inventory, *, gateway: str | None = None, host: str | None = None
) -> str:
    """The gateway's name; a ConfigError saying what to give when it cannot be told."""
    if host is not None:
        if gateway is not None:
            raise ConfigError("give --gateway or --host, not both")
        if host not in inventory.hosts:
            raise ConfigError(f"no host {host!r} in {inventory.path}")
        gateway = inventory.hosts[host].gateway
        if gateway is None:
            raise ConfigError(f"host {host!r} names no `gateway:` in {inventory.path}")
    if gateway is None:
        if len(inventory.gateways) != 1:
            raise ConfigError(
                f"the inventory has {len(inventory.gateways)} gateways "
                f"({', '.join(inventory.gateways) or 'none'}): pick one with --gateway NAME "
                "or --host UAP-HOST"
            )
        gateway = next(iter(inventory.gateways))
    if gateway not in inventory.gateways:
        raise ConfigError(f"no gateway {gateway!r} in {inventory.path}")
    return gateway
