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

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from mml_tool._io import default_audit_file
from mml_tool.errors import InventoryError
from mml_tool.mml.params import ConnectionParams, JumpHost
from mml_tool.secret import Secret

TRANSPORTS = ("ssh", "ssh-tunnel", "tcp")
DEFAULT_PORTS = {"ssh": 22, "ssh-tunnel": 6000, "tcp": 6000}
PASSWORD_SOURCES = ("password", "password_file", "password_prompt")
PASSPHRASE_SOURCES = ("key_passphrase", "key_passphrase_file", "key_passphrase_prompt")
# The keys of a host entry, in the order messages list them (schema.HostDoc has the same).
HOST_KEYS = (
    "transport", "hostname", "port", "username", *PASSWORD_SOURCES, "key_file",
    *PASSPHRASE_SOURCES, "known_hosts", "trust_on_first_use", "connect_timeout", "timeout",
    "platform", "groups", "ne_name", "meid", "gateway", "jump", "encoding",
)  # fmt: skip
MIN_SIGNING_KEY_BYTES = 32
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
NAME_MAX = 128  # an inventory's name: (the history's key column holds paths up to 1024)
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
    # The audit trail of changes made with this inventory (None: the user's state folder).
    audit: Path | None = None
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
    # What the file should not do but may (a secret written out): one line each, no value.
    warnings: tuple[str, ...] = ()
    # ``name:``: what the history keys this inventory's runs by (else its path); see
    # docs/history.md.
    name: str | None = None

    @classmethod
    def from_hosts(
        cls,
        hosts: Iterable[HostConfig | ConnectionParams],
        *,
        gateways: Iterable[GatewayConfig] = (),
        lock_dir: Path | str | None = None,
        audit: Path | str | None = None,
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
            audit=None if audit is None else Path(audit),
        )

    def audit_file(self, explicit: Path | str | None = None) -> Path:
        """Where this inventory's changes are audited: ``explicit`` (``--audit``), else the
        inventory's ``audit:``, else ``audit.jsonl`` in the user's state folder."""
        if explicit is not None:
            return Path(explicit)
        return self.audit if self.audit is not None else default_audit_file()

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
