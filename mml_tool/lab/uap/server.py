"""``UapServer``: serves every node over SSH and plain TCP, each on its own port."""

from __future__ import annotations

import contextlib
import hmac
import selectors
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import paramiko

from mml_tool.errors import ConfigError
from mml_tool.lab.uap.config import SSH_LOG_NAME, NodeConfig
from mml_tool.lab.uap.session import MmlConnection
from mml_tool.lab.uap.ssh import (
    _close_channel,
    _close_socket,
    _SockConn,
    _SshInterface,
    load_or_create_host_key,
)
from mml_tool.lab.uap.state import UapNode
from mml_tool.secret import Secret


class UapServer:
    """Serves every node over SSH and plain TCP, each on its own port."""

    def __init__(self, *, host_key_file: Path | None = None) -> None:
        self.host_key = load_or_create_host_key(host_key_file)
        self.nodes: list[UapNode] = []
        self.host = "127.0.0.1"
        self.username = "admin"
        self._password = Secret("")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[object] = set()  # sockets and transports to close on stop()
        self._listeners: dict[int, tuple[socket.socket, UapNode, str]] = {}
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._tcp_ports: frozenset[int] = frozenset()

    # -- lifecycle

    def start(
        self,
        nodes: Sequence[NodeConfig],
        host: str = "127.0.0.1",
        base_port: int = 0,
        username: str = "admin",
        password: Secret | str = "",
    ) -> list[UapNode]:
        """Bind every port and start serving. ``base_port`` 0: ephemeral ports; otherwise
        node i (0-based) gets SSH ``base_port + i`` and TCP ``base_port + 1000 + i``."""
        if self._thread is not None:
            raise RuntimeError("UapServer already started")
        secret = password if isinstance(password, Secret) else Secret(password)
        if not secret:
            raise ConfigError("the lab needs a password: pass password=...")
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ConfigError("lab node names must be unique")
        if base_port and (len(nodes) > 1000 or base_port + 1000 + len(nodes) > 65535):
            raise ConfigError("base_port too high for this many nodes (TCP = base + 1000 + i)")
        self.host, self.username, self._password = host, username, secret
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            for i, config in enumerate(nodes):
                node = UapNode(config)
                node.ssh_port = self._listen(node, "ssh", base_port + i if base_port else 0)
                node.tcp_port = self._listen(node, "tcp", base_port + 1000 + i if base_port else 0)
                self.nodes.append(node)
        except OSError as exc:
            self.stop()
            raise ConfigError(f"cannot bind the lab ports on {host}: {exc}") from exc
        self._tcp_ports = frozenset(n.tcp_port for n in self.nodes)
        self._thread = threading.Thread(target=self._accept_loop, name="uap-accept", daemon=True)
        self._thread.start()
        return self.nodes

    def _listen(self, node: UapNode, kind: str, port: int) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ)
        self._listeners[sock.fileno()] = (sock, node, kind)
        port_no: int = sock.getsockname()[1]
        return port_no

    def stop(self) -> None:
        """Close every listener and connection; idempotent."""
        self._stop.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock, _, _ in self._listeners.values():
            sock.close()
        self._listeners.clear()
        with self._lock:
            items = list(self._open)
            self._open.clear()
        for item in items:
            if isinstance(item, socket.socket):
                _close_socket(item)
            elif isinstance(item, paramiko.Transport):
                item.close()
        for wake in (self._wake_r, self._wake_w):
            if wake is not None:
                wake.close()
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    def __enter__(self) -> UapServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries

    def node(self, name: str) -> UapNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def tcp_ports(self) -> frozenset[int]:
        return self._tcp_ports

    def credentials_ok(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        pwd_ok = hmac.compare_digest(password.encode(), self._password.reveal().encode())
        return user_ok and pwd_ok

    def known_hosts_line(self, port: int) -> str:
        """The OpenSSH known_hosts line for this server's key on ``port``."""
        where = self.host if port == 22 else f"[{self.host}]:{port}"
        return f"{where} {self.host_key.get_name()} {self.host_key.get_base64()}"

    # -- accepting

    def _track(self, item: object) -> None:
        with self._lock:
            if self._stop.is_set():
                raise OSError("lab stopping")
            self._open.add(item)

    def _untrack(self, item: object) -> None:
        with self._lock:
            self._open.discard(item)

    def _accept_loop(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stop.is_set():
            for key, _ in selector.select():
                entry = self._listeners.get(key.fd)
                if entry is None:  # the wake-up socket
                    continue
                sock, node, kind = entry
                try:
                    client, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    if self._stop.is_set():
                        return
                    continue
                client.setblocking(True)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                target = self._serve_tcp if kind == "tcp" else self._serve_ssh
                threading.Thread(
                    target=target, args=(node, client), name=f"uap-{kind}-{node.name}", daemon=True
                ).start()

    def _serve_tcp(self, node: UapNode, sock: socket.socket) -> None:
        try:
            self._track(sock)
        except OSError:
            sock.close()
            return

        def close() -> None:
            _close_socket(sock)

        try:
            MmlConnection(
                node,
                _SockConn(sock),
                username=self.username,
                password=self._password,
                stop=self._stop,
                drop=close,
                close=close,
            ).serve()
        finally:
            self._untrack(sock)
            close()

    def _serve_ssh(self, node: UapNode, sock: socket.socket) -> None:
        transport = paramiko.Transport(sock)
        transport.set_log_channel(SSH_LOG_NAME)
        try:
            self._track(transport)
        except OSError:
            sock.close()
            return
        transport.add_server_key(self.host_key)
        iface = _SshInterface(self, node)
        try:
            transport.start_server(server=iface)
            while transport.is_active() and not self._stop.is_set():
                chan = transport.accept(timeout=0.5)
                if chan is None:
                    continue
                with iface.lock:
                    port = iface.direct.pop(chan.get_id(), None)
                thread = (
                    threading.Thread(target=self._forward, args=(chan, port), daemon=True)
                    if port is not None
                    else threading.Thread(
                        target=self._serve_shell, args=(node, transport, iface, chan), daemon=True
                    )
                )
                thread.start()
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            self._untrack(transport)
            transport.close()

    def _serve_shell(
        self,
        node: UapNode,
        transport: paramiko.Transport,
        iface: _SshInterface,
        chan: paramiko.Channel,
    ) -> None:
        with iface.lock:
            event = iface.shells.get(chan.get_id())
        if event is None or not event.wait(15):
            _close_channel(chan)
            return
        with iface.lock:
            pty = chan.get_id() in iface.ptys

        def close() -> None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                chan.send_exit_status(0)
            _close_channel(chan)

        try:
            MmlConnection(
                node,
                chan,
                username=self.username,
                password=self._password,
                stop=self._stop,
                drop=transport.close,
                close=close,
                echo=node.config.ssh_echo and pty,
                logged_in=iface.by_key,
            ).serve()
        finally:
            _close_channel(chan)

    def _forward(self, chan: paramiko.Channel, port: int) -> None:
        try:
            sock = socket.create_connection((self.host, port), timeout=10)  # where it listens
        except OSError:
            _close_channel(chan)
            return
        sock.settimeout(None)
        try:
            self._track(sock)
        except OSError:
            sock.close()
            _close_channel(chan)
            return
        sel = selectors.DefaultSelector()
        try:
            sel.register(chan, selectors.EVENT_READ)
            sel.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=1.0):
                    if key.fileobj is chan:
                        data = chan.recv(65536)
                        if not data:
                            return
                        sock.sendall(data)
                    else:
                        data = sock.recv(65536)
                        if not data:
                            return
                        chan.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            sel.close()
            self._untrack(sock)
            _close_socket(sock)
            _close_channel(chan)
