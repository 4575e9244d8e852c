"""Builds one inventory entry, a host (with its jump host) or a gateway, from its merged
levels (defaults, groups, the entry): each field checked, ``${VAR}`` expanded, secrets read."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mml_tool.errors import InventoryError
from mml_tool.inventory import shape
from mml_tool.inventory.models import (
    _HOSTNAME_RE,
    _NAME_RE,
    DEFAULT_PORTS,
    TRANSPORTS,
    GatewayConfig,
    HostConfig,
    JumpConfig,
)
from mml_tool.inventory.values import _merge_levels, _Value, _Values
from mml_tool.secret import Secret
from mml_tool.yamlload import show


class _Entries(_Values):
    """The host, jump host and gateway builders of the inventory loader."""

    def merge(
        self,
        name: str,
        host: dict[str, Any],
        defaults: dict[str, Any],
        groups: dict[str, dict[str, Any]],
    ) -> tuple[dict[str, _Value], tuple[str, ...]]:
        where = f"host {name!r}"
        # Again here, for a host entry given without a file (automation.host_from_fields).
        entry = {"hosts": {name: host}}
        if not shape.clean(entry):
            from mml_tool.inventory.schema import structure_error

            problem = structure_error(entry)
            if problem is not None:
                raise InventoryError(f"{self.path}: {problem}")
        self.password_level(host, where)
        raw_groups = self.group_names(host, where)
        levels = [("defaults", defaults)]
        for g in raw_groups:
            if g not in groups:
                close = difflib.get_close_matches(g, list(groups), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "define it under groups:"
                raise self.fail(where, f"field 'groups': unknown group {g!r}: {hint}")
            levels.append((f"group {g!r}", groups[g]))
        levels.append((where, host))
        return _merge_levels(levels), tuple(raw_groups)

    def group_names(self, host: dict[str, Any], where: str) -> list[str]:
        raw_groups = host.get("groups") or []
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        if not isinstance(raw_groups, list) or not all(isinstance(g, str) for g in raw_groups):
            raise self.fail(where, "field 'groups' must be a list of group names")
        return raw_groups

    def credentials(
        self,
        merged: dict[str, _Value],
        where: str,
        transport: str,
        username: str,
        get: Callable[[str], Any],
    ) -> tuple[Secret | None, Path | None, Secret | None]:
        """(password, key_file, key passphrase): at least a password, or an SSH key."""
        password = self.secret(merged, where, "", f"MML password for {username}")
        key_file = (
            None if get("key_file") is None else self.file(get("key_file"), where, "key_file")
        )
        passphrase = self.secret(
            merged, where, "key_", f"passphrase of SSH key {key_file}", base="passphrase"
        )
        if passphrase is not None and key_file is None:
            raise self.fail(
                where, "key_passphrase is set but key_file is not: add key_file or remove it"
            )
        if password is None and (transport != "ssh" or key_file is None):
            raise self.fail(
                where,
                "no password: set password (e.g. ${MML_PASSWORD}), password_file or "
                "password_prompt: true" + (" (or key_file)" if transport == "ssh" else ""),
            )
        return password, key_file, passphrase

    def host(
        self,
        name: str,
        data: dict[str, Any],
        defaults: dict[str, Any],
        groups: dict[str, dict[str, Any]],
        gateways: dict[str, GatewayConfig],
    ) -> HostConfig:
        where = f"host {name!r}"
        merged, group_names = self.merge(name, data, defaults, groups)

        def get(key: str, default: Any = None) -> Any:
            if key not in merged or merged[key].value is None:
                return default
            return self.expand(merged[key], where, key)

        transport = self.transport(get("transport", "ssh"), where)
        if get("hostname") is None:
            raise self.fail(where, "field 'hostname' is missing: give the address to connect to")
        hostname = self.text(get("hostname"), where, "hostname", _HOSTNAME_RE)
        port = DEFAULT_PORTS[transport] if get("port") is None else self.port(get("port"), where)
        if get("username") is None:
            raise self.fail(where, "field 'username' is missing: set it on the host or defaults")
        username = self.safe_label(get("username"), where, "username")
        password, key_file, passphrase = self.credentials(merged, where, transport, username, get)
        kh = get("known_hosts")
        gateway = self.gateway_ref(get("gateway"), where, gateways)
        jump = None
        if transport == "ssh-tunnel":
            if get("jump") is None:
                raise self.fail(
                    where,
                    "transport 'ssh-tunnel' needs a 'jump' host: add jump: {hostname: ..., "
                    "port: ..., username: ...}",
                )
            jump = self.jump(name, merged["jump"], username, password, key_file, passphrase, kh)
        elif "jump" in data:
            raise self.fail(
                where,
                f"field 'jump' is only used with transport 'ssh-tunnel', "
                f"not {transport!r}: remove it or change the transport",
            )
        ne_name, meid = get("ne_name"), get("meid")
        return HostConfig(
            name=name,
            hostname=hostname,
            port=port,
            transport=transport,
            username=username,
            password=password,
            key_file=key_file,
            known_hosts=None if kh is None else self.file(kh, where, "known_hosts"),
            trust_on_first_use=self.boolean(
                get("trust_on_first_use", False), where, "trust_on_first_use"
            ),
            connect_timeout=self.seconds(get("connect_timeout", 10), where, "connect_timeout"),
            timeout=self.seconds(get("timeout", 30), where, "timeout"),
            platform=self.text(get("platform", "huawei_uap9600"), where, "platform", _NAME_RE),
            groups=group_names,
            ne_name=None if ne_name is None else self.safe_label(ne_name, where, "ne_name"),
            meid=None if meid is None else self.integer(meid, where, "meid", 0, None),
            gateway=gateway,
            jump=jump,
            key_passphrase=passphrase,
            encoding=self.encoding(get("encoding", "auto"), where),
        )

    def transport(self, value: Any, where: str) -> str:
        if value not in TRANSPORTS:
            # show(), never str()/repr(): the value may be an alias bomb (see yamlload).
            word = value if isinstance(value, str) else ""
            close = difflib.get_close_matches(word, TRANSPORTS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(TRANSPORTS)}"
            raise self.fail(where, f"field 'transport': unknown transport {show(value)}: {hint}")
        return str(value)

    def gateway_ref(
        self, value: Any, where: str, gateways: Mapping[str, GatewayConfig]
    ) -> str | None:
        """The name of a gateway defined under ``gateways:`` (or None)."""
        if value is None:
            return None
        name = self.text(value, where, "gateway")
        if name not in gateways:
            close = difflib.get_close_matches(name, list(gateways), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "define it under gateways:"
            raise self.fail(where, f"field 'gateway': unknown gateway {name!r}: {hint}")
        return name

    def jump(
        self,
        host: str,
        raw: _Value,
        username: str,
        password: Secret | None,
        key_file: Path | None,
        passphrase: Secret | None,
        known_hosts: Any,
    ) -> JumpConfig:
        """Unset jump fields fall back to the host's own user, credentials and known_hosts."""
        where = f"host {host!r}: jump"
        data = self.mapping(raw.value, where)
        self.password_level(data, where)
        # Its own origin: a jump password_prompt in the same group as the host's must ask
        # again (for the SSH password of the jump host), not reuse the host's MML password.
        values = {k: _Value(v, f"{raw.origin}: jump") for k, v in data.items()}

        def get(key: str) -> Any:
            return self.expand(values[key], where, key) if key in values else None

        if get("hostname") is None:
            raise self.fail(where, "field 'hostname' is missing: give the jump host's address")
        jpass = self.secret(values, where, "", "SSH password for the jump host")
        jkey = None if get("key_file") is None else self.file(get("key_file"), where, "key_file")
        jphrase = self.secret(
            values, where, "key_", "passphrase of the jump host's SSH key", base="passphrase"
        )
        if jphrase is not None and jkey is None:
            raise self.fail(
                where, "key_passphrase is set but key_file is not: add key_file or remove it"
            )
        if jpass is None and jkey is None:
            jpass, jkey, jphrase = password, key_file, passphrase
        kh = get("known_hosts") if get("known_hosts") is not None else known_hosts
        return JumpConfig(
            hostname=self.text(get("hostname"), where, "hostname", _HOSTNAME_RE),
            port=22 if get("port") is None else self.port(get("port"), where),
            username=self.safe_label(get("username") or username, where, "username"),
            password=jpass,
            key_file=jkey,
            known_hosts=None if kh is None else self.file(kh, where, "known_hosts"),
            key_passphrase=jphrase,
        )

    def gateway(self, name: str, data: dict[str, Any]) -> GatewayConfig:
        where = f"gateway {name!r}"
        self.password_level(data, where, prefix="agent_")
        values = {k: _Value(v, where) for k, v in data.items()}

        def get(key: str, required: bool = True) -> Any:
            if key in values and values[key].value is not None:
                return self.expand(values[key], where, key)
            if required:
                raise self.fail(where, f"field {key!r} is missing: add it to the gateway")
            return None

        url = self.text(get("url"), where, "url")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise self.fail(where, f"field 'url' = {url!r} must look like https://host:port")
        secret = self.secret(values, where, "agent_", f"agent password for gateway {name}")
        if secret is None:
            raise self.fail(
                where,
                "field 'agent_password' is missing: set agent_password (e.g. "
                "${CCGW_AGENT_PASSWORD}), agent_password_file or agent_password_prompt: true",
            )
        ca = get("ca_bundle", required=False)
        verify = get("verify_tls", required=False)
        timeout = get("timeout", required=False)
        return GatewayConfig(
            name=name,
            url=url.rstrip("/"),
            ca_bundle=None if ca is None else self.file(ca, where, "ca_bundle"),
            verify_tls=True if verify is None else self.boolean(verify, where, "verify_tls"),
            agent_id=self.text(get("agent_id"), where, "agent_id", _NAME_RE),
            agent_password=secret,
            phone_number=self.text(get("phone_number"), where, "phone_number", _NAME_RE),
            called=self.text(get("called"), where, "called", _NAME_RE),
            skill_id=self.integer(get("skill_id"), where, "skill_id", 0, None),
            timeout=15.0 if timeout is None else self.seconds(timeout, where, "timeout"),
        )
