"""End-to-end verification through a CC-Gateway, as `mml-tool verify` runs it."""

from __future__ import annotations

from collections.abc import Sequence

from mml_tool.errors import (
    ConfigError,
)
from mml_tool.gateway.pick import pick_gateway
from mml_tool.gateway.verify import VerifyResult, verify_gateway
from mml_tool.inventory import Inventory

# -- end-to-end verification ------------------------------------------------------------------


def verify(
    inventory: Inventory,
    *,
    gateway: str | None = None,
    host: str | None = None,
    directions: Sequence[int] = (1, 2),
) -> VerifyResult:
    """The video-direction verification through ``gateway`` (or the one ``host`` names, or the
    inventory's only gateway), as ``mml-tool verify`` runs it; reads that gateway's secret
    when ``inventory`` was loaded without secrets."""
    gateway = pick_gateway(inventory, gateway=gateway, host=host, names=("gateway", "host"))
    bad = [d for d in directions if d not in (1, 2, 3, 4)]
    if bad or not directions:
        raise ConfigError(
            f"directions {list(directions)}: 1 receive-only, 2 send-only, 3 both, 4 unset"
        )
    inventory = inventory.with_secrets(gateways=[gateway])
    return verify_gateway(inventory.gateways[gateway], directions=tuple(directions))
