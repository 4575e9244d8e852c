"""Reads an inventory file: its YAML and structure, the sections (defaults, groups, gateways,
hosts) and the top-level fields (lock_dir, audit, the plan signing key). Each host and gateway
is built, its ``${VAR}`` expanded and its secrets read, by ``entries``."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mml_tool.errors import InventoryError
from mml_tool.inventory import shape
from mml_tool.inventory.entries import _Entries
from mml_tool.inventory.literals import written_out_warnings
from mml_tool.inventory.models import (
    _NAME_RE,
    MIN_SIGNING_KEY_BYTES,
    NAME_MAX,
    GatewayConfig,
    HostConfig,
    Inventory,
    Prompt,
)
from mml_tool.inventory.values import _Value
from mml_tool.secret import Secret
from mml_tool.yamlload import load_yaml


class _Loader(_Entries):
    """One inventory file, read into an ``Inventory``."""

    def resolve(self, kind: str, name: str) -> HostConfig | GatewayConfig:
        """Build host or gateway ``name`` again, this time reading its secrets."""
        if (kind, name) not in self._builders:
            raise self.fail(f"{kind} {name!r}", f"no such {kind}: add it under {kind}s:")
        self.defer = False
        try:
            return self._builders[(kind, name)]()
        finally:
            self.defer = True

    # -- sections --------------------------------------------------------------------------

    def document(self) -> Any:
        """The file's YAML, its structure checked by the models."""
        try:
            doc = load_yaml(self.path.read_text(encoding="utf-8"), str(self.path), InventoryError)
        except OSError as exc:
            raise InventoryError(
                f"{self.path}: cannot read the inventory ({exc.strerror}): check the path"
            ) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise InventoryError(
                f"{self.path}: YAML syntax error{line}: {problem}: fix the file"
            ) from None
        if shape.clean(doc):  # the common case, without importing pydantic (issue 14)
            return doc
        # Imported here: pydantic takes ~0.1 s to import; `mml-tool --help` need not wait.
        from mml_tool.inventory.schema import structure_error

        problem = structure_error(doc)  # unknown keys, sections that are not mappings
        if problem is not None:
            raise InventoryError(f"{self.path}: {problem}")
        return doc

    def load(self) -> Inventory:
        top = self.mapping(self.document(), "top level")
        defaults = self.mapping(top.get("defaults"), "defaults")
        self.password_level(defaults, "defaults")
        groups: dict[str, dict[str, Any]] = {}
        for gname, gdata in self.mapping(top.get("groups"), "groups").items():
            where = f"group {gname!r}"
            gmap = self.mapping(gdata, where)
            gvars = self.mapping(gmap.get("vars"), f"{where}: vars")
            self.password_level(gvars, where)
            groups[gname] = gvars
        gateways: dict[str, GatewayConfig] = {}
        for name, data in self.mapping(top.get("gateways"), "gateways").items():
            gmap = self.mapping(data, f"gateway {name!r}")
            gateways[name] = self.gateway(name, gmap)
            self._builders[("gateway", name)] = functools.partial(self.gateway, name, gmap)
        hosts: dict[str, HostConfig] = {}
        for hname, hdata in self.mapping(top.get("hosts"), "hosts").items():
            if not _NAME_RE.fullmatch(hname):
                raise self.fail(
                    f"host {hname!r}", "a host name is letters, digits, '_', '.', '-' only"
                )
            hmap = self.mapping(hdata, f"host {hname!r}")
            hosts[hname] = self.host(hname, hmap, defaults, groups, gateways)
            self._builders[("host", hname)] = functools.partial(
                self.host, hname, hmap, defaults, groups, gateways
            )
        members = {g: tuple(h for h in hosts if g in hosts[h].groups) for g in groups}
        lock_dir, audit = top.get("lock_dir"), top.get("audit")
        key, key_problem = None, None
        try:
            key = self.signing_key(top)
        except InventoryError as exc:
            key_problem = str(exc)
        return Inventory(
            self.path,
            hosts,
            gateways,
            members,
            lock_dir=None if lock_dir is None else self.top_file(lock_dir, "lock_dir"),
            audit=None if audit is None else self.top_file(audit, "audit"),
            signing_key=key,
            signing_key_problem=key_problem,
            resolver=self.resolve if self.defer else None,
            warnings=written_out_warnings(self.path, top),
            name=None if top.get("name") is None else self.inventory_name(top["name"]),
        )

    def inventory_name(self, value: Any) -> str:
        """``name:``, the key of this inventory's history: a short label, never a path."""
        if not isinstance(value, str):  # 010 is read as 8, on as true: the key would not be it
            raise self.fail(
                "top level",
                f"field 'name' is read by YAML as {type(value).__name__} {value!r}, not as the "
                'text written: quote it (e.g. name: "010")',
            )
        if not _NAME_RE.fullmatch(value):
            raise self.fail(
                "top level",
                f"field 'name' must be letters, digits, '_', '.', '-' only (the key of this "
                f"inventory's history, e.g. name: east-fleet), not {value!r}",
            )
        if len(value) > NAME_MAX:
            raise self.fail("top level", f"field 'name' must be at most {NAME_MAX} characters")
        return value

    def top_file(self, value: Any, field: str) -> Path:
        return self.file(
            self.expand(_Value(value, "top level"), "top level", field), "top level", field
        )

    def signing_key(self, top: Mapping[str, Any]) -> Secret | None:
        """``plan_signing_key`` (e.g. ``${MML_PLAN_KEY}``) or ``plan_signing_key_file``."""
        where = "top level"
        given = [k for k in ("plan_signing_key", "plan_signing_key_file") if top.get(k) is not None]
        if len(given) > 1:
            raise self.fail(
                where, "plan_signing_key and plan_signing_key_file are both set: keep only one"
            )
        if not given:
            return None
        name = given[0]
        value = self.expand(_Value(top[name], where), where, name)
        if name == "plan_signing_key_file":
            path = self.file(value, where, name)
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, ValueError) as exc:
                why = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise self.fail(
                    where,
                    f"field {name!r}: cannot read {path} ({why}): put the key on one line, "
                    "readable only by those who may sign or apply plans (chmod 600)",
                ) from None
        if not isinstance(value, str) or len(value.encode("utf-8")) < MIN_SIGNING_KEY_BYTES:
            # Never the value itself: it is a secret, even when it is too short.
            raise self.fail(
                where,
                f"field {name!r}: the key must be text of at least {MIN_SIGNING_KEY_BYTES} "
                "characters; make one with `openssl rand -hex 32`",
            )
        return Secret(value)


def load_inventory(
    path: Path | str,
    *,
    prompt: Prompt | None = None,
    env: Mapping[str, str] | None = None,
    resolve_secrets: bool = True,
) -> Inventory:
    """Read and check the inventory at ``path``; ``prompt`` asks for ``password_prompt``
    passwords (None: refuse them); ``env`` defaults to ``os.environ``.

    ``resolve_secrets=False``: read no secret now; call ``with_secrets`` for the hosts and
    gateways a command uses (the others may lack theirs)."""
    loader = _Loader(Path(path), os.environ if env is None else env, prompt, not resolve_secrets)
    return loader.load()
