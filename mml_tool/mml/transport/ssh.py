"""MML over SSH: an interactive shell on the element, or TCP tunnelled through a jump host.

SSH is libssh2's (through ssh2-python): its calls run in C without Python's global interpreter
lock, and it needs no thread per connection. With paramiko, the SSH layer alone cost ~3 ms of
CPU per host, and more under a pool of workers contending for the lock.

libssh2 is driven in non-blocking mode and every wait is a ``poll()`` of the socket up to a
deadline of ours: libssh2's own blocking calls can wait past their timeout (its keepalive timer
resets the wait) and its blocking write can wait for ever on a full window.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssh2 import exceptions as ssh2_errors
from ssh2.error_codes import LIBSSH2_ERROR_EAGAIN
from ssh2.session import (
    LIBSSH2_METHOD_CRYPT_CS,
    LIBSSH2_METHOD_HOSTKEY,
    LIBSSH2_METHOD_KEX,
    LIBSSH2_SESSION_BLOCK_INBOUND,
    LIBSSH2_SESSION_BLOCK_OUTBOUND,
    Session,
)

from mml_tool.errors import TransportError
from mml_tool.mml.params import ConnectionParams, JumpHost
from mml_tool.mml.transport.base import KEEPALIVE, READ_SIZE, _connect_error, log, wait_for
from mml_tool.mml.transport.keys import check_key_file
from mml_tool.mml.transport.known_hosts import (
    DEFAULT_KNOWN_HOSTS,
    HostKey,
    _known_hosts_files,
    _known_name,
    verify_host_key,
)
from mml_tool.secret import Secret

# What the SSH layer raises: libssh2's errors, and the socket's.
_SSH_ERRORS = (ssh2_errors.SSH2Error, OSError, EOFError)
_CLOSE_WAIT = 2.0  # seconds given to a polite channel close and disconnect
_EXTENDED_DATA_MERGE = 2  # libssh2.h's LIBSSH2_CHANNEL_EXTENDED_DATA_MERGE (not exported)
# The host key algorithms for each key type a known_hosts line can hold.
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


class _Expired(Exception):
    """A deadline of ours passed while libssh2 waited for the socket."""


class _Connection:
    """An SSH session over its own socket, in non-blocking mode."""

    def __init__(self, session: Any, sock: socket.socket) -> None:
        self.session = session
        self.sock = sock

    def call(self, deadline: float, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, repeated while libssh2 says it would block, each time waiting for the
        socket until ``deadline``; raises _Expired at the deadline."""
        while True:
            result = fn(*args)
            if not (isinstance(result, int) and result == LIBSSH2_ERROR_EAGAIN):
                return result
            self.wait(deadline)

    def wait(self, deadline: float) -> None:
        """Wait until the socket can go the way libssh2 is blocked on, or raise _Expired."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Expired
        directions = self.session.block_directions()
        outbound = bool(directions & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        inbound = bool(directions & LIBSSH2_SESSION_BLOCK_INBOUND) or not outbound
        wait_for(self.sock, remaining, read=inbound, write=outbound)

    def close(self, clean: bool = True) -> None:
        """Say goodbye and close the socket. Unless every channel was closed (``clean``) and
        the goodbye went out, the socket is only shut down: libssh2 frees a half-open channel
        when its last Python reference goes (perhaps in an error kept in a result) and then
        writes on its socket number; the number stays ours until then (the session holds the
        socket object), so no later connection is handed it and receives those bytes."""
        try:
            self.call(time.monotonic() + _CLOSE_WAIT, self.session.disconnect)
        except (*_SSH_ERRORS, _Expired):
            clean = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if clean:
            self.sock.close()


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
) -> _Connection:
    """An authenticated SSH session, host key verified; any failure -> TransportError."""
    where = f"{label} ({hostname}:{port})"
    if key_file is not None:
        check_key_file(where, key_file, passphrase)
    name = _known_name(hostname, port)
    kh = (known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()
    try:
        known_file = _known_hosts_files.read(kh)
    except OSError as exc:
        raise TransportError(
            f"{where}: cannot read known_hosts {kh}: {exc}: fix the file"
        ) from None
    known = known_file.lookup(name)
    sock: socket.socket | None = None
    conn: _Connection | None = None
    logging_in = False  # past the handshake and the host key: the errors say "login"
    try:
        sock = socket.create_connection((hostname, port), timeout=timeout)
        deadline = time.monotonic() + timeout
        # SSH's handshake is many small packets: without NODELAY each waits on Nagle + delayed
        # ACK (about 40 ms apiece on Linux).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux: first probe after KEEPALIVE s, not 2 h
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE)
        sock.setblocking(False)
        conn = _Connection(Session(), sock)
        session = conn.session
        session.set_blocking(False)
        if known:  # negotiate a key type known_hosts holds, as OpenSSH does
            session.method_pref(LIBSSH2_METHOD_HOSTKEY, _host_key_preference(session, known))
        conn.call(deadline, session.handshake, sock)
        blob, _ = session.hostkey()
        log.debug(
            "%s: SSH handshake done: %s, host key %s, %s",
            where,
            session.methods(LIBSSH2_METHOD_KEX),
            session.methods(LIBSSH2_METHOD_HOSTKEY),
            session.methods(LIBSSH2_METHOD_CRYPT_CS),
        )
        verify_host_key(where, kh, name, HostKey.from_blob(blob), known, tofu, known_file.revoked)
        logging_in = True
        if key_file is not None:
            secret = "" if passphrase is None else passphrase.reveal()
            conn.call(
                deadline, session.userauth_publickey_fromfile, username, str(key_file), secret
            )
        else:
            secret = "" if password is None else password.reveal()
            try:
                conn.call(deadline, session.userauth_password, username, secret)
            except ssh2_errors.AuthenticationError:
                # As paramiko did: a server that asks for the password as a prompt
                # (keyboard-interactive, PAM or RADIUS behind it) gets it there.
                conn.call(deadline, session.userauth_keyboardinteractive, username, secret)
        session.keepalive_config(False, KEEPALIVE)
        log.debug("%s: SSH authenticated as %r", where, username)
    except BaseException as exc:  # whatever failed, the socket must go
        log.debug("%s: SSH connect failed: %s", where, _ssh2_text(exc))
        if conn is not None:
            conn.close(clean=False)
        elif sock is not None:
            sock.close()
        error = _ssh_error(where, exc, username, key_file, timeout, logging_in)
        if error is None:
            raise
        raise error from None
    return conn


def _host_key_preference(session: Any, known: dict[str, HostKey]) -> str:
    supported = [a for a in session.supported_algs(LIBSSH2_METHOD_HOSTKEY) if "-cert-" not in a]
    first = [a for kind in known for a in _ALGORITHMS.get(kind, (kind,)) if a in supported]
    return ",".join(first + [a for a in supported if a not in first])


def _ssh_error(
    where: str,
    exc: BaseException,
    username: str,
    key_file: Path | None,
    timeout: float,
    logging_in: bool = False,
) -> TransportError | None:
    """The TransportError for a failed SSH connect; None: re-raise ``exc`` as it is."""
    if isinstance(exc, TransportError):  # HostKeyError included: already says what to do
        return exc
    how = "key_file" if key_file is not None else "password"
    if logging_in and isinstance(exc, (_Expired, ssh2_errors.Timeout)):
        return TransportError(
            f"{where}: no answer to the SSH login of {username!r} within {timeout:g} s (the "
            "handshake was done): the server, or what checks its logins, is slow; raise "
            "connect_timeout"
        )
    if logging_in and isinstance(exc, ssh2_errors.SocketDisconnectError):
        return TransportError(
            f"{where}: the server closed the connection during the SSH login of {username!r}: "
            f"check the username and the {how} in the inventory, and that this user may log in"
        )
    if isinstance(
        exc,
        (
            ssh2_errors.AuthenticationError,
            ssh2_errors.PublicKeyError,
            ssh2_errors.PublickeyUnverifiedError,
            ssh2_errors.FileError,
            ssh2_errors.MethodNotSupported,
        ),
    ):
        return TransportError(
            f"{where}: SSH authentication failed for user {username!r}: check the username "
            f"and the {how} in the inventory"
        )
    if isinstance(exc, (_Expired, ssh2_errors.Timeout, ssh2_errors.BannerRecvError)):
        return TransportError(
            f"{where}: no SSH handshake within {timeout:g} s: check that the port is the SSH "
            "port (not the plain MML port) and that the server is not overloaded"
        )
    if isinstance(exc, (ssh2_errors.SocketDisconnectError, ssh2_errors.SocketRecvError)):
        return TransportError(
            f"{where}: the server closed the connection before the SSH handshake: check that "
            "the port is the SSH port and that the server accepts connections from this host"
        )
    if isinstance(exc, ssh2_errors.SSH2Error):
        return TransportError(
            f"{where}: the SSH handshake failed ({_ssh2_text(exc)}): check that the port is "
            "the SSH port and that the server offers a key exchange and host key libssh2 knows"
        )
    if isinstance(exc, (OSError, EOFError)):
        return _connect_error(where, exc, timeout)
    return None


def _ssh2_text(exc: BaseException) -> str:
    detail = " ".join(str(a) for a in exc.args if a not in ("", None))
    return type(exc).__name__ + (f": {detail}" if detail else "")


class _ChannelPipe:
    """Reads and writes an SSH channel (a shell or a direct-tcpip tunnel)."""

    where: str
    host: ConnectionParams
    _conn: _Connection | None = None
    _channel: Any = None

    def _open_channel(
        self, conn: _Connection, how: str, opener: Callable[[_Connection, float], Any]
    ) -> None:
        self._conn = conn
        timeout = self.host.connect_timeout
        try:
            self._channel = opener(conn, time.monotonic() + timeout)
        except _Expired:
            self.close()
            raise TransportError(f"{self.where}: {how} (no answer within {timeout:g} s)") from None
        except _SSH_ERRORS as exc:
            self.close()
            raise TransportError(f"{self.where}: {how} ({_ssh2_text(exc)})") from None

    def _pipe(self) -> tuple[_Connection, Any]:
        if self._channel is None or self._conn is None:
            raise TransportError(f"{self.where}: not connected: call open() first")
        return self._conn, self._channel

    def write(self, data: bytes) -> None:
        conn, channel = self._pipe()
        deadline = time.monotonic() + self.host.timeout
        try:
            conn.session.keepalive_send()  # sends only when KEEPALIVE s have passed
            while data:
                # Not through call(): a write that would block may have sent part of the data
                # (EAGAIN with a count); the rest, and only the rest, goes next.
                _, sent = channel.write(data)
                data = data[sent:]
                if data and not sent:
                    conn.wait(deadline)
        except _Expired:
            raise TransportError(
                f"{self.where}: the element took no data for {self.host.timeout:g} s"
            ) from None
        except _SSH_ERRORS as exc:
            raise TransportError(
                f"{self.where}: connection lost while sending ({_ssh2_text(exc)})"
            ) from None

    def read(self, deadline: float) -> bytes:
        conn, channel = self._pipe()
        try:
            while True:
                size, data = channel.read(READ_SIZE)
                if size > 0:
                    return bytes(data)
                if size == 0 and channel.eof():
                    raise TransportError(f"{self.where}: connection closed by the peer")
                if size < 0 and size != LIBSSH2_ERROR_EAGAIN:
                    raise TransportError(f"{self.where}: connection lost (libssh2 error {size})")
                conn.wait(deadline)
        except _Expired:
            return b""
        except _SSH_ERRORS as exc:
            raise TransportError(f"{self.where}: connection lost ({_ssh2_text(exc)})") from None

    def close(self) -> None:
        channel, conn = self._channel, self._conn
        self._channel = self._conn = None
        clean = channel is not None  # None: no channel, or one left half-open by open()
        if channel is not None and conn is not None:
            try:
                conn.call(time.monotonic() + _CLOSE_WAIT, channel.close)
            except (*_SSH_ERRORS, _Expired):
                clean = False
        if conn is not None:
            conn.close(clean)


class SshShellTransport(_ChannelPipe):
    """MML over an interactive SSH shell on the element."""

    def __init__(self, host: ConnectionParams) -> None:
        self.host = host
        self.where = f"{host.name} ({host.address})"

    def open(self) -> None:
        h = self.host
        conn = _ssh_connect(
            h.name, h.hostname, h.port, h.username, h.password, h.key_file, h.known_hosts,
            h.trust_on_first_use, h.connect_timeout, h.key_passphrase,
        )  # fmt: skip
        self._open_channel(conn, "the SSH server refused a shell", _shell)


def _shell(conn: _Connection, deadline: float) -> Any:
    # libssh2 (as ssh2-python exposes it) asks for an 80-column pty: MML reports are not
    # wrapped by the element at the pty width (the lab serves them whatever width is asked).
    channel = conn.call(deadline, conn.session.open_session)
    # stderr into the same stream, as a terminal shows it: unread, it would fill the window.
    conn.call(deadline, channel.handle_extended_data2, _EXTENDED_DATA_MERGE)
    conn.call(deadline, channel.pty, "vt100")
    conn.call(deadline, channel.shell)
    return channel


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
        conn = _ssh_connect(
            f"{h.name} jump host", j.hostname, j.port, j.username, j.password, j.key_file,
            j.known_hosts, h.trust_on_first_use, h.connect_timeout, j.key_passphrase,
        )  # fmt: skip
        self._open_channel(
            conn,
            f"the jump host could not open a tunnel to {h.address}: check the MML port and "
            "that the jump host allows TCP forwarding",
            lambda conn, deadline: conn.call(
                deadline, conn.session.direct_tcpip_ex, h.hostname, h.port, "127.0.0.1", 0
            ),
        )
