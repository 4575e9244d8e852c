"""SSH host keys: known_hosts files read once per content, trust on first use, fingerprints.

Keys are compared as the server sends them (the SSH wire blob), so checking a host needs no
key parsing: a known_hosts line is ``names type base64-blob [comment]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mml_tool.errors import HostKeyError
from mml_tool.mml.transport.base import log

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


@dataclass(frozen=True)
class HostKey:
    """A public host key: its type name (``ssh-ed25519``) and its SSH wire blob."""

    kind: str
    blob: bytes

    @classmethod
    def from_blob(cls, blob: bytes) -> HostKey:
        """The key the server sent; its type is the blob's first SSH string."""
        if len(blob) < 4:
            raise ValueError("host key too short")
        (length,) = struct.unpack(">I", blob[:4])
        return cls(blob[4 : 4 + length].decode("ascii", "replace"), blob)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def line(self, name: str) -> str:
        return f"{name} {self.kind} {base64.b64encode(self.blob).decode()}"


class _WireKey(Protocol):
    def asbytes(self) -> bytes: ...


def fingerprint(key: bytes | _WireKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a key: its wire blob, or an object giving it
    with ``asbytes()`` (a ``paramiko.PKey``)."""
    digest = hashlib.sha256(key if isinstance(key, bytes) else key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _KnownHostsFiles:
    """known_hosts files parsed once per content, shared by every connection of a run.

    Keyed by path, mtime and size, so a key recorded on first use (or an edit) is seen by the
    next connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[Path, tuple[tuple[int, int], _KnownHosts]] = {}

    def keys_for(self, path: Path, name: str) -> dict[str, HostKey]:
        """The keys ``path`` holds for ``name`` (``host`` or ``[host]:port``), by type."""
        return self.read(path).lookup(name)

    def read(self, path: Path) -> _KnownHosts:
        """``path`` parsed (empty if it does not exist), from the cache while unchanged."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return _KnownHosts()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._parsed.get(path)
            if cached is None or cached[0] != stamp:
                cached = (stamp, _KnownHosts.load(path))
                self._parsed[path] = cached
        return cached[1]


class _KnownHosts:
    """One parsed file: plain host names indexed, hashed names (``|1|salt|hash``) matched by
    HMAC-SHA1 as OpenSSH writes them. As in OpenSSH and paramiko, the first key of a type wins;
    ``@revoked`` keys are never trusted; ``@cert-authority`` lines and wildcard patterns are
    not used."""

    def __init__(self) -> None:
        self.plain: dict[str, dict[str, HostKey]] = {}
        self.hashed: list[tuple[bytes, bytes, HostKey]] = []
        self.revoked: set[bytes] = set()

    @classmethod
    def load(cls, path: Path) -> _KnownHosts:
        self = cls()
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 4 and fields[0] == "@revoked":
                    revoked = _key(fields[2], fields[3])
                    if revoked is not None:
                        self.revoked.add(revoked.blob)
                    continue
                if len(fields) < 3 or fields[0].startswith(("#", "@")):
                    continue
                key = _key(fields[1], fields[2])
                if key is None:
                    continue  # a line that is not a key: skipped, as ssh does
                for name in fields[0].split(","):
                    salted = _hashed_name(name)
                    if salted is not None:
                        self.hashed.append((*salted, key))
                    else:
                        self.plain.setdefault(name, {}).setdefault(key.kind, key)
        return self

    def lookup(self, name: str) -> dict[str, HostKey]:
        found = dict(self.plain.get(name, {}))
        for salt, digest, key in self.hashed:
            if key.kind not in found and hmac.compare_digest(
                hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest
            ):
                found[key.kind] = key
        return found


def _key(kind: str, text: str) -> HostKey | None:
    try:
        key = HostKey.from_blob(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return None
    return key if key.kind == kind else None


def _hashed_name(name: str) -> tuple[bytes, bytes] | None:
    """(salt, digest) of a hashed name ``|1|base64-salt|base64-hash``, else None."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] or parts[1] != "1":
        return None
    try:
        return base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except binascii.Error:
        return None


_known_hosts_files = _KnownHostsFiles()


def _known_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


def verify_host_key(
    where: str,
    known_hosts: Path,
    name: str,
    key: HostKey,
    known: dict[str, HostKey],
    tofu: bool,
    revoked: Collection[bytes] = (),
) -> None:
    """Accept ``key`` if ``known`` (what known_hosts holds for ``name``) has it; record it if the
    host is unknown and trusts on first use; otherwise raise HostKeyError. A known host
    offering a key of another type, or another key of a known type, is a changed key, refused
    even with trust on first use; a key known_hosts marks ``@revoked`` is always refused."""
    if key.blob in revoked:
        raise HostKeyError(
            f"{where}: the SSH host key of {name} ({key.kind} {key.fingerprint}) is marked "
            f"@revoked in {known_hosts}: it must not be trusted; ask who runs the element"
        )
    if known.get(key.kind) == key:
        return
    what = f"{key.kind} key {key.fingerprint}"
    if known:
        has = known.get(key.kind)
        held = f"{has.kind} {has.fingerprint}" if has else ", ".join(known)
        raise HostKeyError(
            f"{where}: the SSH host key of {name} CHANGED: {known_hosts} has {held}, the server "
            f"offers {what}. This may be an attack; if the key change is expected, remove the "
            "old line from known_hosts"
        )
    if not tofu:
        raise HostKeyError(
            f"{where}: unknown SSH host key of {name} ({what}): add it to {known_hosts} "
            f"(e.g. ssh-keyscan -p PORT HOST >> {known_hosts}, after checking the "
            "fingerprint) or set trust_on_first_use: true for this host"
        )
    _record_key(known_hosts, name, key)
    log.warning("%s: trusted on first use: %s recorded in %s", name, what, known_hosts)


def _record_key(path: Path, name: str, key: HostKey) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = ""
        if path.exists() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                prefix = "" if f.read(1) == b"\n" else "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as f:
            f.write(f"{prefix}{key.line(name)}\n")
    except OSError as exc:
        raise HostKeyError(
            f"{name}: cannot record the host key in {path} ({exc.strerror}): check that the "
            "folder exists and is writable"
        ) from None
