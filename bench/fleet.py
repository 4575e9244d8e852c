"""``check`` over a fleet of lab nodes, whole processes: ``mml-tool check`` (CLI start-up,
inventory, check, report table) against ``bench/floor.py`` doing the same exchange with bare
paramiko (the floor), bare libssh2 (the SSH library mml-tool uses: shown, no target),
paramiko's defaults and netmiko + TextFSM, each as its own process.

    python bench/fleet.py [--nodes 200 1000] [--workers W] [--repeat 3] [--no-netmiko]

For each fleet size the lab runs in its own process (``mml-tool lab --processes <cores>``), and
every variant runs ``--repeat`` times, rounds interleaved; the medians are shown. Every variant
does what ``check`` does on the lab inventory: connect, LGI, ``REG NE``, ``LST SFP: ID=P978;``,
LGO, for every host, ``W`` hosts at a time (the same pool size for everybody).

Targets (exit 1 when one is missed): at every size mml-tool's wall within 1.2x and CPU within
1.3x of the floor; its per-host cost flat (the marginal cost of a host between the smallest and
the largest fleet within 1.1x of the per-host cost at the smallest, wall and CPU); peak RSS under
200 MB; every host decided.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figures, compile_tool, lab_process, load_note, run_process, table, verdict

from mml_tool.fleet import DEFAULT_WORKERS

HERE = Path(__file__).resolve().parent
TARGET_WALL = 1.2
TARGET_CPU = 1.3
TARGET_FLAT = 1.1
TARGET_RSS_MB = 200.0
NONCOMPLIANT = 100  # every lab node starts with P978 bit 0 = 1


def commands(variant: str, inventory: Path, workers: int) -> list[str]:
    if variant == "mml-tool":
        return [
            sys.executable, "-c", "from mml_tool.cli import main; main()",
            "check", "-i", str(inventory), "--workers", str(workers),
        ]  # fmt: skip
    client = variant.split()[0]
    return [
        sys.executable, str(HERE / "floor.py"), str(inventory),
        "--client", client, "--workers", str(workers),
    ]  # fmt: skip


DEFAULTS_UP_TO = 200  # paramiko's defaults load known_hosts per connection: 0.1 s each at 1000


def measure_size(nodes: int, variants: list[str], workers: int, repeat: int) -> list[Figures]:
    variants = [v for v in variants if v != "paramiko" or nodes <= DEFAULTS_UP_TO]
    runs: dict[str, list[Figures]] = {v: [] for v in variants}
    with lab_process(nodes) as inventory, tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, repeat)):
            for variant in variants:
                figures, _ = run_process(
                    variant,
                    "process",
                    nodes,
                    commands(variant, inventory, workers),
                    cwd=Path(tmp),
                    expect=(NONCOMPLIANT,),
                )
                runs[variant].append(figures)
                print(
                    f"  {nodes} nodes {variant}: {figures.wall:.2f} s, CPU {figures.cpu:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return [
        dataclasses.replace(
            r[0],
            ok=min(x.ok for x in r),
            wall=statistics.median(x.wall for x in r),
            cpu=statistics.median(x.cpu for x in r),
            rss_mb=max(x.rss_mb for x in r),
        )
        for r in runs.values()
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant (median)")
    ap.add_argument("--no-netmiko", action="store_true", help="leave netmiko out (slowest)")
    args = ap.parse_args()
    variants = ["paramiko*", "mml-tool", "libssh2", "paramiko"]
    variants += [] if args.no_netmiko else ["netmiko"]
    compile_tool()
    before = load_note()
    rows: dict[int, list[Figures]] = {}
    for nodes in sorted(args.nodes):
        rows[nodes] = measure_size(nodes, variants, args.workers, args.repeat)
    after = load_note()
    print(
        f"\nfleet bench (whole processes): check over {', '.join(map(str, rows))} nodes, "
        f"{args.workers} workers, median of {args.repeat} runs (RSS: the highest)"
    )
    print(f"machine: before {before}; after {after}")
    checks: list[tuple[str, bool, str]] = []
    for nodes, figures in rows.items():
        by = {r.variant: r for r in figures}
        fl, mt = by["paramiko*"], by["mml-tool"]
        print(table(figures, lambda r, fl=fl: fl))  # type: ignore[misc]
        if "libssh2" in by:
            print(
                f"  mml-tool / bare libssh2: {mt.wall / by['libssh2'].wall:.2f}x wall, "
                f"{mt.cpu / by['libssh2'].cpu:.2f}x CPU"
            )
        if "netmiko" in by:
            print(f"  netmiko / mml-tool: {by['netmiko'].wall / mt.wall:.2f}x wall")
        checks += [
            (
                f"{nodes} nodes: mml-tool wall within {TARGET_WALL}x of the floor",
                mt.wall <= TARGET_WALL * fl.wall,
                f"{mt.wall / fl.wall:.2f}x",
            ),
            (
                f"{nodes} nodes: mml-tool CPU within {TARGET_CPU}x of the floor",
                mt.cpu <= TARGET_CPU * fl.cpu,
                f"{mt.cpu / fl.cpu:.2f}x",
            ),
            (
                f"{nodes} nodes: mml-tool peak RSS under {TARGET_RSS_MB:g} MB",
                mt.rss_mb < TARGET_RSS_MB,
                f"{mt.rss_mb:.1f} MB",
            ),
            (f"{nodes} nodes: every host decided", all(r.ok == r.hosts for r in figures), ""),
        ]
    sizes = sorted(rows)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"\nper-host cost, ms ({small} nodes -> marginal up to {large}):")
        for variant in variants:
            a = next((r for r in rows[small] if r.variant == variant), None)
            b = next((r for r in rows[large] if r.variant == variant), None)
            if a is None or b is None:
                continue
            per = {k: 1000 * getattr(a, k) / small for k in ("wall", "cpu")}
            marginal = {
                k: 1000 * (getattr(b, k) - getattr(a, k)) / (large - small) for k in ("wall", "cpu")
            }
            print(
                f"  {variant:<10} wall {per['wall']:.2f} -> {marginal['wall']:.2f}   "
                f"CPU {per['cpu']:.2f} -> {marginal['cpu']:.2f}"
            )
            if variant == "mml-tool":
                for k in ("wall", "cpu"):
                    checks.append(
                        (
                            f"mml-tool per-host {k} flat from {small} to {large} nodes "
                            f"(marginal within {TARGET_FLAT}x)",
                            marginal[k] <= TARGET_FLAT * per[k],
                            f"{per[k]:.2f} -> {marginal[k]:.2f} ms/host",
                        )
                    )
    print()
    for label, passed, detail in checks:
        print(verdict(label, passed, detail))
    sys.exit(0 if all(passed for _, passed, _ in checks) else 1)


if __name__ == "__main__":
    main()
