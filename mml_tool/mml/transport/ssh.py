"""MML over SSH: an interactive shell on the element, or TCP tunnelled through a jump host."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import paramiko
from paramiko.pkey import UnknownKeyType

from mml_tool.errors import HostKeyError, TransportError
from mml_tool.mml.params import ConnectionParams, JumpHost
from mml_tool.mml.transport.base import KEEPALIVE, READ_SIZE, _connect_error
from mml_tool.mml.transport.known_hosts import (
    DEFAULT_KNOWN_HOSTS,
    _HostKeyPolicy,
    _known_hosts_files,
    _known_name,
    fingerprint,
)
from mml_tool.secret import Secret


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
        wait = deadline - time.monotonic()
        if wait <= 0 and not self._channel.recv_ready():
            return b""  # a look without waiting (after each answer): skip paramiko's timeout path
        self._channel.settimeout(max(0.0, wait))
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

    def __init__(self, host: ConnectionParams) -> None:
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

    def __init__(self, host: ConnectionParams) -> None:
        if host.jump is None:
            raise TransportError(f"{host.name}: transport ssh-tunnel needs a jump host")
        self.host = host
        self.jump: JumpHost = host.jump
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
