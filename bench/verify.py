"""Benchmark: how close a video-direction verification gets to the simulator's own delays.

The lab gateway waits ``EventDelays`` between a request and the event it causes. A
verification of directions 1 and 2 must wait at least: call set-up (alerting + talking), three
media switches (video 1, audio, video 2) and the release. That sum is the floor; everything
above it is the client's cost (HTTPS requests, event polling, sign-in and sign-out).

    python bench/verify.py [--runs 5] [--delay 0.1 0.05 0.2]

Target: the median run within 1.1x the floor (exit 1 when missed). The client's 0.2 s pacing
gap between polls only follows an *empty* poll; an event queued while a poll is open is answered
at once (the simulator's long poll waits on a threading.Condition), so it does not show up here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mml_tool.gateway.client import GatewayClient
from mml_tool.gateway.verify import verify_video_directions
from mml_tool.lab.gateway import AgentSpec, EventDelays, GatewaySimulator
from mml_tool.secret import Secret

PASSWORD = "bench-agent-pw"


def bench(delay: float, runs: int) -> tuple[float, float]:
    """(floor, median seconds) of ``runs`` verifications with every event delay = ``delay``."""
    delays = EventDelays(alerting=delay, talking=delay, mediaswitch=delay, release=delay)
    with tempfile.TemporaryDirectory() as tmp:
        sim = GatewaySimulator(
            Path(tmp),
            one_way_video_ready=lambda host: True,
            agents={"101": AgentSpec(password=PASSWORD, uap_host="uap-1")},
            event_delays=delays,
        )
        with sim:
            times: list[float] = []
            for _ in range(runs):
                started = time.monotonic()
                result = verify_video_directions(
                    lambda: GatewayClient(
                        sim.url,
                        "101",
                        Secret(PASSWORD),
                        phone_number="40038",
                        ca_bundle=sim.ca_path,
                    ),
                    called="40040",
                    skill_id=25,
                    directions=(1, 2),
                    step_timeout=10.0,
                )
                times.append(time.monotonic() - started)
                if not result.passed:
                    raise SystemExit(f"verification did not pass: {result.error}")
    return delays.verification_floor(switches=3), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--target", type=float, default=1.1)
    args = parser.parse_args(argv)
    print(f"{'delay s':>8} {'floor s':>8} {'median s':>9} {'ratio':>6}")
    worst = 0.0
    for delay in args.delay:
        floor, median = bench(delay, args.runs)
        ratio = median / floor
        worst = max(worst, ratio)
        print(f"{delay:>8.3f} {floor:>8.3f} {median:>9.3f} {ratio:>6.3f}")
    passed = worst <= args.target
    verdict = "PASS" if passed else "MISS"
    print(f"{verdict}  worst ratio {worst:.3f} against the {args.target}x target")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
