"""One host from plain fields (an Ansible task's options, a Nornir host), checked exactly as
an entry of an inventory file is."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mml_tool.errors import InventoryError
from mml_tool.inventory.loader import _Loader
from mml_tool.inventory.models import HOST_KEYS, HostConfig

_PASSWORD_VAR = "MML_TOOL_FIELD_PASSWORD"
_PASSPHRASE_VAR = "MML_TOOL_FIELD_PASSPHRASE"


def host_from_fields(
    name: str, fields: Mapping[str, Any], *, base: Path | None = None
) -> HostConfig:
    """A host from the fields of an inventory host entry (``hostname``, ``port``, ``password``,
    ...), checked exactly as the inventory loader checks them; ``None`` values are left out and
    relative paths are relative to ``base`` (default: the current folder).

    The secrets go in as ``${VAR}`` references resolved from a private mapping, so a password
    that holds ``${...}`` is taken literally and never reaches an error message."""
    unknown = sorted(set(fields) - set(HOST_KEYS))
    if unknown:
        raise InventoryError(
            f"host {name!r}: unknown field(s) {', '.join(unknown)}; known: {', '.join(HOST_KEYS)}"
        )
    data = {k: v for k, v in fields.items() if v is not None}
    env: dict[str, str] = {}
    for key, var in (("password", _PASSWORD_VAR), ("key_passphrase", _PASSPHRASE_VAR)):
        if key in data:
            env[var] = str(data[key])
            data[key] = "${" + var + "}"
    folder = (base or Path.cwd()).resolve()
    loader = _Loader(folder / "(connection options)", env, None)
    return loader.host(name, data, {}, {}, {})
