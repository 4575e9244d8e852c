"""A real OpenSSH ``sshd`` on loopback in front of a lab node, for the terminal tests.

``OpenSshLab`` starts, in a temporary folder of its own (no system service, no system config):

- a test user ``mmlpty<pid>`` with a random password (``useradd`` + ``chpasswd``; removed at
  the end, and stale ones of dead test runs on the next start), whose password is also the lab's
  MML password, so that one inventory password serves SSH and ``LGI``;
- a lab with one node (its plain-TCP MML port is what the forced command bridges to);
- two ``sshd`` processes, each with its own Ed25519 host key and config: ``cooked`` runs the
  bridge in the pty as sshd leaves it (canonical mode, echo, ``ONLCR``: every LF the node sends
  leaves as CR LF, so its CRLF arrives as CR CR LF), ``raw`` runs ``stty raw -echo`` first;
- a known_hosts file with both host keys, and an Ed25519 client key in authorized_keys.

Password authentication needs a real account in the system's password database, hence root;
without root or without an ``sshd`` binary the tests skip and say why (``.ci/run`` installs
openssh-server, CI runs as root).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mml_tool.inventory import HostConfig, JumpConfig
from mml_tool.lab.lab import Lab
from mml_tool.lab.uap import NodeConfig
from mml_tool.secret import Secret

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
BRIDGE_PYTHON = "/usr/bin/python3"  # the test user cannot run a Python under /root
USER_PREFIX = "mmlpty"
START_TIMEOUT = 10.0

# The forced command: plain bytes between the pty and the node's TCP MML port, nothing added.
BRIDGE = """\
import os, select, socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
inputs = [0, sock]
while True:
    ready, _, _ = select.select(inputs, [], [])
    if 0 in ready:
        data = os.read(0, 65536)
        if data:
            sock.sendall(data)
        else:
            sock.shutdown(socket.SHUT_WR)
            inputs.remove(0)
    if sock in ready:
        data = sock.recv(65536)
        if not data:
            break
        while data:
            data = data[os.write(1, data):]
"""


def why_not() -> str | None:
    """Why a real sshd cannot be run here, or None."""
    if find_sshd() is None:
        return (
            "no OpenSSH server (sshd) on this machine: install openssh-server "
            "(.ci/run does so when it is missing)"
        )
    if os.geteuid() != 0:
        return "a real sshd with password authentication needs root (a test user is created)"
    for tool in ("useradd", "userdel", "chpasswd"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: cannot create the sshd test user"
    if not os.access(BRIDGE_PYTHON, os.X_OK):
        return f"{BRIDGE_PYTHON} is missing: the forced command's bridge needs it"
    return None


def find_sshd() -> str | None:
    for path in (shutil.which("sshd"), *SSHD_CANDIDATES):
        if path and os.access(path, os.X_OK):
            return os.path.abspath(path)  # sshd refuses to re-exec from a relative path
    return None


def _ed25519_openssh() -> tuple[bytes, str]:
    """A new key: (private key in OpenSSH PEM, public line ``ssh-ed25519 AAAA...``)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _remove_stale_users() -> None:
    """Test users whose run died without cleaning up (the pid in the name is gone)."""
    for entry in pwd.getpwall():
        m = re.fullmatch(rf"{USER_PREFIX}(\d+)", entry.pw_name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)


@dataclass
class Sshd:
    """One running sshd and the lines it logged."""

    name: str
    port: int
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<sshd exited>")
            self.cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT, start: int = 0) -> str:
        """The first log line from index ``start`` on that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if re.search(pattern, line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or "<sshd exited>" in self.lines:
                    raise AssertionError(
                        f"sshd {self.name}: no log line matching {pattern!r}; log:\n"
                        + "\n".join(self.lines[-30:])
                    )
                self.cond.wait(remaining)

    def mark(self) -> int:
        with self.cond:
            return len(self.lines)


class OpenSshLab:
    """The test user, one lab node and the ``cooked`` and ``raw`` sshd in front of it."""

    def __init__(self) -> None:
        self.user = f"{USER_PREFIX}{os.getpid()}"
        self.password = "pty-" + secrets.token_urlsafe(15)
        # A folder the test user can traverse (it is its home and holds authorized_keys).
        self.dir = Path(tempfile.mkdtemp(prefix="mml-sshd-"))
        self.dir.chmod(0o755)
        self.known_hosts = self.dir / "known_hosts"
        self.client_key = self.dir / "client_key"
        self.lab = Lab(
            [NodeConfig("uap-1")],
            workdir=self.dir / "lab",
            username=self.user,
            password=self.password,
            with_gateway=False,
        )
        self.sshd: dict[str, Sshd] = {}
        self._user_created = False

    @property
    def tcp_port(self) -> int:
        return self.lab.node("uap-1").tcp_port

    def start(self) -> OpenSshLab:
        try:
            self._create_user()
            self.lab.start()
            private, public = _ed25519_openssh()
            self.client_key.write_bytes(private)
            self.client_key.chmod(0o600)
            (self.dir / "authorized_keys").write_text(public + "\n")
            (self.dir / "authorized_keys").chmod(0o644)
            (self.dir / "bridge.py").write_text(BRIDGE)
            (self.dir / "bridge.py").chmod(0o644)
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
            bridge = f"{BRIDGE_PYTHON} -I {self.dir / 'bridge.py'} {self.tcp_port}"
            self._start_sshd("cooked", bridge)
            self._start_sshd("raw", f"stty raw -echo && exec {bridge}")
        except BaseException:
            self.stop()
            raise
        return self

    def _create_user(self) -> None:
        _remove_stale_users()
        subprocess.run(["userdel", "-f", self.user], capture_output=True, check=False)
        subprocess.run(
            ["useradd", "-M", "-d", str(self.dir), "-s", "/bin/sh", self.user],
            check=True,
            capture_output=True,
        )
        self._user_created = True
        subprocess.run(
            ["chpasswd"],
            input=f"{self.user}:{self.password}\n",
            text=True,
            check=True,
            capture_output=True,
        )

    def _start_sshd(self, name: str, command: str) -> None:
        sshd = find_sshd()
        assert sshd is not None
        private, public = _ed25519_openssh()
        host_key = self.dir / f"host_key_{name}"
        host_key.write_bytes(private)
        host_key.chmod(0o600)
        for _ in range(3):  # another process may take the free port before sshd binds it
            port = _free_port()
            config = self.dir / f"sshd_config_{name}"
            config.write_text(
                f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile none
AuthorizedKeysFile {self.dir / "authorized_keys"}
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers {self.user}
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding yes
PermitOpen 127.0.0.1:{self.tcp_port}
ForceCommand {command}
LogLevel INFO
"""
            )
            process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            server = Sshd(name, port, process)
            threading.Thread(target=server.read_log, name=f"sshd-{name}", daemon=True).start()
            self.sshd[name] = server
            try:
                server.wait_for(r"Server listening on 127\.0\.0\.1 port")
            except AssertionError:
                process.kill()
                process.wait()
                if any("Bind to port" in line for line in server.lines):
                    continue
                raise
            with self.known_hosts.open("a") as f:
                f.write(f"[127.0.0.1]:{port} {public}\n")
            return
        raise AssertionError(f"sshd {name}: could not bind a free port in three tries")

    def stop(self) -> None:
        for server in self.sshd.values():
            if server.process.poll() is None:
                server.process.terminate()
                try:
                    server.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    server.process.kill()
                    server.process.wait()
        self.lab.stop()
        if self._user_created:
            subprocess.run(["userdel", "-f", self.user], capture_output=True, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- inventory entries

    def host(self, pty: str, auth: str, **changes: object) -> HostConfig:
        """The node over an SSH shell on sshd ``pty`` (cooked | raw), ``auth`` password | key.

        With key authentication the password is still given: it is the MML ``LGI`` password
        (paramiko offers the key first; the sshd log tells which method it accepted)."""
        host = HostConfig(
            name=f"uap-{pty}-{auth}",
            hostname="127.0.0.1",
            port=self.sshd[pty].port,
            transport="ssh",
            username=self.user,
            password=Secret(self.password),
            key_file=self.client_key if auth == "key" else None,
            known_hosts=self.known_hosts,
            trust_on_first_use=False,
            connect_timeout=10,
            timeout=10,
            platform="huawei_uap9600",
            groups=(),
            ne_name="UAP-1",
            meid=None,
            gateway=None,
            jump=None,
        )
        return _replace(host, **changes)

    def tunnel_host(self, auth: str, **changes: object) -> HostConfig:
        """The node's TCP MML port through sshd ``cooked`` as the jump host (direct-tcpip)."""
        jump = JumpConfig(
            hostname="127.0.0.1",
            port=self.sshd["cooked"].port,
            username=self.user,
            password=Secret(self.password) if auth == "password" else None,
            key_file=self.client_key if auth == "key" else None,
            known_hosts=self.known_hosts,
        )
        host = self.host("cooked", "password", transport="ssh-tunnel", port=self.tcp_port)
        return _replace(host, name=f"uap-tunnel-{auth}", jump=jump, **changes)


def _replace(host: HostConfig, **changes: object) -> HostConfig:
    import dataclasses

    return dataclasses.replace(host, **changes)  # type: ignore[arg-type]
