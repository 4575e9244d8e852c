"""One session per host (connect, LGI, ``LST SFP: ID=P978;``, LGO): mml-tool vs bare paramiko
(the floor) vs netmiko + TextFSM, sequential and concurrent, against the lab simulator running
in its own process. Each variant runs in a fresh child process (own CPU and peak RSS).

    python bench/session.py [--hosts 200] [--workers 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    LST,
    KnownHosts,
    emit,
    host_keys,
    lab_process,
    load_hosts,
    load_note,
    login,
    measure,
    netmiko_exchange,
    one_line_known_hosts,
    paramiko_exchange,
    run_all,
    run_pool,
    table,
    verdict,
)

from mml_tool.inventory import HostConfig

# The floor is paramiko*: bare paramiko with the same two socket/known_hosts tunings
# mml-tool has (TCP_NODELAY, known_hosts parsed once); plain "paramiko" (library defaults)
# is shown for reference, since that is what a quick script gets.
VARIANTS = ("paramiko", "mml-tool", "netmiko", "paramiko*")
TARGET_FLOOR = 1.2  # mml-tool wall and CPU within 1.2x of bare paramiko


def child(variant: str, mode: str, inventory: Path, count: int, workers: int) -> None:
    from mml_tool.mml.session import MmlSession
    from mml_tool.parsing import find_template, parse_output

    # Same exchange for everybody: no REG NE (the lab inventory names each NE).
    hosts = [dataclasses.replace(h, ne_name=None) for h in load_hosts(inventory, count)]
    template = find_template(LST)

    def mml_tool(host: HostConfig) -> bool:
        with MmlSession(host) as session:
            response = session.run(LST)
            records = parse_output(LST, response.raw, host.platform)
        return response.ok and len(records) == 16

    def bare(host: HostConfig, tuned: KnownHosts | None = None) -> bool:
        replies = paramiko_exchange(host, [login(host), LST, "LGO;"], tuned)
        return b"RETCODE = 0" in replies[1]

    known: dict[str, Path] = {}

    def netmiko(host: HostConfig) -> bool:
        commands = [login(host), LST, "LGO;"]
        return len(netmiko_exchange(host, commands, LST, template, known[host.name])) == 16

    if variant == "netmiko":
        import netmiko as _  # noqa: F401  (imports are not part of the figures)
    n = 1 if mode == "sequential" else workers

    def run() -> int:
        if variant == "paramiko*":
            keys = host_keys(hosts[0].known_hosts or Path())  # once per run, inside the figures
            return run_pool(hosts, lambda h: bare(h, keys), n)
        if variant == "netmiko":  # its known_hosts tuning, inside the figures too
            known.update(one_line_known_hosts(hosts, Path(tempfile.mkdtemp(prefix="nm-kh-"))))
        return run_pool(
            hosts, {"mml-tool": mml_tool, "paramiko": bare, "netmiko": netmiko}[variant], n
        )

    emit(measure(variant, mode, count, run))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=200)  # 20 gave ratios that moved by 30 %
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5, help="runs per variant (median)")
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "MODE", "INVENTORY"))
    args = ap.parse_args()
    if args.child:
        variant, mode, inventory = args.child
        child(variant, mode, Path(inventory), args.hosts, args.workers)
        return
    with lab_process(args.hosts) as inventory:
        opts = ["--hosts", str(args.hosts), "--workers", str(args.workers)]
        sets = [
            [v, m, str(inventory), *opts] for m in ("sequential", "concurrent") for v in VARIANTS
        ]
        before = load_note()
        rows = run_all(__file__, sets, args.repeat)
        after = load_note()
    floors = {r.mode: r for r in rows if r.variant == "paramiko*"}
    print(
        f"\nsession bench: {args.hosts} hosts, concurrent = {args.workers} workers, "
        f"median of {args.repeat} runs"
    )
    print(f"machine: before {before}; after {after}")
    print(table(rows, lambda r: floors.get(r.mode)))
    print()
    ok = True
    for mode in ("sequential", "concurrent"):
        by = {r.variant: r for r in rows if r.mode == mode}
        mt, fl, nm = by["mml-tool"], by["paramiko*"], by["netmiko"]
        checks = [
            (
                f"{mode}: mml-tool wall within {TARGET_FLOOR}x of bare paramiko (tuned)",
                mt.wall <= TARGET_FLOOR * fl.wall,
                f"{mt.wall / fl.wall:.2f}x",
            ),
            (
                f"{mode}: mml-tool CPU within {TARGET_FLOOR}x of bare paramiko (tuned)",
                mt.cpu <= TARGET_FLOOR * fl.cpu,
                f"{mt.cpu / fl.cpu:.2f}x",
            ),
            (f"{mode}: every session succeeded", all(r.ok == r.hosts for r in by.values()), ""),
        ]
        ratio = nm.wall / mt.wall
        print(f"{mode}: netmiko (tuned) / mml-tool: {ratio:.2f}x wall (shown, no target)")
        for label, passed, detail in checks:
            print(verdict(label, passed, detail))
            ok = ok and passed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
