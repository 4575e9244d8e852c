"""One host from plain fields (an Ansible task's options, a Nornir host), checked exactly as
an entry of an inventory file is."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mml_tool.errors import InventoryError
from mml_tool.inventory.loader import _Loader
from mml_tool.inventory.models import HOST_KEYS, HostConfig
from mml_tool.secret import Secret

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


_SIGNING_KEY_VAR = "MML_TOOL_FIELD_SIGNING_KEY"
SIGNING_KEY_FIELDS = ("plan_signing_key", "plan_signing_key_file")


def signing_key_from_fields(
    fields: Mapping[str, Any], *, base: Path | None = None, where: str = "(inventory data)"
) -> Secret | None:
    """``plan_signing_key`` or ``plan_signing_key_file`` from plain fields (a Nornir inventory's
    data), checked as the inventory loader checks them (one of the two, long enough, a
    readable file relative to ``base``); None when neither is set. The key's text goes in as a
    ``${VAR}`` reference, so no message ever carries it."""
    data = {k: fields[k] for k in SIGNING_KEY_FIELDS if fields.get(k) is not None}
    env: dict[str, str] = {}
    if "plan_signing_key" in data:
        env[_SIGNING_KEY_VAR] = str(data["plan_signing_key"])
        data["plan_signing_key"] = "${" + _SIGNING_KEY_VAR + "}"
    folder = (base or Path.cwd()).resolve()
    return _Loader(folder / where, env, None).signing_key(data)
