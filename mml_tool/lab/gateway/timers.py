"""The gateway simulator's timer thread: actions due after a delay, and a periodic sweep."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class _Timers:
    """Runs each scheduled action once it is due, in one thread, in the order they fall due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()  # ties in time keep the order they were scheduled in

    def schedule(self, delay: float, action: Callable[[], None]) -> None:
        with self._cond:
            due = time.monotonic() + max(0.0, delay)
            heapq.heappush(self._due, (due, next(self._seq), action))
            self._cond.notify_all()

    def wake(self) -> None:
        """Make ``run`` look at ``stopping`` now rather than at its next due time."""
        with self._cond:
            self._cond.notify_all()

    def run(
        self,
        stopping: threading.Event,
        sweep_interval: Callable[[], float],
        sweep: Callable[[], None],
    ) -> None:
        """Until ``stopping``: run due actions, then ``sweep()``, at least every
        ``sweep_interval()`` seconds."""
        while not stopping.is_set():
            due: list[Callable[[], None]] = []
            with self._cond:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    due.append(heapq.heappop(self._due)[2])
                if not due:
                    wait = sweep_interval()
                    if self._due:
                        wait = min(wait, self._due[0][0] - now)
                    self._cond.wait(max(0.0, wait))
            for action in due:
                try:
                    action()
                except Exception:  # a lab bug must not kill the timer thread
                    logger.exception("gateway simulator timer action failed")
            sweep()
