"""SSH host keys: known_hosts files read once per content, trust on first use, fingerprints."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path

import paramiko

from mml_tool.errors import HostKeyError
from mml_tool.mml.transport.base import log

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _KnownHostsFiles:
    """known_hosts files parsed once per content, shared by every connection of a run.

    paramiko re-parses the whole file on each load, slower than linearly in its size: with
    a few hundred hosts that cost more CPU than the SSH handshake itself. Keyed by path, mtime
    and size, so a key recorded on first use (or an edit) is seen by the next connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[Path, tuple[tuple[int, int], _KnownHosts]] = {}

    def keys_for(self, path: Path, name: str) -> dict[str, paramiko.PKey]:
        """The keys ``path`` holds for ``name`` (``host`` or ``[host]:port``)."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._parsed.get(path)
            if cached is None or cached[0] != stamp:
                cached = (stamp, _KnownHosts.load(path))
                self._parsed[path] = cached
        return cached[1].lookup(name)


class _KnownHosts:
    """One parsed file: plain host names indexed (paramiko's lookup scans every entry);
    hashed names (``|1|...``) still go through paramiko, which knows how to match them."""

    def __init__(self, keys: paramiko.HostKeys) -> None:
        self.keys = keys
        self.plain: dict[str, dict[str, paramiko.PKey]] = {}
        self.hashed = False
        for hostname in keys:
            if hostname.startswith("|"):
                self.hashed = True
            else:
                self.plain[hostname] = dict(keys[hostname])

    @classmethod
    def load(cls, path: Path) -> _KnownHosts:
        """Read ``path`` in one pass. ``paramiko.HostKeys(path)`` and indexing it each scan
        every entry per line: quadratic, about a second of CPU at 1000 lines."""
        self = cls(paramiko.HostKeys())
        with path.open(encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:  # what paramiko's HostKeys.load skips, skipped alike
                    entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
                except paramiko.SSHException:
                    continue
                if entry is None:
                    continue
                for hostname in entry.hostnames:
                    if hostname.startswith("|"):  # hashed: paramiko knows how to match it
                        self.hashed = True
                        self.keys.add(hostname, entry.key.get_name(), entry.key)
                    else:  # the first key of a type wins, as in paramiko's lookup
                        self.plain.setdefault(hostname, {}).setdefault(
                            entry.key.get_name(), entry.key
                        )
        return self

    def lookup(self, name: str) -> dict[str, paramiko.PKey]:
        if name in self.plain or not self.hashed:
            return dict(self.plain.get(name, {}))
        found = self.keys.lookup(name)
        return dict(found) if found else {}


_known_hosts_files = _KnownHostsFiles()


def _known_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"[{hostname}]:{port}"


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuses unknown keys, or records them (trust on first use) if the host opted in.

    paramiko also calls this when the file knows the host under a different key type: that is a
    changed key, refused even with trust on first use.
    """

    def __init__(self, where: str, known_hosts: Path, tofu: bool) -> None:
        self.where = where
        self.known_hosts = known_hosts
        self.tofu = tofu

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        what = f"{key.get_name()} key {fingerprint(key)}"
        known = client.get_host_keys().lookup(hostname)
        if known:
            raise HostKeyError(
                f"{self.where}: the SSH host key of {hostname} CHANGED: {self.known_hosts} has "
                f"{', '.join(known.keys())}, the server offers {what}. This may be an attack; "
                "if the key change is expected, remove the old line from known_hosts"
            )
        if not self.tofu:
            raise HostKeyError(
                f"{self.where}: unknown SSH host key of {hostname} ({what}): add it to "
                f"{self.known_hosts} "
                f"(e.g. ssh-keyscan -p PORT HOST >> {self.known_hosts}, after checking the "
                "fingerprint) or set trust_on_first_use: true for this host"
            )
        _record_key(self.known_hosts, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning("%s: trusted on first use: %s recorded in %s", hostname, what, self.known_hosts)


def _record_key(path: Path, name: str, key: paramiko.PKey) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = ""
        if path.exists() and path.stat().st_size:
            with path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                prefix = "" if f.read(1) == b"\n" else "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as f:
            f.write(f"{prefix}{name} {key.get_name()} {key.get_base64()}\n")
    except OSError as exc:
        raise HostKeyError(
            f"{name}: cannot record the host key in {path} ({exc.strerror}): check that the "
            "folder exists and is writable"
        ) from None
