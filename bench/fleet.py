"""``check`` over a fleet of lab nodes: mml-tool's check_fleet with the built-in policy vs a bare
paramiko loop (the floor) vs a netmiko + TextFSM script, all with a thread pool of the same size.
The simulator runs in its own process; each variant in a fresh child process.

Every variant does what ``check`` does on the lab inventory: connect, LGI, ``REG NE`` (the
inventory names each NE), ``LST SFP: ID=P978;``, LGO.

    python bench/fleet.py [--nodes 200] [--workers 32] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).parent))
from _common import (
    LST,
    emit,
    host_keys,
    lab_process,
    load_hosts,
    load_note,
    login,
    measure,
    netmiko_exchange,
    paramiko_exchange,
    run_all,
    run_pool,
    table,
    verdict,
)

from mml_tool.fleet import DEFAULT_WORKERS
from mml_tool.inventory import HostConfig

if TYPE_CHECKING:
    from paramiko import HostKeys

# The floor is paramiko*: bare paramiko with the same two socket/known_hosts tunings
# mml-tool has (TCP_NODELAY, known_hosts parsed once); plain "paramiko" (library defaults)
# is shown for reference, since that is what a quick script gets.
VARIANTS = ("paramiko", "mml-tool", "netmiko", "paramiko*")
TARGET_FLOOR = 1.5  # wall within 1.5x of the floor
TARGET_NETMIKO = 5.0  # at least 5x faster than netmiko
TARGET_RSS_MB = 200.0


def commands(host: HostConfig) -> list[str]:
    return [login(host), f'REG NE: NAME="{host.ne_name}";', LST, "LGO;"]


def child(variant: str, inventory: Path, count: int, workers: int) -> None:
    from mml_tool.compliance import check_fleet
    from mml_tool.parsing import find_template
    from mml_tool.policy import load_policy

    hosts = load_hosts(inventory, count)
    template = find_template(LST)

    def mml_tool() -> int:
        findings = check_fleet(hosts, load_policy(None), workers=workers)
        return sum(f.status in ("pass", "fail") for f in findings)

    def bare(host: HostConfig, tuned: HostKeys | None = None) -> bool:
        return b"RETCODE = 0" in paramiko_exchange(host, commands(host), tuned)[2]

    def netmiko(host: HostConfig) -> bool:
        return len(netmiko_exchange(host, commands(host), LST, template)) == 16

    if variant == "netmiko":
        import netmiko as _  # noqa: F401  (imports are not part of the figures)

    def run() -> int:
        if variant == "mml-tool":
            return mml_tool()
        if variant == "paramiko*":
            keys = host_keys(hosts[0].known_hosts or Path())  # once per run, inside the figures
            return run_pool(hosts, lambda h: bare(h, keys), workers)
        return run_pool(hosts, bare if variant == "paramiko" else netmiko, workers)

    emit(measure(variant, "concurrent", count, run))


def known_hosts_cost(path: Path) -> float:
    """CPU ms paramiko spends loading ``path`` once (done for every SSH connection)."""
    import paramiko

    start = time.process_time()
    for _ in range(10):
        paramiko.SSHClient().load_host_keys(str(path))
    return (time.process_time() - start) * 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant (median)")
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "INVENTORY"))
    args = ap.parse_args()
    if args.child:
        variant, inventory = args.child
        child(variant, Path(inventory), args.nodes, args.workers)
        return
    with lab_process(args.nodes) as inventory:
        opts = ["--nodes", str(args.nodes), "--workers", str(args.workers)]
        before = load_note()
        rows = run_all(__file__, [[v, str(inventory), *opts] for v in VARIANTS], args.repeat)
        after = load_note()
        kh_ms = known_hosts_cost(inventory.parent / "lab_known_hosts")
    by = {r.variant: r for r in rows}
    mt, fl, nm = by["mml-tool"], by["paramiko*"], by["netmiko"]
    print(
        f"\nfleet bench: check over {args.nodes} nodes, {args.workers} workers, "
        f"median of {args.repeat} runs"
    )
    print(f"machine: before {before}; after {after}")
    print(table(rows, lambda r: fl))
    print(f"(paramiko loads the {args.nodes}-line known_hosts in {kh_ms:.1f} ms CPU, per session)")
    print()
    checks = [
        (
            f"mml-tool wall within {TARGET_FLOOR}x of the floor (tuned bare paramiko)",
            mt.wall <= TARGET_FLOOR * fl.wall,
            f"{mt.wall / fl.wall:.2f}x",
        ),
        (
            f"mml-tool at least {TARGET_NETMIKO:g}x faster than netmiko (wall)",
            nm.wall >= TARGET_NETMIKO * mt.wall,
            f"{nm.wall / mt.wall:.2f}x",
        ),
        (
            f"mml-tool peak RSS under {TARGET_RSS_MB:g} MB",
            mt.rss_mb < TARGET_RSS_MB,
            f"{mt.rss_mb:.1f} MB",
        ),
        ("every host checked", all(r.ok == r.hosts for r in rows), ""),
    ]
    for label, passed, detail in checks:
        print(verdict(label, passed, detail))
    sys.exit(0 if all(passed for _, passed, _ in checks) else 1)


if __name__ == "__main__":
    main()
