"""Verify several gateways concurrently, at most ``workers`` at once.

A verification mostly waits (for the gateway's events), so one after another a 50-node `run`
spends most of its time idle. Each verification still runs the whole scenario of
``verify_gateway``: sign in, call, switch, release the call and sign out (always, also when a
sibling fails or the operator presses Ctrl-C: a running verification is never abandoned, only
the ones not started yet are cancelled).

Gateway entries that sign in the same agent on the same gateway are verified one after
another: one agent cannot hold two calls, and a second sign-in would take over the first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

from mml_tool.gateway.verify import VerifyResult, verify_gateway
from mml_tool.inventory.models import GatewayConfig


def verify_gateways(
    gateways: Sequence[GatewayConfig],
    *,
    directions: Sequence[int] = (1, 2),
    workers: int,
    on_done: Callable[[VerifyResult], None] = lambda _: None,
    verify: Callable[..., VerifyResult] = verify_gateway,
) -> list[VerifyResult]:
    """Verify every gateway; results in the order of ``gateways``. ``on_done`` is called in the
    calling thread as each verification ends (progress lines, evidence files)."""
    lanes: dict[tuple[str, str], list[int]] = {}  # (url, agent): indexes, verified in turn
    for i, gateway in enumerate(gateways):
        lanes.setdefault((gateway.url.rstrip("/"), gateway.agent_id), []).append(i)
    results: list[VerifyResult | None] = [None] * len(gateways)

    def lane(indexes: list[int]) -> list[tuple[int, VerifyResult]]:
        return [(i, verify(gateways[i], directions=directions)) for i in indexes]

    if not lanes:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(lanes)))) as pool:
        futures: list[Future[list[tuple[int, VerifyResult]]]] = [
            pool.submit(lane, indexes) for indexes in lanes.values()
        ]
        try:
            for future in as_completed(futures):
                for i, result in future.result():
                    results[i] = result
                    on_done(result)
        except BaseException:  # Ctrl-C or a bad argument: start no more; running ones finish
            for future in futures:
                future.cancel()
            raise
    return [r for r in results if r is not None]
