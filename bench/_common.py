"""Shared benchmark helpers: the lab in its own process, per-variant child processes, the
three clients (mml-tool, bare paramiko, netmiko + TextFSM) and the report table.

Each variant runs in a fresh child process (``python bench/X.py --child ...``) so that its peak
RSS (``ru_maxrss``) is its own; the child measures its own wall and CPU time (RUSAGE_SELF: the
simulator, a separate process, is never counted) and prints one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mml_tool.inventory import HostConfig, load_inventory

# Benchmarked commands record history and audit as a real run does, but in a state folder of
# their own (every child inherits it): never into the user's history.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="mml-bench-state-")

END_RE = re.compile(rb"^---\s+END\s*$", re.M)
LAB_READY_TIMEOUT = 120.0
LST = "LST SFP: ID=P978;"


@dataclass(frozen=True)
class Figures:
    variant: str
    mode: str
    hosts: int
    ok: int
    wall: float  # s
    cpu: float  # s, user + system of the client process only
    rss_mb: float  # peak RSS of the client process


def compile_tool() -> None:
    """Byte-compile mml_tool as an installation does (pip writes the .pyc files): an editable
    checkout run with PYTHONDONTWRITEBYTECODE=1 would compile every module from source in
    every process (65-90 ms of CPU each), a cost no installed copy pays; the floor's libraries
    come from site-packages, compiled."""
    import compileall

    import mml_tool

    compileall.compile_dir(Path(mml_tool.__file__).parent, quiet=1)


# -- the lab, in its own process


LAB_PROCESSES = os.cpu_count() or 1


@contextmanager
def lab_process(
    nodes: int, *, processes: int = LAB_PROCESSES, gateway: bool = False
) -> Iterator[Path]:
    """Run ``mml-tool lab`` (``--no-gateway`` unless ``gateway``, its nodes in ``processes``
    worker processes) in a subprocess; yield its inventory path once ready."""
    folder = Path(tempfile.mkdtemp(prefix="mml-bench-"))
    inventory = folder / "inv.yaml"
    cmd = [
        sys.executable, "-c", "from mml_tool.cli import main; main()",
        "lab", "--nodes", str(nodes), "--write-inventory", str(inventory),
        "--processes", str(processes), *([] if gateway else ["--no-gateway"]),
    ]  # fmt: skip
    # stderr to a file: a pipe nobody reads could fill up and block the lab.
    errors = (folder / "lab.stderr").open("wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, cwd=folder)
    (folder / "lab.pid").write_text(str(proc.pid), encoding="utf-8")  # for its CPU (bench/lab.py)
    try:
        _wait_ready(proc, LAB_READY_TIMEOUT, folder / "lab.stderr")
        env = (folder / "lab.env").read_text(encoding="utf-8")
        for name, value in re.findall(r"export (\w+)='([^']*)'", env):
            os.environ[name] = value
        yield inventory
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errors.close()
        shutil.rmtree(folder, ignore_errors=True)  # holds lab.env (the lab password)


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float, errors: Path) -> None:
    """Read the lab's stdout until its ``lab ready`` line, with a deadline (no sleeps)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"lab ready" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise RuntimeError(f"the lab did not get ready within {timeout:g} s: {buffer!r}")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                err = errors.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the lab exited (code {proc.wait()}): {err}")
            buffer += chunk


def load_hosts(inventory: Path, count: int) -> list[HostConfig]:
    hosts = list(load_inventory(inventory).hosts.values())
    if len(hosts) < count:
        raise RuntimeError(f"the lab has {len(hosts)} hosts, {count} wanted")
    return hosts[:count]


# -- measuring one variant in a fresh child process


def measure(variant: str, mode: str, hosts: int, run: Callable[[], int]) -> Figures:
    """Run ``run`` (returns the number of hosts that succeeded) and take this process's figures."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ok = run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return Figures(variant, mode, hosts, ok, wall, cpu, rss_kb / 1024)


def run_process(
    variant: str,
    mode: str,
    hosts: int,
    cmd: Sequence[str],
    *,
    cwd: Path,
    expect: Sequence[int] = (0,),
    timeout: float = 1800,
) -> tuple[Figures, str]:
    """Run ``cmd`` as a whole process (start-up, imports and output included) and take its
    wall time, its own CPU (user + system) and peak RSS from ``wait4``; ``ok`` = the hosts its
    summary line ("N pass, N fail, N error") counts as decided. Exit code outside ``expect``:
    RuntimeError with its stderr."""
    out_path, err_path = cwd / f"{variant}.out", cwd / f"{variant}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, cwd=cwd)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
    output = out_path.read_text(encoding="utf-8", errors="replace")
    if code not in expect:
        tail = err_path.read_text(errors="replace")[-3000:] or output[-3000:]
        raise RuntimeError(f"{variant}: exit {code} (expected {list(expect)}): {tail}")
    counts = SUMMARY_RE.findall(output)
    ok = int(counts[-1][0]) + int(counts[-1][1]) if counts else 0
    cpu = usage.ru_utime + usage.ru_stime
    return Figures(variant, mode, hosts, ok, wall, cpu, usage.ru_maxrss / 1024), output


SUMMARY_RE = re.compile(r"(\d+) pass, (\d+) fail, (\d+) error")


def emit(figures: Figures) -> None:
    print(json.dumps(asdict(figures)), flush=True)


def run_child(script: str, args: Sequence[str], timeout: float = 1800) -> Figures:
    """Run ``script --child ARGS`` (environment inherited: lab credentials); parse its figures."""
    proc = subprocess.run(
        [sys.executable, script, "--child", *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return Figures(**json.loads(proc.stdout.strip().splitlines()[-1]))


def run_all(script: str, arg_sets: Sequence[Sequence[str]], repeat: int) -> list[Figures]:
    """Each argument set in a fresh child, ``repeat`` rounds interleaved (so that a busy spell on
    the machine hits every variant alike); the median of each figure, one row per set."""
    runs: list[list[Figures]] = [[] for _ in arg_sets]
    for _ in range(max(1, repeat)):
        for i, args in enumerate(arg_sets):
            runs[i].append(run_child(script, args))
            print(f"  done: {' '.join(args[:2])}", file=sys.stderr, flush=True)
    return [
        dataclasses.replace(
            r[0],
            ok=min(x.ok for x in r),
            wall=statistics.median(x.wall for x in r),
            cpu=statistics.median(x.cpu for x in r),
            rss_mb=statistics.median(x.rss_mb for x in r),
        )
        for r in runs
    ]


def load_note() -> str:
    """The machine's load: other processes share the cores, and skew wall times."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (1 min) {five:.2f} (5 min)"


def run_pool(hosts: Sequence[HostConfig], job: Callable[[HostConfig], bool], workers: int) -> int:
    """How many hosts ``job`` succeeded on; workers == 1 runs sequentially, no pool."""
    if workers <= 1:
        return sum(job(h) for h in hosts)
    with ThreadPoolExecutor(max_workers=min(workers, len(hosts))) as pool:
        return sum(pool.map(job, hosts))


# -- the floor: bare paramiko, minimal code


def paramiko_exchange(
    host: HostConfig, commands: Sequence[str], tuned: KnownHosts | None = None
) -> list[bytes]:
    """Connect, open a shell, send each command and read up to its ``---    END``.

    ``tuned`` (informative, not the floor): the known_hosts file parsed once for the whole run
    (paramiko's ``load_host_keys`` is quadratic in the file's lines) and TCP_NODELAY on the
    socket (without it the SSH handshake stalls on Nagle + delayed ACK, 40 ms at a time)."""
    import paramiko

    assert host.password is not None and host.known_hosts is not None
    client = paramiko.SSHClient()
    sock = None
    if tuned is None:
        client.load_host_keys(str(host.known_hosts))
    else:
        name = f"[{host.hostname}]:{host.port}"
        for key_type, key in tuned.get(name, {}).items():
            client.get_host_keys().add(name, key_type, key)
        sock = socket.create_connection((host.hostname, host.port), host.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(
        host.hostname, host.port, host.username, host.password.reveal(),
        look_for_keys=False, allow_agent=False, timeout=host.connect_timeout, sock=sock,
    )  # fmt: skip
    try:
        chan = client.invoke_shell(width=1000, height=1000)
        chan.settimeout(host.timeout)
        replies = []
        for command in commands:
            chan.sendall(command.encode() + b"\r\n")
            buf = b""
            while not END_RE.search(buf):
                data = chan.recv(65536)
                if not data:
                    raise EOFError(f"{host.name}: closed while waiting for {command}")
                buf += data
            replies.append(buf)
        return replies
    finally:
        client.close()


KnownHosts = dict[str, dict[str, Any]]


def host_keys(path: Path) -> KnownHosts:
    """known_hosts parsed once, in one pass (as mml-tool does; paramiko's own load and lookup
    scan every entry per line)."""
    from floor import known_hosts

    return known_hosts(path)


def one_line_known_hosts(hosts: Sequence[HostConfig], folder: Path) -> dict[str, Path]:
    """For netmiko (which has paramiko load ``alt_key_file`` on every connection): a
    known_hosts per host holding only its own line, written from one parse of the lab's file."""
    keys = host_keys(hosts[0].known_hosts or Path())
    files = {}
    for host in hosts:
        name = f"[{host.hostname}]:{host.port}"
        files[host.name] = path = folder / host.name
        lines = (f"{name} {t} {k.get_base64()}\n" for t, k in keys.get(name, {}).items())
        path.write_text("".join(lines), encoding="utf-8")
    return files


# -- what a user would write: netmiko + TextFSM


def netmiko_exchange(
    host: HostConfig, commands: Sequence[str], parse: str, template: Path, known_hosts: Path
) -> list[dict[str, str]]:
    """netmiko's ``generic`` driver (= ``terminal_server``: no prompt handling, which suits the
    simulator: it prints no prompt); every reply ends at the END line. The reply to ``parse``
    goes through TextFSM the netmiko way (``use_textfsm`` with our template). The same two
    tunings as the floor: its own socket with TCP_NODELAY (``sock=``) and a known_hosts with
    only this host's line; ``fast_cli`` (its documented speed setting, the default in 4.x)."""
    from netmiko import ConnectHandler

    assert host.password is not None
    sock = socket.create_connection((host.hostname, host.port), host.connect_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = ConnectHandler(
        device_type="generic",
        host=host.hostname,
        port=host.port,
        username=host.username,
        password=host.password.reveal(),
        ssh_strict=True,
        system_host_keys=False,
        alt_host_keys=True,
        alt_key_file=str(known_hosts),
        sock=sock,
        fast_cli=True,
        conn_timeout=host.connect_timeout,
    )
    records: list[dict[str, str]] = []
    try:
        for command in commands:
            out = conn.send_command(
                command,
                expect_string=r"---\s+END",
                cmd_verify=False,
                use_textfsm=command == parse,
                textfsm_template=str(template),
                raise_parsing_error=True,
            )
            if command == parse:
                assert isinstance(out, list)
                records = out
    finally:
        conn.disconnect()
    return records


def login(host: HostConfig) -> str:
    assert host.password is not None
    return f'LGI: OP="{host.username}", PWD="{host.password.reveal()}";'


# -- the report


def table(rows: Sequence[Figures], floor: Callable[[Figures], Figures | None]) -> str:
    head = (
        f"{'variant':<10} {'mode':<11} {'hosts':>5} {'ok':>4} {'wall s':>8} {'ms/sess':>8} "
        f"{'CPU s':>7} {'RSS MB':>7} {'wall/fl':>8} {'CPU/fl':>7} {'RSS/fl':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        f = floor(r)
        ratios = (
            f"{r.wall / f.wall:>7.2f}x {r.cpu / f.cpu:>6.2f}x {r.rss_mb / f.rss_mb:>6.2f}x"
            if f is not None
            else ""
        )
        lines.append(
            f"{r.variant:<10} {r.mode:<11} {r.hosts:>5} {r.ok:>4} {r.wall:>8.2f} "
            f"{1000 * r.wall / r.hosts:>8.1f} {r.cpu:>7.2f} {r.rss_mb:>7.1f} {ratios}"
        )
    return "\n".join(lines)


def verdict(label: str, ok: bool, detail: str) -> str:
    return f"{'PASS' if ok else 'MISS'}  {label}: {detail}"
