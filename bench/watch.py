"""A `watch` round on kept-open sessions against a fresh `check` of the same fleet.

    python bench/watch.py [--nodes 50] [--workers 32] [--rounds 5] [--target 0.3]

The lab runs in its own process (``mml-tool lab``). In this process: ``check_fleet`` (connect,
LGI, REG NE, LST, LGO per host) ``--rounds`` times, then a ``Watcher`` over the same hosts: its
first round opens the sessions (not counted), the next ``--rounds`` rounds send only
``LST SFP: ID=P978;`` on the open sessions. Medians of wall and CPU time are compared; the
script exits 1 when a round on open sessions costs more than ``--target`` of a fresh check
(wall or CPU), or when any host was not decided.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import lab_process, load_hosts, load_note, verdict

from mml_tool.compliance import check_fleet
from mml_tool.policy import Finding, load_policy
from mml_tool.watch import Watcher


def timed(run: Callable[[], list[Finding]]) -> tuple[float, float, int]:
    """Wall s, CPU s (this process: the lab is another one) and hosts decided."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    findings = run()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, len({f.host for f in findings if f.status != "error"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.3, help="round / fresh check, at most")
    args = parser.parse_args()
    print(f"before: {load_note()}", file=sys.stderr)
    policy = load_policy(None)
    with lab_process(args.nodes) as inventory:
        hosts = load_hosts(inventory, args.nodes)
        check_fleet(hosts[:1], policy)  # imports, templates and host keys warm
        fresh = [
            timed(lambda: check_fleet(hosts, policy, workers=args.workers))
            for _ in range(args.rounds)
        ]
        with Watcher(hosts, policy, workers=args.workers) as watcher:
            opening = timed(lambda: watcher.round().findings)
            kept = [timed(lambda: watcher.round().findings) for _ in range(args.rounds)]
            reconnects = watcher.sessions.reconnects
    print(f"after:  {load_note()}", file=sys.stderr)

    def median(rows: list[tuple[float, float, int]], i: int) -> float:
        return statistics.median(r[i] for r in rows)

    n = args.nodes
    print(f"{args.nodes} hosts, {args.workers} workers, median of {args.rounds} runs\n")
    print("| what | wall s | ms/host | CPU s | hosts decided |")
    print("|---|---:|---:|---:|---:|")
    for label, rows in (
        ("fresh check (connect, LGI, REG NE, LST, LGO)", fresh),
        ("watch: first round (opens the sessions)", [opening]),
        ("watch: round on open sessions (LST only)", kept),
    ):
        wall, cpu = median(rows, 0), median(rows, 1)
        decided = min(r[2] for r in rows)
        print(f"| {label} | {wall:.3f} | {1000 * wall / n:.2f} | {cpu:.3f} | {decided}/{n} |")
    wall_ratio = median(kept, 0) / median(fresh, 0)
    cpu_ratio = median(kept, 1) / median(fresh, 1)
    decided_all = all(r[2] == n for r in [*fresh, opening, *kept])
    lines = [
        verdict(
            "round on open sessions / fresh check",
            wall_ratio <= args.target and cpu_ratio <= args.target,
            f"wall {wall_ratio:.2f}x, CPU {cpu_ratio:.2f}x (target <= {args.target}x)",
        ),
        verdict(
            "every host decided, no reconnect",
            decided_all and reconnects == 0,
            f"reconnects {reconnects}",
        ),
    ]
    print("\n" + "\n".join(lines))
    return 0 if all(line.startswith("PASS") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
