"""Where the history goes: ``--no-history``, ``--history URL|PATH`` (or ``$MML_TOOL_HISTORY``),
the inventory's ``history:``, else an SQLite file in the state directory.

A PostgreSQL password never sits in a URL on a command line or in an inventory: it comes from
``${VAR}`` (expanded here from the environment) or a file (the inventory's ``password_file``).
The location is shown with the password hidden; the password travels as a ``Secret``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mml_tool.errors import ConfigError, InventoryError
from mml_tool.secret import Secret
from mml_tool.yamlload import load_yaml

if TYPE_CHECKING:  # SQLAlchemy is loaded for a URL only: a file path needs none (``lite``)
    from sqlalchemy.engine import URL

HISTORY_FILE = "history.sqlite"
_VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_PLAIN_VAR = re.compile(r"\$\{(\w+)\}")
_SCHEMES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class HistoryLocation:
    """A store to open: an SQLAlchemy URL without its password, and the password apart; or an
    SQLite file given by its path (``file``), which a run is recorded into without SQLAlchemy
    (``lite``) while the file is at the current schema version."""

    database_url: URL | None = None  # None for a ``file``
    password: Secret | None = None
    file: Path | None = None

    @property
    def url(self) -> URL:
        if self.database_url is not None:
            return self.database_url
        from sqlalchemy.engine import URL

        return URL.create("sqlite", database=str(self.file))

    @property
    def shown(self) -> str:
        """For messages: never the password."""
        return self.url.render_as_string(hide_password=True)

    def connect_url(self) -> URL:
        url = self.url
        if url.drivername == "postgresql":  # psycopg 3: the driver pyproject installs
            url = url.set(drivername="postgresql+psycopg")
        if self.password is not None:
            url = url.set(password=self.password.reveal())
        return url


def default_path() -> Path:
    """``history.sqlite`` in the user's state directory (``$XDG_STATE_HOME/mml-tool`` or
    ``~/.local/state/mml-tool`` on Linux)."""
    from mml_tool._io import state_dir  # the one state folder (audit trail, locks, history)

    return state_dir() / HISTORY_FILE


def _sqlite(path: Path) -> HistoryLocation:
    return HistoryLocation(file=path.expanduser())


def parse_location(
    value: str,
    *,
    where: str,
    env: Mapping[str, str] | None = None,
    base: Path | None = None,
    password: Secret | None = None,
) -> HistoryLocation:
    """``value`` (a path or a ``sqlite:``/``postgresql:`` URL) as a location; ConfigError
    naming ``where`` for anything else, and for a password written out in the URL."""
    env = os.environ if env is None else env
    if "://" not in value:
        path = Path(value).expanduser()
        return _sqlite(path if path.is_absolute() or base is None else base / path)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # ValueError: a bad port, e.g. an unclosed [::1
        raise ConfigError(
            f"{where}: {value.split('://')[0]}://... is not a database URL: give a file path, "
            "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        ) from None
    if url.drivername.split("+")[0] not in _SCHEMES:
        raise ConfigError(
            f"{where}: {url.drivername}:// is not supported: give a file path (SQLite), "
            "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    if url.password is not None:
        match = _VAR.match(str(url.password))
        if match is None:  # never echo it: it is a password
            raise ConfigError(
                f"{where}: the URL holds a password: write postgresql://USER:${{VAR}}@HOST/DB "
                "with the password in the environment variable VAR (or use the inventory's "
                "history: password_file)"
            )
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"{where}: the URL's password variable ${{{name}}} is not set")
        password = Secret(env[name])
        url = url.set(password=None)
    if url.drivername.startswith("sqlite") and url.database and base is not None:
        path = Path(url.database).expanduser()
        if not path.is_absolute():
            url = url.set(database=str(base / path))
    return HistoryLocation(url, password)


def inventory_name(path: Path) -> str | None:
    """The inventory's ``name:`` (the key of its runs), None when it has none. The command
    loaded the inventory before (a bad name is refused there)."""
    try:
        name = _head(path)[0]
    except OSError:
        return None
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    return name if isinstance(name, str) and name else None


def _head(path: Path) -> tuple[Any, Any]:
    """The inventory's ``name:`` and ``history:`` as written ((None, None) for a file the
    inventory loader refuses: it says why). Read once per version of the file: a run needs
    both after the command loaded the inventory (a watch at every round), and each parse of a
    1000-host inventory is ~40 ms."""
    stat = path.stat()
    return _read_head(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_head(path: str, mtime_ns: int, size: int) -> tuple[Any, Any]:
    text = Path(path).read_bytes()
    try:
        doc = load_yaml(text, path, InventoryError)
    except Exception:  # the inventory loader reports a broken file with its own message
        return None, None
    return (doc.get("name"), doc.get("history")) if isinstance(doc, dict) else (None, None)


def from_inventory(path: Path, env: Mapping[str, str] | None = None) -> HistoryLocation | None:
    """The inventory's ``history:`` (a path or URL, or ``{url, password | password_file}``);
    None when it has none. Relative paths are from the inventory's folder."""
    env = os.environ if env is None else env
    try:
        spec: Any = copy.deepcopy(_head(path)[1])  # the cached one stays as read
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if spec is None:
        return None
    where = f"{path}: history"
    base = path.parent
    if isinstance(spec, str):
        return parse_location(_expand(spec, where, env), where=where, env=env, base=base)
    _check_spec(spec, where)
    password = _spec_password(spec, where, env, base)
    location = parse_location(
        _expand(spec["url"], where, env), where=where, env=env, base=base, password=password
    )
    return location if location.password is not None else replace(location, password=password)


def _check_spec(spec: Any, where: str) -> None:
    """The mapping form names url and at most one of password, password_file."""
    if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
        raise InventoryError(
            f"{where}: give a path or URL, or a mapping with url: and optionally password: "
            "${VAR} or password_file: PATH"
        )
    unknown = set(spec) - {"url", "password", "password_file"}
    if unknown:
        raise InventoryError(
            f"{where}: unknown key {sorted(unknown)[0]!r}: use url, password, password_file"
        )
    if "password" in spec and "password_file" in spec:
        raise InventoryError(f"{where}: password and password_file are both set: keep one")


def _spec_password(
    spec: dict[str, Any], where: str, env: Mapping[str, str], base: Path
) -> Secret | None:
    """The password the mapping names: ``${VAR}`` or a file (relative to ``base``)."""
    if "password" in spec:
        match = _VAR.match(str(spec["password"]))
        if match is None:
            raise InventoryError(
                f"{where}: password must be ${{VAR}} (an environment variable), never the "
                "password itself; or use password_file"
            )
        if match.group(1) not in env:
            raise InventoryError(f"{where}: password variable ${{{match.group(1)}}} is not set")
        return Secret(env[match.group(1)])
    if "password_file" in spec:
        file = Path(_expand(str(spec["password_file"]), where, env)).expanduser()
        file = file if file.is_absolute() else base / file
        try:
            return Secret(file.read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise InventoryError(
                f"{where}: cannot read password_file {file} ({why}): put the password on one "
                "line, readable only by the user that runs mml-tool (chmod 600)"
            ) from None
    return None


def _expand(value: str, where: str, env: Mapping[str, str]) -> str:
    """``${VAR}`` in a path or URL (not its password, which stays a ${VAR} for parse_location)."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) not in env:
            raise InventoryError(f"{where}: variable ${{{match.group(1)}}} is not set")
        return env[match.group(1)]

    # The password part (":${VAR}@") is left for parse_location, which keeps it a Secret.
    head, at, tail = value.rpartition("@")
    if at and "://" in head:
        scheme, _, userinfo = head.partition("://")
        user, colon, secret = userinfo.partition(":")
        return f"{scheme}://{_PLAIN_VAR.sub(one, user)}{colon}{secret}@{_PLAIN_VAR.sub(one, tail)}"
    return _PLAIN_VAR.sub(one, value)


def resolve(
    *,
    cli_value: str | None,
    no_history: bool,
    inventory_path: Path | None,
    env: Mapping[str, str] | None = None,
) -> HistoryLocation | None:
    """The store to use, in order: none (--no-history), --history, inventory, default."""
    if no_history:
        return None
    if cli_value:
        return parse_location(cli_value, where="--history", env=env)
    if inventory_path is not None:
        found = from_inventory(inventory_path, env)
        if found is not None:
            return found
    return _sqlite(default_path())
