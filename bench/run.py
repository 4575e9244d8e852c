"""``mml-tool run`` over a fleet against its parts, and ``mml-tool demo``, as whole processes.

    python bench/run.py [--nodes 50] [--repeat 3] [--demo-nodes 3 50]

``run`` does check, plan, apply, one verification per gateway (every lab node has its own
gateway entry and agent), and a final check. Its baseline is what cannot be avoided: ``check``
+ ``apply`` (of a plan made beforehand, not timed) + ``verify`` of one gateway, each a whole
``mml-tool`` process, on a lab of the same size. Each round starts two fresh labs (the change
alters their state): one for the baseline, one for ``run``.

Targets (exit 1 when one is missed): ``run`` within 1.5x of the baseline (median wall);
``mml-tool demo`` (3 nodes, its default) under 5 s. The demo over more nodes is shown as well.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import compile_tool, lab_process, load_note, run_process, verdict

TARGET_RUN = 1.5
TARGET_DEMO_S = 5.0
CLI = [sys.executable, "-c", "from mml_tool.cli import main; main()"]


def one_round(nodes: int, tmp: Path) -> dict[str, float]:
    os.environ["MML_TOOL_AUDIT"] = str(tmp / "audit.jsonl")
    os.environ["MML_TOOL_LOCKS"] = str(tmp / "locks")
    walls: dict[str, float] = {}

    def timed(name: str, args: list[str], expect: tuple[int, ...]) -> None:
        figures, _ = run_process(name, "process", nodes, [*CLI, *args], cwd=tmp, expect=expect)
        walls[name] = figures.wall
        print(f"  {name}: {figures.wall:.2f} s (CPU {figures.cpu:.2f} s)", file=sys.stderr)

    with lab_process(nodes, gateway=True) as inventory:
        inv = ["-i", str(inventory)]
        timed("check", ["check", *inv], (100,))
        plan = tmp / "plan.json"
        run_process(
            "plan", "process", nodes, [*CLI, "plan", *inv, "--change-id", "CHG-B", "-o", str(plan)],
            cwd=tmp, expect=(0, 100),
        )  # fmt: skip
        timed("apply", ["apply", str(plan), *inv, "--yes"], (0,))
        timed("verify", ["verify", *inv, "--gateway", "gw-uap-1"], (0,))
    with lab_process(nodes, gateway=True) as inventory:
        args = ["run", "-i", str(inventory), "--change-id", "CHG-R", "--yes"]
        timed("run", [*args, "--evidence", str(tmp / "evidence")], (0,))
    return walls


def demo(nodes: int, tmp: Path) -> float:
    figures, _ = run_process(
        f"demo-{nodes}", "process", nodes,
        [*CLI, "demo", "--nodes", str(nodes), "--workdir", str(tmp / f"demo-{nodes}")],
        cwd=tmp, expect=(0,),
    )  # fmt: skip
    print(f"  demo {nodes} nodes: {figures.wall:.2f} s", file=sys.stderr)
    return figures.wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--demo-nodes", type=int, nargs="+", default=[3, 50])
    args = ap.parse_args()
    compile_tool()
    before = load_note()
    rounds: list[dict[str, float]] = []
    demos: dict[int, list[float]] = {n: [] for n in args.demo_nodes}
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(one_round(args.nodes, Path(tmp)))
            for n in args.demo_nodes:
                demos[n].append(demo(n, Path(tmp)))
    after = load_note()
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    base = med["check"] + med["apply"] + med["verify"]
    print(f"\nrun bench: {args.nodes} nodes (a gateway entry and agent each), whole processes, ")
    print(f"median of {args.repeat} rounds; machine: before {before}; after {after}")
    for name in ("check", "apply", "verify", "run"):
        print(f"  {name:<7} {med[name]:6.2f} s")
    print(f"  check + apply + one verify = {base:.2f} s; run / that = {med['run'] / base:.2f}x")
    for n, walls in demos.items():
        print(f"  demo --nodes {n}: {statistics.median(walls):.2f} s (median)")
    checks = [
        (
            f"run over {args.nodes} nodes within {TARGET_RUN}x of check + apply + one verify",
            med["run"] <= TARGET_RUN * base,
            f"{med['run'] / base:.2f}x",
        )
    ]
    if 3 in demos:
        wall = statistics.median(demos[3])
        checks.append((f"demo under {TARGET_DEMO_S:g} s", wall < TARGET_DEMO_S, f"{wall:.2f} s"))
    print()
    for label, passed, detail in checks:
        print(verdict(label, passed, detail))
    sys.exit(0 if all(passed for _, passed, _ in checks) else 1)


if __name__ == "__main__":
    main()
