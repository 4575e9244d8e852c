"""A whole-process `check` without mml-tool: what a minimal script does for the same exchange.

    python bench/floor.py INVENTORY [--client paramiko*|paramiko|libssh2|netmiko] [--workers N]

Reads the lab inventory (PyYAML, libyaml's loader when present; ``${MML_LAB_PASSWORD}`` from
the environment), then for every host in a thread pool: connect, ``LGI``, ``REG NE``,
``LST SFP: ID=P978;``, ``LGO``; reads P978 bit 0 from the LST reply; prints one line per host and
a summary, exit 100 when a host is non-compliant (bit 0 = 1), 1 when a host failed. No
framing, no parsing beyond one regex, no policy, no report: the floor a tool cannot go below.

Clients:

- ``paramiko*`` (the floor): bare paramiko with the two tunings mml-tool has: TCP_NODELAY on its
  own socket (``sock=``), known_hosts parsed once and only the host's key given to each client.
- ``paramiko``: the same with paramiko's defaults (``load_host_keys`` per connection, no
  TCP_NODELAY): what a quick script gets.
- ``libssh2``: bare ssh2-python (libssh2, the SSH library mml-tool uses) with the same tuning
  (TCP_NODELAY; the host key compared with the known_hosts line, parsed once): what mml-tool's
  own work costs above its SSH layer.
- ``netmiko``: ``ConnectHandler`` (device_type ``generic``) with the same two tunings
  (its own ``sock=`` with TCP_NODELAY; ``alt_key_file`` = a known_hosts with only the lab's
  key) and its documented speed settings (``fast_cli=True``, ``global_delay_factor`` 1), and
  TextFSM on the LST reply (``use_textfsm`` with mml-tool's template), as its users would.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

END_RE = re.compile(rb"^---\s+END\s*$", re.M)
BIT_RE = re.compile(rb"P978\s+\S+\s+(\d+)")  # table layout: ID, name, value
LST = "LST SFP: ID=P978;"
TEMPLATE = Path(__file__).resolve().parents[1] / "mml_tool" / "templates"


def load_hosts(path: Path) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    defaults = doc.get("defaults", {})
    password = os.environ["MML_LAB_PASSWORD"]
    hosts = []
    for name, entry in doc["hosts"].items():
        host = {**defaults, **entry, "name": name, "password": password}
        host["known_hosts"] = str(path.parent / host["known_hosts"])
        hosts.append(host)
    return hosts


def commands(host: dict[str, Any]) -> list[str]:
    return [
        f'LGI: OP="{host["username"]}", PWD="{host["password"]}";',
        f'REG NE: NAME="{host["ne_name"]}";',
        LST,
        "LGO;",
    ]


def known_hosts(path: Path) -> dict[str, dict[str, Any]]:
    """known_hosts parsed once, in one pass, into a dict (``paramiko.HostKeys`` scans every
    entry per line and per lookup)."""
    from paramiko.hostkeys import HostKeyEntry

    keys: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = HostKeyEntry.from_line(line) if line and not line.startswith("#") else None
        for name in entry.hostnames if entry else ():
            keys.setdefault(name, {}).setdefault(entry.key.get_name(), entry.key)
    return keys


def tcp_nodelay(host: dict[str, Any]) -> socket.socket:
    sock = socket.create_connection((host["hostname"], host["port"]), host["connect_timeout"])
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def paramiko_bit(host: dict[str, Any], keys: dict[str, Any] | None) -> int:
    import paramiko

    client = paramiko.SSHClient()
    sock = None
    if keys is None:
        client.load_host_keys(host["known_hosts"])
    else:
        name = f"[{host['hostname']}]:{host['port']}"
        for key_type, key in keys.get(name, {}).items():
            client.get_host_keys().add(name, key_type, key)
        sock = tcp_nodelay(host)
    client.connect(
        host["hostname"], host["port"], host["username"], host["password"],
        look_for_keys=False, allow_agent=False, timeout=host["connect_timeout"], sock=sock,
    )  # fmt: skip
    try:
        chan = client.invoke_shell(width=1000, height=1000)
        chan.settimeout(host["timeout"])
        replies = []
        for command in commands(host):
            chan.sendall(command.encode() + b"\r\n")
            buf = b""
            while not END_RE.search(buf):
                data = chan.recv(65536)
                if not data:
                    raise EOFError(f"{host['name']}: closed while waiting for {command}")
                buf += data
            replies.append(buf)
    finally:
        client.close()
    match = BIT_RE.search(replies[2])
    if b"RETCODE = 0" not in replies[2] or match is None:
        raise ValueError(f"{host['name']}: no P978 in the reply")
    return int(match.group(1)) & 1


def libssh2_bit(host: dict[str, Any], keys: dict[str, Any]) -> int:
    """Non-blocking, each wait a select() on the socket (libssh2's blocking write was seen to
    hang for good under load)."""
    import select

    from ssh2.error_codes import LIBSSH2_ERROR_EAGAIN
    from ssh2.session import LIBSSH2_SESSION_BLOCK_OUTBOUND, Session

    sock = tcp_nodelay(host)
    sock.setblocking(False)
    session = Session()
    session.set_blocking(False)

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        while True:
            result = fn(*args)
            rc = result[0] if isinstance(result, tuple) else result
            if not (isinstance(rc, int) and rc == LIBSSH2_ERROR_EAGAIN):
                return result
            out = session.block_directions() & LIBSSH2_SESSION_BLOCK_OUTBOUND
            ready = select.select([] if out else [sock], [sock] if out else [], [], host["timeout"])
            if not any(ready):
                raise TimeoutError(f"{host['name']}: no answer in {host['timeout']} s")

    try:
        call(session.handshake, sock)
        blob, _ = session.hostkey()
        name = f"[{host['hostname']}]:{host['port']}"
        if not any(key.asbytes() == blob for key in keys.get(name, {}).values()):
            raise ValueError(f"{host['name']}: unknown host key")
        call(session.userauth_password, host["username"], host["password"])
        chan = call(session.open_session)
        call(chan.pty, "vt100")
        call(chan.shell)
        replies = []
        for command in commands(host):
            call(chan.write, command.encode() + b"\r\n")
            buf = b""
            while not END_RE.search(buf):
                size, data = call(chan.read, 65536)
                if size <= 0:
                    raise EOFError(f"{host['name']}: closed while waiting for {command}")
                buf += data
            replies.append(buf)
        call(chan.close)
        call(session.disconnect)
    finally:
        sock.close()
    match = BIT_RE.search(replies[2])
    if b"RETCODE = 0" not in replies[2] or match is None:
        raise ValueError(f"{host['name']}: no P978 in the reply")
    return int(match.group(1)) & 1


def netmiko_bit(host: dict[str, Any], template: str) -> int:
    from netmiko import ConnectHandler

    conn = ConnectHandler(
        device_type="generic",
        host=host["hostname"],
        port=host["port"],
        username=host["username"],
        password=host["password"],
        ssh_strict=True,
        system_host_keys=False,
        alt_host_keys=True,
        alt_key_file=host["known_hosts_one"],
        sock=tcp_nodelay(host),
        fast_cli=True,
        global_delay_factor=1,
        conn_timeout=host["connect_timeout"],
    )
    records: Any = []
    try:
        for command in commands(host):
            out = conn.send_command(
                command,
                expect_string=r"---\s+END",
                cmd_verify=False,
                use_textfsm=command == LST,
                textfsm_template=template,
                raise_parsing_error=True,
            )
            if command == LST:
                records = out
    finally:
        conn.disconnect()
    # The per-bit table: one record per bit (id, bit, bit_value).
    return next(int(r["bit_value"]) for r in records if r["id"] == "P978" and r["bit"] == "0")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inventory", type=Path)
    ap.add_argument(
        "--client", default="paramiko*", choices=["paramiko*", "paramiko", "libssh2", "netmiko"]
    )
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    hosts = load_hosts(args.inventory)
    job: Callable[[dict[str, Any]], int]
    if args.client == "netmiko":
        template = str(TEMPLATE / "huawei_uap9600_lst_sfp.textfsm")
        # netmiko has paramiko load ``alt_key_file`` on every connection (quadratic in its
        # lines): give each host a known_hosts with only its own line, parsed once here.
        keys = known_hosts(Path(hosts[0]["known_hosts"]))
        folder = Path(tempfile.mkdtemp(prefix="netmiko-kh-"))
        for h in hosts:
            name = f"[{h['hostname']}]:{h['port']}"
            h["known_hosts_one"] = str(folder / h["name"])
            Path(h["known_hosts_one"]).write_text(
                "".join(f"{name} {t} {k.get_base64()}\n" for t, k in keys.get(name, {}).items()),
                encoding="utf-8",
            )
        job = lambda h: netmiko_bit(h, template)  # noqa: E731
    elif args.client == "libssh2":
        keys = known_hosts(Path(hosts[0]["known_hosts"]))
        job = lambda h: libssh2_bit(h, keys)  # noqa: E731
    elif args.client == "paramiko*":
        keys = known_hosts(Path(hosts[0]["known_hosts"]))
        job = lambda h: paramiko_bit(h, keys)  # noqa: E731
    else:
        job = lambda h: paramiko_bit(h, None)  # noqa: E731

    def one(host: dict[str, Any]) -> tuple[str, int | None]:
        try:
            return host["name"], job(host)
        except Exception as exc:  # one host's failure is a line, not the end of the run
            print(f"{host['name']}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return host["name"], None

    with ThreadPoolExecutor(max_workers=min(args.workers, len(hosts))) as pool:
        results = list(pool.map(one, hosts))
    for name, bit in results:
        status = "error" if bit is None else "pass" if bit == 0 else "fail"
        print(f"{name:<12} P978 bit 0 = {bit}  {status}")
    errors = sum(bit is None for _, bit in results)
    fails = sum(bit == 1 for _, bit in results)
    print(f"{len(results) - errors - fails} pass, {fails} fail, {errors} error")
    return 1 if errors else 100 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
