"""The inventory: hosts, groups, gateways and defaults from YAML, secrets resolved, never printed.

``models`` holds the resolved dataclasses the rest of the tool uses, ``schema`` the pydantic
models of the file itself (its JSON Schema: ``mml-tool schema inventory``), ``loader`` the
reading (merging, ``${VAR}``, secrets from variables, files or prompts).
"""

from __future__ import annotations

from mml_tool.inventory.fields import host_from_fields
from mml_tool.inventory.loader import load_inventory
from mml_tool.inventory.models import (
    DEFAULT_PORTS,
    HOST_KEYS,
    MIN_SIGNING_KEY_BYTES,
    TRANSPORTS,
    GatewayConfig,
    HostConfig,
    Inventory,
    JumpConfig,
    Prompt,
)

__all__ = [
    "DEFAULT_PORTS",
    "HOST_KEYS",
    "MIN_SIGNING_KEY_BYTES",
    "TRANSPORTS",
    "GatewayConfig",
    "HostConfig",
    "Inventory",
    "JumpConfig",
    "Prompt",
    "host_from_fields",
    "load_inventory",
]
