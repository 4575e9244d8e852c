"""The lab under 1000 simultaneous SSH sessions: one process vs one worker process per core.

    python bench/lab.py [--nodes 1000] [--clients 4] [--processes 1 2]

For each lab layout (``mml-tool lab --processes P``) the bench opens one SSH session per node,
all at once: ``--clients`` client processes (so that the client is not what limits), each with a
thread per session, connect and log in; once *every* session is open (a barrier across the
clients) each sends ``LST SFP: ID=P978;``, reads the reply and logs out. Shown: sessions that
succeeded, the time until all were open, the whole run, and the lab's CPU (its processes'
user + system time, from /proc).

Target (exit 1 when missed): with one worker process per core the lab serves every session.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import END_RE, LAB_PROCESSES, LST, lab_process, load_note, verdict
from floor import known_hosts, load_hosts, tcp_nodelay

BARRIER_TIMEOUT = 300.0


def session(host: dict[str, Any], keys: dict[str, Any], barrier: Barrier) -> bool:
    import paramiko

    client = paramiko.SSHClient()
    name = f"[{host['hostname']}]:{host['port']}"
    for key_type, key in keys.get(name, {}).items():
        client.get_host_keys().add(name, key_type, key)
    try:
        client.connect(
            host["hostname"], host["port"], host["username"], host["password"],
            look_for_keys=False, allow_agent=False, timeout=60, banner_timeout=60,
            auth_timeout=60, sock=tcp_nodelay(host | {"connect_timeout": 60}),
        )  # fmt: skip
        chan = client.invoke_shell(width=1000, height=1000)
        chan.settimeout(120)
        login = f'LGI: OP="{host["username"]}", PWD="{host["password"]}";'
        ok = True
        for i, command in enumerate((login, LST, "LGO;")):
            if i == 1:
                barrier.wait(BARRIER_TIMEOUT)  # every session of every client is open now
            chan.sendall(command.encode() + b"\r\n")
            buf = b""
            while not END_RE.search(buf):
                data = chan.recv(65536)
                if not data:
                    return False
                buf += data
            ok = ok and b"RETCODE = 0" in buf
        return ok
    except Exception as exc:
        print(f"{host['name']}: {type(exc).__name__}: {exc}", file=sys.stderr)
        barrier.abort()
        return False
    finally:
        client.close()


def client_process(inventory: str, part: int, parts: int, barrier: Barrier, out: Any) -> None:
    hosts = load_hosts(Path(inventory))[part::parts]
    keys = known_hosts(Path(hosts[0]["known_hosts"]))
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        ok = sum(pool.map(lambda h: session(h, keys, barrier), hosts))
    out.put(ok)


def lab_cpu(lab_pid: int) -> float:
    """User + system CPU seconds of the lab process and its children (the workers)."""
    pids = [lab_pid] + [
        int(p) for p in Path(f"/proc/{lab_pid}/task/{lab_pid}/children").read_text().split()
    ]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def measure(nodes: int, processes: int, clients: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    with lab_process(nodes, processes=processes) as inventory:
        lab_pid = int((inventory.parent / "lab.pid").read_text())
        cpu0 = lab_cpu(lab_pid)
        barrier = ctx.Barrier(nodes + 1)
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=client_process,
                args=(str(inventory), i, clients, barrier, out),
                daemon=True,  # never outlives the bench
            )
            for i in range(clients)
        ]
        start = time.perf_counter()
        for proc in procs:
            proc.start()
        opened = float("nan")
        try:
            barrier.wait(BARRIER_TIMEOUT)
            opened = time.perf_counter() - start
        except Exception:
            pass
        ok = 0
        for _ in procs:
            try:
                ok += out.get(timeout=BARRIER_TIMEOUT)
            except queue.Empty:  # a client stuck: its sessions count as not served
                print("a client process did not finish in time", file=sys.stderr)
                break
        wall = time.perf_counter() - start
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        cpu = lab_cpu(lab_pid) - cpu0
    return {"ok": ok, "opened": opened, "wall": wall, "lab_cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--processes", type=int, nargs="+", default=sorted({1, LAB_PROCESSES}))
    args = ap.parse_args()
    before = load_note()
    results = {p: measure(args.nodes, p, args.clients) for p in args.processes}
    print(
        f"\nlab bench: {args.nodes} simultaneous SSH sessions from {args.clients} client processes"
    )
    print(f"machine: before {before}; after {load_note()}")
    print(f"{'lab processes':>13} {'ok':>5} {'all open s':>10} {'wall s':>7} {'lab CPU s':>9}")
    for p, r in results.items():
        print(f"{p:>13} {r['ok']:>5} {r['opened']:>10.2f} {r['wall']:>7.2f} {r['lab_cpu']:>9.2f}")
    best = results[max(results)]
    passed = best["ok"] == args.nodes
    print()
    print(verdict(f"{max(results)} lab processes serve every session", passed, f"{best['ok']}"))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
