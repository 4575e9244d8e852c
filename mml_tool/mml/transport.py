"""Byte pipes to an MML port: plain TCP, an SSH shell, or TCP tunnelled through an SSH jump host.

A transport moves bytes and nothing else; framing and login live in ``session.py``. Every
failure is a ``TransportError`` that names ``host:port`` and what to check. SSH host keys are
verified against the inventory's ``known_hosts`` file: an unknown key is refused unless the
host opts in to trust on first use (which records it); a changed key is always refused.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import select
import socket
import threading
import time
from pathlib import Path
from typing import Protocol

import paramiko
from paramiko.pkey import UnknownKeyType

from mml_tool.errors import HostKeyError, TransportError
from mml_tool.inventory import HostConfig, JumpConfig
from mml_tool.secret import Secret

log = logging.getLogger("mml_tool.transport")
READ_SIZE = 65536
KEEPALIVE = 30  # seconds: NOC and the vendor rely on keepalives, MML has no heartbeat
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


class Transport(Protocol):
    def open(self) -> None: ...
    def write(self, data: bytes) -> None: ...
    def read(self, deadline: float) -> bytes:
        """Bytes that arrived (at least one) or b"" at ``deadline`` (a ``time.monotonic()``
        value); raises TransportError when the peer closed or reset the connection."""
        ...

    def close(self) -> None: ...


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


def load_private_key(where: str, key_file: Path, passphrase: Secret | None) -> paramiko.PKey:
    """The private key in ``key_file``, decrypted with ``passphrase`` if it is encrypted.

    Read before connecting, so that a missing, unreadable or still-encrypted key is said as
    such (paramiko's own attempt ends in a vague "authentication failed"). The passphrase
    never appears in a message.
    """
    try:
        return paramiko.PKey.from_path(key_file)
    except OSError as exc:
        raise TransportError(
            f"{where}: cannot read key_file {key_file} ({exc.strerror}): check the path and "
            "that it is readable by you"
        ) from None
    except TypeError:  # cryptography: "password-protected, but password was not provided"
        if passphrase is None:
            raise TransportError(
                f"{where}: key_file {key_file} is encrypted and no passphrase was given: set "
                "key_passphrase (e.g. ${SSH_KEY_PASSPHRASE}), key_passphrase_file or "
                "key_passphrase_prompt: true in the inventory"
            ) from None
    except (ValueError, paramiko.SSHException, UnknownKeyType) as exc:
        raise TransportError(
            f"{where}: key_file {key_file} is not a private key mml-tool can read "
            f"({type(exc).__name__}): use an OpenSSH or PEM Ed25519, ECDSA or RSA key"
        ) from None
    try:
        # bytes, whatever the stubs say: cryptography's loaders take no str password
        secret = passphrase.reveal().encode("utf-8")
        return paramiko.PKey.from_path(key_file, secret)  # type: ignore[arg-type]
    except (OSError, TypeError, ValueError, paramiko.SSHException, UnknownKeyType):
        raise TransportError(
            f"{where}: the passphrase given by key_passphrase does not decrypt key_file "
            f"{key_file}: check it"
        ) from None


def _ssh_connect(
    label: str,
    hostname: str,
    port: int,
    username: str,
    password: Secret | None,
    key_file: Path | None,
    known_hosts: Path | None,
    tofu: bool,
    timeout: float,
    passphrase: Secret | None = None,
) -> paramiko.SSHClient:
    """An authenticated SSH client, host key verified; any failure -> TransportError."""
    where = f"{label} ({hostname}:{port})"
    pkey = None if key_file is None else load_private_key(where, key_file, passphrase)
    client = paramiko.SSHClient()
    kh = (known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()
    try:
        for key_type, key in _known_hosts_files.keys_for(kh, _known_name(hostname, port)).items():
            client.get_host_keys().add(_known_name(hostname, port), key_type, key)
    except (OSError, paramiko.SSHException) as exc:
        raise TransportError(
            f"{where}: cannot read known_hosts {kh}: {exc}: fix the file"
        ) from None
    client.set_missing_host_key_policy(_HostKeyPolicy(where, kh, tofu))
    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((hostname, port), timeout=timeout)
        # SSH's handshake is many small packets: without NODELAY each waits on Nagle + delayed
        # ACK (about 40 ms apiece on Linux).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        client.connect(
            hostname,
            port=port,
            sock=sock,
            username=username,
            password=password.reveal() if password is not None else None,
            pkey=pkey,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            look_for_keys=False,
            allow_agent=False,
        )
    except BaseException as exc:  # whatever failed, the socket and paramiko's thread must go
        client.close()
        if sock is not None:
            sock.close()
        error = _ssh_error(where, exc, _known_name(hostname, port), kh, username, key_file, timeout)
        if error is None:
            raise
        raise error from None
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE)
    return client


def _ssh_error(
    where: str,
    exc: BaseException,
    known_name: str,
    kh: Path,
    username: str,
    key_file: Path | None,
    timeout: float,
) -> TransportError | None:
    """The TransportError for a failed SSH connect; None: re-raise ``exc`` as it is."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyError(
            f"{where}: the SSH host key of {known_name} CHANGED: {kh} has "
            f"{exc.expected_key.get_name()} "
            f"{fingerprint(exc.expected_key)}, the server offers {exc.key.get_name()} "
            f"{fingerprint(exc.key)}. This may be an attack; if the change is expected, remove "
            "the old line from known_hosts"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        how = "key_file" if key_file is not None else "password"
        return TransportError(
            f"{where}: SSH authentication failed for user {username!r}: check the username "
            f"and the {how} in the inventory"
        )
    if isinstance(exc, HostKeyError) or not isinstance(
        exc, (OSError, paramiko.SSHException, EOFError)
    ):
        return None
    return _connect_error(where, exc, timeout)


def _closed_by_peer(exc: BaseException) -> bool:
    """Whether the peer hung up (EOF, reset), possibly under paramiko's "Error reading SSH
    protocol banner" (raised while handling the EOFError, which stays its context)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, (EOFError, ConnectionResetError, BrokenPipeError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _connect_error(where: str, exc: BaseException, timeout: float) -> TransportError:
    if isinstance(exc, socket.gaierror):
        return TransportError(f"{where}: cannot resolve the host name: check 'hostname'")
    if isinstance(exc, TimeoutError):
        return TransportError(
            f"{where}: no answer within {timeout:g} s: check the address, port, firewall and "
            "routing, or raise connect_timeout"
        )
    if isinstance(exc, (ConnectionRefusedError, paramiko.ssh_exception.NoValidConnectionsError)):
        return TransportError(
            f"{where}: connection refused: check the port and that the service runs"
        )
    if _closed_by_peer(exc):  # not a slow server: waiting longer would not help
        return TransportError(
            f"{where}: the server closed the connection before the SSH handshake: check that "
            "the port is the SSH port and that the server accepts connections from this host"
        )
    if isinstance(exc, paramiko.SSHException) and any(
        text in str(exc) for text in ("banner", "No existing session")
    ):  # paramiko's words for "the SSH handshake did not finish in time"
        return TransportError(
            f"{where}: no SSH handshake within {timeout:g} s: check that the port is the SSH "
            "port (not the plain MML port) and that the server is not overloaded"
        )
    return TransportError(f"{where}: cannot connect ({type(exc).__name__}: {exc})")


class _ChannelPipe:
    """Reads and writes an SSH channel (a shell or a direct-tcpip tunnel)."""

    where: str
    _client: paramiko.SSHClient | None = None
    _channel: paramiko.Channel | None = None

    def write(self, data: bytes) -> None:
        if self._channel is None:
            raise TransportError(f"{self.where}: not connected: call open() first")
        try:
            self._channel.sendall(data)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"{self.where}: connection lost while sending ({exc})") from None

    def read(self, deadline: float) -> bytes:
        if self._channel is None:
            raise TransportError(f"{self.where}: not connected: call open() first")
        self._channel.settimeout(max(0.0, deadline - time.monotonic()))
        try:
            data = self._channel.recv(READ_SIZE)
        except TimeoutError:
            return b""
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"{self.where}: connection lost ({exc})") from None
        if not data:
            raise TransportError(f"{self.where}: connection closed by the peer")
        return data

    def close(self) -> None:
        channel, client = self._channel, self._client
        self._channel = self._client = None
        if channel is not None:
            channel.close()
        if client is not None:
            client.close()


class SshShellTransport(_ChannelPipe):
    """MML over an interactive SSH shell on the element."""

    def __init__(self, host: HostConfig) -> None:
        self.host = host
        self.where = f"{host.name} ({host.address})"

    def open(self) -> None:
        h = self.host
        self._client = _ssh_connect(
            h.name, h.hostname, h.port, h.username, h.password, h.key_file, h.known_hosts,
            h.trust_on_first_use, h.connect_timeout, h.key_passphrase,
        )  # fmt: skip
        try:
            # A wide pty so that the element does not wrap long report lines.
            self._channel = self._client.invoke_shell(term="vt100", width=1000, height=1000)
        except (OSError, paramiko.SSHException) as exc:
            self.close()
            raise TransportError(f"{self.where}: the SSH server refused a shell ({exc})") from None


class SshTunnelTransport(_ChannelPipe):
    """MML over TCP, tunnelled through an SSH jump host (``direct-tcpip``)."""

    def __init__(self, host: HostConfig) -> None:
        if host.jump is None:
            raise TransportError(f"{host.name}: transport ssh-tunnel needs a jump host")
        self.host = host
        self.jump: JumpConfig = host.jump
        self.where = f"{host.name} ({host.address} via {self.jump.hostname}:{self.jump.port})"

    def open(self) -> None:
        h, j = self.host, self.jump
        self._client = _ssh_connect(
            f"{h.name} jump host", j.hostname, j.port, j.username, j.password, j.key_file,
            j.known_hosts, h.trust_on_first_use, h.connect_timeout, j.key_passphrase,
        )  # fmt: skip
        transport = self._client.get_transport()
        try:
            if transport is None:
                raise paramiko.SSHException("no SSH transport")
            self._channel = transport.open_channel(
                "direct-tcpip", (h.hostname, h.port), ("127.0.0.1", 0), timeout=h.connect_timeout
            )
        except (OSError, paramiko.SSHException, EOFError) as exc:
            self.close()
            raise TransportError(
                f"{self.where}: the jump host could not open a tunnel to {h.address} ({exc}): "
                "check the MML port and that the jump host allows TCP forwarding"
            ) from None


class TcpTransport:
    """MML over a plain TCP connection (port 6000 on most elements)."""

    def __init__(self, host: HostConfig) -> None:
        self.host = host
        self.where = f"{host.name} ({host.address})"
        self._sock: socket.socket | None = None

    def open(self) -> None:
        h = self.host
        try:
            sock = socket.create_connection((h.hostname, h.port), timeout=h.connect_timeout)
        except OSError as exc:
            raise _connect_error(self.where, exc, h.connect_timeout) from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):  # Linux: first probe after KEEPALIVE s, not 2 h
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE)
        except OSError as exc:
            sock.close()
            raise TransportError(f"{self.where}: cannot set up the socket ({exc})") from None
        sock.settimeout(h.connect_timeout)  # bounds sendall(); reads wait with select()
        self._sock = sock

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise TransportError(f"{self.where}: not connected: call open() first")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise TransportError(f"{self.where}: connection lost while sending ({exc})") from None

    def read(self, deadline: float) -> bytes:
        if self._sock is None:
            raise TransportError(f"{self.where}: not connected: call open() first")
        try:
            ready, _, _ = select.select([self._sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return b""
            data = self._sock.recv(READ_SIZE)
        except OSError as exc:
            raise TransportError(f"{self.where}: connection lost ({exc})") from None
        if not data:
            raise TransportError(f"{self.where}: connection closed by the peer")
        return data

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def make_transport(host: HostConfig) -> Transport:
    if host.transport == "ssh":
        return SshShellTransport(host)
    if host.transport == "ssh-tunnel":
        return SshTunnelTransport(host)
    if host.transport == "tcp":
        return TcpTransport(host)
    raise TransportError(
        f"{host.name}: unknown transport {host.transport!r}: use ssh, ssh-tunnel or tcp"
    )
