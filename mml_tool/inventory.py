"""Hosts, groups, gateways and defaults from a YAML inventory; secrets resolved, never printed.

Values merge in this order (later wins): ``defaults`` < each of the host's groups' ``vars`` (in
the order the host lists its groups) < the host itself. ``${VAR}`` (or ``${VAR:-fallback}``)
anywhere in a string is replaced from the environment. A password comes from ``password``,
``password_file`` (relative to the inventory's folder; the trailing newline is dropped) or
``password_prompt: true``; the level that sets one of them replaces what a lower level set.
An encrypted ``key_file`` takes its passphrase the same three ways (``key_passphrase``,
``key_passphrase_file``, ``key_passphrase_prompt``).
Relative paths are relative to the inventory file's folder.

Every error is an ``InventoryError`` that names the file, the host (or group, gateway) and the
field, and says what to do. No error message ever carries a secret value.

``load_inventory(..., resolve_secrets=False)`` checks everything but reads no secret (no
variable, file or prompt); ``Inventory.with_secrets(hosts, gateways)`` then resolves only those
a command uses, and names every missing one at once.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import functools
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mml_tool.errors import InventoryError
from mml_tool.mml.params import ConnectionParams, JumpHost
from mml_tool.secret import Secret
from mml_tool.yamlload import load_yaml, show

TRANSPORTS = ("ssh", "ssh-tunnel", "tcp")
DEFAULT_PORTS = {"ssh": 22, "ssh-tunnel": 6000, "tcp": 6000}
PASSWORD_SOURCES = ("password", "password_file", "password_prompt")
PASSPHRASE_SOURCES = ("key_passphrase", "key_passphrase_file", "key_passphrase_prompt")
HOST_KEYS = (
    "transport", "hostname", "port", "username", *PASSWORD_SOURCES, "key_file",
    *PASSPHRASE_SOURCES, "known_hosts", "trust_on_first_use", "connect_timeout", "timeout",
    "platform", "groups", "ne_name", "meid", "gateway", "jump", "encoding",
)  # fmt: skip
JUMP_KEYS = (
    "hostname", "port", "username", *PASSWORD_SOURCES, "key_file", *PASSPHRASE_SOURCES,
    "known_hosts",
)  # fmt: skip
GATEWAY_KEYS = (
    "url", "ca_bundle", "verify_tls", "agent_id", "agent_password", "agent_password_file",
    "agent_password_prompt", "phone_number", "called", "skill_id", "timeout",
)  # fmt: skip
TOP_KEYS = (
    "defaults", "groups", "hosts", "gateways", "lock_dir", "plan_signing_key",
    "plan_signing_key_file",
)  # fmt: skip
MIN_SIGNING_KEY_BYTES = 32
GROUP_KEYS = ("vars", "description")
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
Prompt = Callable[[str], str]


class _Unread(Secret):
    """Stands in for a secret whose source is set but not read yet (resolve_secrets=False):
    using it fails loudly instead of logging in with an empty password."""

    __slots__ = ()

    def reveal(self) -> str:
        raise InventoryError(
            "a secret was used before it was read: load the inventory with its secrets, or "
            "call Inventory.with_secrets for the hosts and gateways used"
        )


_DEFERRED = _Unread("")


@dataclass(frozen=True)
class JumpConfig:
    """The SSH jump host of an ``ssh-tunnel`` host."""

    hostname: str
    port: int
    username: str
    password: Secret | None
    key_file: Path | None
    known_hosts: Path | None
    key_passphrase: Secret | None = None  # for an encrypted key_file


@dataclass(frozen=True)
class HostConfig:
    """One network element, with every value merged and resolved."""

    name: str
    hostname: str
    port: int
    transport: str
    username: str
    password: Secret | None
    key_file: Path | None
    known_hosts: Path | None
    trust_on_first_use: bool
    connect_timeout: float
    timeout: float
    platform: str
    groups: tuple[str, ...]
    ne_name: str | None
    meid: int | None
    gateway: str | None
    jump: JumpConfig | None
    key_passphrase: Secret | None = None  # for an encrypted key_file
    # auto: UTF-8, or GB18030 when the bytes are not valid UTF-8 (Chinese-language elements)
    encoding: str = "auto"

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"

    def secrets(self) -> list[Secret]:
        """Every secret this host was given (passwords, passphrases, its jump host's too): what
        a session scrubs, by value, from everything it keeps or prints."""
        found = [self.password, self.key_passphrase]
        if self.jump is not None:
            found += [self.jump.password, self.jump.key_passphrase]
        return [s for s in found if s]

    def connection_params(self) -> ConnectionParams:
        """How the protocol layer reaches this host (``mml/`` never imports the inventory)."""
        j = self.jump
        jump = None if j is None else JumpHost(**vars(j))
        return ConnectionParams(
            host=self.hostname, port=self.port, transport=self.transport,
            username=self.username, password=self.password, key_file=self.key_file,
            key_passphrase=self.key_passphrase, known_hosts=self.known_hosts,
            trust_on_first_use=self.trust_on_first_use, connect_timeout=self.connect_timeout,
            timeout=self.timeout, ne_name=self.ne_name, meid=self.meid, jump=jump,
            encoding=self.encoding, platform=self.platform, name=self.name,
        )  # fmt: skip


@dataclass(frozen=True)
class GatewayConfig:
    """A CC-Gateway and the test agent that the verification signs in."""

    name: str
    url: str
    ca_bundle: Path | None
    verify_tls: bool
    agent_id: str
    agent_password: Secret
    phone_number: str
    called: str
    skill_id: int
    timeout: float


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: dict[str, HostConfig]
    gateways: dict[str, GatewayConfig]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> host names
    # Where host locks live for everyone using this inventory (None: the machine's default).
    lock_dir: Path | None = None
    # See plan_signing_key: the key, or why it could not be read.
    signing_key: Secret | None = field(default=None, repr=False)
    signing_key_problem: str | None = None

    @property
    def plan_signing_key(self) -> Secret | None:
        """The HMAC key plans are signed with and checked against (None: plans are not signed).

        Read only by the commands that make or apply plans: a read-only `check` (a cron job)
        works without the key's variable or file, and never holds the secret."""
        if self.signing_key_problem is not None:
            raise InventoryError(self.signing_key_problem)
        return self.signing_key

    # Rebuilds one host or gateway with its secrets read; set when loaded without them.
    resolver: Callable[[str, str], HostConfig | GatewayConfig] | None = field(
        default=None, repr=False, compare=False
    )

    @classmethod
    def from_hosts(
        cls,
        hosts: Iterable[HostConfig | ConnectionParams],
        *,
        gateways: Iterable[GatewayConfig] = (),
        lock_dir: Path | str | None = None,
    ) -> Inventory:
        """An inventory built in code, no YAML: ``ConnectionParams`` become hosts (their
        ``name``; no group, no gateway), ``HostConfig`` are taken as they are."""
        built: dict[str, HostConfig] = {}
        for h in hosts:
            if isinstance(h, ConnectionParams):
                j = h.jump
                jump = None if j is None else JumpConfig(**vars(j))
                h = HostConfig(
                    name=h.name, hostname=h.host, port=h.port, transport=h.transport,
                    username=h.username, password=h.password, key_file=h.key_file,
                    known_hosts=h.known_hosts, trust_on_first_use=h.trust_on_first_use,
                    connect_timeout=h.connect_timeout, timeout=h.timeout, platform=h.platform,
                    groups=(), ne_name=h.ne_name, meid=h.meid, gateway=None, jump=jump,
                    key_passphrase=h.key_passphrase, encoding=h.encoding,
                )  # fmt: skip
            if h.name in built:
                raise InventoryError(f"Inventory.from_hosts: host {h.name!r} given twice")
            built[h.name] = h
        return cls(
            path=Path("<code>"),
            hosts=built,
            gateways={g.name: g for g in gateways},
            lock_dir=None if lock_dir is None else Path(lock_dir),
        )

    def with_secrets(self, hosts: Iterable[str] = (), gateways: Iterable[str] = ()) -> Inventory:
        """This inventory with the secrets of ``hosts`` and ``gateways`` read (variables, files,
        prompts); every one that cannot be read is named in one ``InventoryError``."""
        if self.resolver is None:
            return self
        new_hosts, new_gateways = dict(self.hosts), dict(self.gateways)
        problems: dict[str, list[str]] = {}  # problem -> the hosts/gateways that have it
        for kind, names, target in (
            ("host", hosts, new_hosts),
            ("gateway", gateways, new_gateways),
        ):
            for name in dict.fromkeys(names):
                try:
                    target[name] = self.resolver(kind, name)  # type: ignore[assignment]
                except InventoryError as exc:
                    where = f"{kind} {name!r}"
                    problem = str(exc).replace(f"{self.path}: {where}: ", "", 1)
                    problems.setdefault(problem, []).append(where)
        if problems:
            # One whole line per problem (greppable in a log), naming every host it hits.
            lines = [f"{self.path}: {', '.join(w)}: {p}" for p, w in problems.items()]
            if len(lines) == 1:
                raise InventoryError(lines[0])
            raise InventoryError(f"{len(lines)} secrets cannot be read:\n" + "\n".join(lines))
        return replace(self, hosts=new_hosts, gateways=new_gateways)

    def select(self, limit: str | None) -> list[HostConfig]:
        """Hosts named by ``limit``: comma-separated host names, group names or fnmatch patterns
        over host names (``None``, ``""`` or ``all``: every host), in inventory order."""
        if not limit or limit.strip() == "all":
            return list(self.hosts.values())
        chosen: set[str] = set()
        for token in (t.strip() for t in limit.split(",")):
            if not token:
                continue
            names = set(fnmatch.filter(self.hosts, token)) | set(self.groups.get(token, ()))
            if not names and token not in self.groups:  # an empty group is not a typo
                known = sorted(self.hosts) + sorted(self.groups)
                hint = difflib.get_close_matches(token, known, n=1)
                raise InventoryError(
                    f"{self.path}: --limit {token!r} matches no host or group"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; hosts: {', '.join(sorted(self.hosts)) or '(none)'}"
                )
            chosen |= names
        return [h for name, h in self.hosts.items() if name in chosen]


@dataclass
class _Value:
    """A raw inventory value and where it was set (for error messages)."""

    value: Any
    origin: str


class _Loader:
    def __init__(
        self, path: Path, env: Mapping[str, str], prompt: Prompt | None, defer: bool = False
    ) -> None:
        self.path = path
        self.base = path.parent
        self.env = env
        self.prompt = prompt
        self.defer = defer  # check where each secret comes from, but read none
        self._prompted: dict[str, Secret] = {}  # one prompt per place it is asked for
        self._builders: dict[tuple[str, str], Callable[[], HostConfig | GatewayConfig]] = {}

    def resolve(self, kind: str, name: str) -> HostConfig | GatewayConfig:
        """Build host or gateway ``name`` again, this time reading its secrets."""
        if (kind, name) not in self._builders:
            raise self.fail(f"{kind} {name!r}", f"no such {kind}: add it under {kind}s:")
        self.defer = False
        try:
            return self._builders[(kind, name)]()
        finally:
            self.defer = True

    def fail(self, where: str, what: str) -> InventoryError:
        return InventoryError(f"{self.path}: {where}: {what}")

    # -- structure -------------------------------------------------------------------------

    def mapping(self, value: object, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping (key: value), not {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"key {key!r} must be a string")
        return value

    def check_keys(self, data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
                raise self.fail(where, f"unknown key {key!r}: {hint}")

    def password_level(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        for sources in (PASSWORD_SOURCES, () if prefix else PASSPHRASE_SOURCES):
            names = [f"{prefix}{k}" for k in sources]
            given = [n for n in names if n in data and data[n] not in (None, False)]
            if len(given) > 1:
                raise self.fail(where, f"{' and '.join(given)} are both set: keep only one of them")

    # -- values ----------------------------------------------------------------------------

    def expand(self, raw: _Value, where: str, name: str) -> Any:
        if not isinstance(raw.value, str):
            return raw.value

        def repl(m: re.Match[str]) -> str:
            var, fallback = m.group(1), m.group(2)
            if var in self.env:
                return self.env[var]
            if fallback is not None:
                return fallback
            raise self.fail(
                f"{where}: field {name!r} (set in {raw.origin})",
                f"environment variable {var} is not set: export {var}=... before running, "
                "or change the inventory",
            )

        return _VAR_RE.sub(repl, raw.value)

    def text(self, value: Any, where: str, name: str, safe: re.Pattern[str] | None = None) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"field {name!r} must be a non-empty string, not {_kind(value)}")
        if safe is not None and not safe.fullmatch(value):
            raise self.fail(where, f"field {name!r} = {value!r} holds characters not allowed there")
        return value

    def safe_label(self, value: Any, where: str, name: str) -> str:
        """A value rendered between quotes in an MML command (ne_name, username)."""
        text = self.text(value, where, name)
        bad = [c for c in text if c in "\"';%\\" or not c.isprintable()]
        if bad:
            raise self.fail(
                where,
                f"field {name!r} contains {bad[0]!r}: quotes, ';', '%', '\\' and control "
                "characters are not allowed (they could end the MML command early)",
            )
        return text

    def integer(self, value: Any, where: str, name: str, low: int, high: int | None) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"field {name!r} must be a whole number, not {_kind(value)}")
        if value < low or (high is not None and value > high):
            limits = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.fail(where, f"field {name!r} = {value} must be {limits}")
        return value

    def port(self, value: Any, where: str, name: str = "port") -> int:
        return self.integer(value, where, name, 1, 65535)

    def seconds(self, value: Any, where: str, name: str) -> float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)  # nan would never pass a deadline: a hang
            or value <= 0
        ):
            raise self.fail(where, f"field {name!r} must be a number of seconds above 0")
        return float(value)

    def boolean(self, value: Any, where: str, name: str) -> bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise self.fail(where, f"field {name!r} must be true or false, not {_kind(value)}")
        return value

    def encoding(self, value: Any, where: str) -> str:
        from mml_tool.mml.encoding import check_encoding  # lazy: mml imports this module

        try:
            return check_encoding(self.text(value, where, "encoding"))
        except ValueError as exc:
            raise self.fail(where, f"field 'encoding': {exc}") from None

    def file(self, value: Any, where: str, name: str) -> Path:
        text = self.text(value, where, name)
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    def secret(
        self,
        data: Mapping[str, _Value],
        where: str,
        prefix: str,
        question: str,
        base: str = "password",
    ) -> Secret | None:
        """The secret set by ``{prefix}{base}``, ``..._file`` or ``..._prompt``."""
        name = f"{prefix}{base}"
        file_field, prompt_field = f"{name}_file", f"{name}_prompt"
        if self.defer:
            given = [data[k].value for k in (name, file_field, prompt_field) if k in data]
            off = (None, False, "false", "no", "0")
            return _DEFERRED if any(v not in off for v in given) else None
        if name in data and data[name].value is not None:
            value = self.expand(data[name], where, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise self.fail(where, f"field {name!r} must be a string, not {_kind(value)}")
            return Secret(value)
        if file_field in data and data[file_field].value is not None:
            path = self.file(self.expand(data[file_field], where, file_field), where, file_field)
            try:
                return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
            except OSError as exc:
                raise self.fail(
                    where,
                    f"field {file_field!r}: cannot read {path} ({exc.strerror}): create it with "
                    f"the {base} on one line, readable by you only (chmod 600)",
                ) from None
        raw = data.get(prompt_field)
        if raw is not None and self.boolean(
            self.expand(raw, where, prompt_field), where, prompt_field
        ):
            key = f"{raw.origin}/{name}"
            if key not in self._prompted:
                if self.prompt is None:
                    raise self.fail(
                        where,
                        f"field {prompt_field!r} asks for the {base} on the terminal, but "
                        f"there is none: run interactively, or set the {base} through an "
                        f"environment variable ({name}: ${{VAR}}) or a {name}_file",
                    )
                self._prompted[key] = Secret(self.prompt(f"{question} ({raw.origin}): "))
            return self._prompted[key]
        return None

    # -- sections --------------------------------------------------------------------------

    def load(self) -> Inventory:
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
        top = self.mapping(doc, "top level")
        self.check_keys(top, TOP_KEYS, "top level")
        defaults = self.mapping(top.get("defaults"), "defaults")
        self.check_keys(defaults, tuple(k for k in HOST_KEYS if k != "groups"), "defaults")
        self.password_level(defaults, "defaults")
        groups: dict[str, dict[str, Any]] = {}
        for gname, gdata in self.mapping(top.get("groups"), "groups").items():
            where = f"group {gname!r}"
            gmap = self.mapping(gdata, where)
            self.check_keys(gmap, GROUP_KEYS, where)
            gvars = self.mapping(gmap.get("vars"), f"{where}: vars")
            self.check_keys(gvars, tuple(k for k in HOST_KEYS if k != "groups"), where)
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
        lock_dir = top.get("lock_dir")
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
            lock_dir=None
            if lock_dir is None
            else self.file(
                self.expand(_Value(lock_dir, "top level"), "top level", "lock_dir"),
                "top level",
                "lock_dir",
            ),
            signing_key=key,
            signing_key_problem=key_problem,
            resolver=self.resolve if self.defer else None,
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

    def merge(
        self,
        name: str,
        host: dict[str, Any],
        defaults: dict[str, Any],
        groups: dict[str, dict[str, Any]],
    ) -> tuple[dict[str, _Value], tuple[str, ...]]:
        where = f"host {name!r}"
        self.check_keys(host, HOST_KEYS, where)
        self.password_level(host, where)
        raw_groups = host.get("groups") or []
        if isinstance(raw_groups, str):
            raw_groups = [raw_groups]
        if not isinstance(raw_groups, list) or not all(isinstance(g, str) for g in raw_groups):
            raise self.fail(where, "field 'groups' must be a list of group names")
        levels = [("defaults", defaults)]
        for g in raw_groups:
            if g not in groups:
                close = difflib.get_close_matches(g, list(groups), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "define it under groups:"
                raise self.fail(where, f"field 'groups': unknown group {g!r}: {hint}")
            levels.append((f"group {g!r}", groups[g]))
        levels.append((where, host))
        merged: dict[str, _Value] = {}
        for origin, data in levels:
            for sources in (PASSWORD_SOURCES, PASSPHRASE_SOURCES):
                if any(k in data for k in sources):
                    for k in sources:  # the level that sets a secret replaces all its sources
                        merged.pop(k, None)
            for key, value in data.items():
                if key != "groups":
                    merged[key] = _Value(value, origin)
        return merged, tuple(raw_groups)

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

        transport = get("transport", "ssh")
        if transport not in TRANSPORTS:
            # show(), never str()/repr(): the value may be an alias bomb (see yamlload).
            word = transport if isinstance(transport, str) else ""
            close = difflib.get_close_matches(word, TRANSPORTS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(TRANSPORTS)}"
            raise self.fail(
                where, f"field 'transport': unknown transport {show(transport)}: {hint}"
            )
        if get("hostname") is None:
            raise self.fail(where, "field 'hostname' is missing: give the address to connect to")
        hostname = self.text(get("hostname"), where, "hostname", _HOSTNAME_RE)
        port = DEFAULT_PORTS[transport] if get("port") is None else self.port(get("port"), where)
        if get("username") is None:
            raise self.fail(where, "field 'username' is missing: set it on the host or defaults")
        username = self.safe_label(get("username"), where, "username")
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
        kh = get("known_hosts")
        gateway = get("gateway")
        if gateway is not None:
            gateway = self.text(gateway, where, "gateway")
            if gateway not in gateways:
                close = difflib.get_close_matches(gateway, list(gateways), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "define it under gateways:"
                raise self.fail(where, f"field 'gateway': unknown gateway {gateway!r}: {hint}")
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
        self.check_keys(data, JUMP_KEYS, where)
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
        self.check_keys(data, GATEWAY_KEYS, where)
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


def _kind(value: object) -> str:
    """A value's type for an error message (the value itself might be a secret)."""
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


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
