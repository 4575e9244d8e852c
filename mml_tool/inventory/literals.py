"""Secrets written out in an inventory file (``password: secret123``).

An inventory is a file that gets reviewed, shared and committed: a secret written in it is read
by everyone who can read the file or its history. The loader accepts one (a lab, a first try)
but says where each is, never what, so that the file can be moved to ``${VAR}`` or ``*_file``.
Found on the document as written, before ``${VAR}`` expansion, so a variable's value never
counts as written out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mml_tool.inventory.models import _VAR_RE

_SECRET_FIELDS = ("password", "key_passphrase")  # of defaults, group vars, hosts and jump hosts


def _written_out(value: Any) -> bool:
    """Whether ``value`` holds secret text of its own, not only ``${VAR}`` references."""
    if value is None or isinstance(value, bool):
        return False  # unset, or a switch (password: false): no secret
    if isinstance(value, (int, float)):
        return True  # password: 123456
    if not isinstance(value, str):
        return False  # the wrong shape: the loader's error, not a warning
    if any(m.group(2) for m in _VAR_RE.finditer(value)):
        return True  # ${VAR:-secret123}: the fallback is written out
    return bool(_VAR_RE.sub("", value).strip())


def _level(data: Any, where: str) -> Iterator[str]:
    if not isinstance(data, dict):
        return
    for name in _SECRET_FIELDS:
        if _written_out(data.get(name)):
            yield f"{where}: {name}"
    jump = data.get("jump")
    if isinstance(jump, dict):
        yield from _level(jump, f"{where}: jump")


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def written_out_secrets(doc: Any) -> list[str]:
    """Where ``doc`` (an inventory's YAML) writes a secret out, as the loader names places:
    ``defaults: password``, ``host 'uap-1': jump: password``, ``gateway 'gw': agent_password``.
    """
    top = _mapping(doc)
    places = ["top level: plan_signing_key"] if _written_out(top.get("plan_signing_key")) else []
    places += _level(top.get("defaults"), "defaults")
    for name, group in _mapping(top.get("groups")).items():
        places += _level(_mapping(group).get("vars"), f"group {name!r}")
    for name, host in _mapping(top.get("hosts")).items():
        places += _level(host, f"host {name!r}")
    for name, gateway in _mapping(top.get("gateways")).items():
        if _written_out(_mapping(gateway).get("agent_password")):
            places.append(f"gateway {name!r}: agent_password")
    return places


def written_out_warnings(path: Path, doc: Any) -> tuple[str, ...]:
    """One line for the whole file, or none when nothing is written out; never a value."""
    places = written_out_secrets(doc)
    if not places:
        return ()
    return (
        f"{path} holds secrets written out ({'; '.join(places)}): whoever can read the file or "
        "its history has them. Take each from the environment (password: ${MML_PASSWORD}) or "
        "from a file readable by you only (password_file: secrets/mml.pw, chmod 600; "
        "key_passphrase_file, agent_password_file and plan_signing_key_file alike)",
    )
