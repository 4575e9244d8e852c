"""Run one job over many hosts concurrently, with progress.

Each host runs in its own worker thread and is bounded by its own connect and command
timeouts, so one slow or broken host never holds the others beyond them. A job's failures
are caught per host and returned, never raised: a fleet run always yields one result per host.
Expected ones (``MmlToolError``) as they are; any other exception (a bug, an answer nobody
foresaw) as an ``UnexpectedError`` naming the host, the exception and where it was raised, with
the host's secrets scrubbed from it. Only KeyboardInterrupt and SystemExit stop the run.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from mml_tool.errors import MmlToolError, UnexpectedError
from mml_tool.inventory import HostConfig
from mml_tool.secret import scrub

T = TypeVar("T")
log = logging.getLogger("mml_tool.fleet")

# A session costs ~2.5 ms of CPU and waits on the network the rest of its time, in libssh2
# without the GIL: 32 at once hide network latency even on 2 cores (there, 32 workers took the
# CPU of 16 and less wall time at 1000 hosts: bench/README.md), and keep a gateway's
# verifications (seconds of waiting for events each) from running in many waves.
DEFAULT_WORKERS = 32
_POLL = 0.2  # seconds: the longest the main thread waits before it can take a Ctrl-C


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the jobs are submitted: an interrupt inside ``submit`` (the
    host already started, its future not yet kept) would leave that host unseen; held, it
    arrives just after, with every future known."""
    holdable = hasattr(signal, "pthread_sigmask")
    if holdable and threading.current_thread() is threading.main_thread():
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
    else:
        yield


def _leave_signals_to_main() -> None:
    """Block SIGINT/SIGTERM in a worker (and any thread it starts), so the
    kernel delivers them to the main thread, the one that runs Python's handlers."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


class Progress(Protocol):
    """What a fleet run reports as it goes (a rich progress bar, a log line, nothing)."""

    def started(self, total: int) -> None: ...

    def host_done(self, host: str, ok: bool) -> None: ...

    def finished(self) -> None: ...

    # Optional: ``stopping(running: int)`` is called when the run is interrupted, before it
    # waits for the ``running`` hosts to close (not part of the Protocol, so older sinks work).


class NoProgress:
    """Progress sink for scripts and non-terminals: reports nothing."""

    def started(self, total: int) -> None:
        pass

    def host_done(self, host: str, ok: bool) -> None:
        pass

    def finished(self) -> None:
        pass


@dataclass(frozen=True)
class HostResult(Generic[T]):
    """What one host's job produced: a value, or the error that stopped it."""

    host: str
    value: T | None
    error: MmlToolError | None
    elapsed: float

    @property
    def failed(self) -> bool:
        return self.error is not None


def unexpected(host: HostConfig, exc: Exception) -> UnexpectedError:
    """``exc`` as ``host``'s typed error: type, message and the line that raised it (enough for
    a bug report, no traceback on the terminal), with the host's secrets scrubbed."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    kind = type(exc).__name__
    text = scrub(str(exc), host.secrets())
    log.debug("%s: unexpected %s%s: %s", host.name, kind, where, text)
    error = UnexpectedError(
        f"{host.name}: unexpected {kind}: {text} (raised{where}): mml-tool did not foresee this; "
        "the other hosts went on. Please report it with the host's reply (mml-tool exec)",
        host=host.name,
        kind=kind,
    )
    error.__cause__ = None  # the original may quote a secret; its type and text are above
    return error


def _next_done(finished: queue.SimpleQueue[Future[T]]) -> Future[T]:
    """The next finished future, waiting in short steps (the main thread stays able to take
    a Ctrl-C: see run_fleet)."""
    while True:
        try:
            return finished.get(timeout=_POLL)
        except queue.Empty:
            continue


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """Threads for ``run_fleet``: they leave SIGINT/SIGTERM to the main thread."""
    return ThreadPoolExecutor(max_workers=max(1, workers), initializer=_leave_signals_to_main)


def run_fleet(
    hosts: Sequence[HostConfig],
    job: Callable[[HostConfig], T],
    *,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> list[HostResult[T]]:
    """Run ``job`` for every host, at most ``workers`` at once; results in inventory order.

    When the caller is interrupted (Ctrl-C), hosts not started are cancelled and ``stop`` is
    set so running jobs can end early; the interrupt propagates once they have returned.
    ``pool`` (from ``worker_pool``) is used and kept open instead of a pool of this run's own:
    a caller running round after round (watch) starts its threads once.
    """
    sink = progress or NoProgress()
    sink.started(len(hosts))
    results: dict[str, HostResult[T]] = {}

    def one(host: HostConfig) -> HostResult[T]:
        start = time.monotonic()
        try:
            value = job(host)
        except MmlToolError as exc:
            return HostResult(host.name, None, exc, time.monotonic() - start)
        except Exception as exc:  # one host's surprise must not sink the others
            return HostResult(host.name, None, unexpected(host, exc), time.monotonic() - start)
        return HostResult(host.name, value, None, time.monotonic() - start)

    own = pool is None
    if pool is None:
        pool = worker_pool(min(workers, len(hosts) or 1))
    futures: list[Future[HostResult[T]]] = []
    interrupted = False
    try:
        # Submitting is inside: a Ctrl-C may come once the first host has started. The waits
        # are short and repeated: a main thread blocked for good would not run its signal
        # handlers when the kernel hands the signal to another thread.
        # Each future reports itself done on a queue: waiting with wait(FIRST_COMPLETED) hangs
        # a waiter on every pending future for every result, quadratic in the fleet (~2 ms of
        # CPU per host at 1000 hosts).
        finished: queue.SimpleQueue[Future[HostResult[T]]] = queue.SimpleQueue()
        with _signals_held():
            for host in hosts:
                futures.append(pool.submit(one, host))
                futures[-1].add_done_callback(finished.put)
        for _ in futures:
            result = _next_done(finished).result()
            results[result.host] = result
            sink.host_done(result.host, not result.failed)
    except BaseException:  # Ctrl-C: start no more hosts; tell running jobs to stop
        interrupted = True
        for future in futures:
            future.cancel()
        if stop is not None:
            stop.set()
        # Say so now: the running hosts (each bounded by its own timeouts) may take a while
        # to close, e.g. one that hangs in its SSH handshake.
        stopping = getattr(sink, "stopping", None)
        if callable(stopping):
            stopping(sum(not f.done() for f in futures))
        while not all(f.done() for f in futures):
            wait(futures, timeout=_POLL)
        raise
    finally:
        if own:
            pool.shutdown(wait=not interrupted)
        sink.finished()
    return [results[host.name] for host in hosts]
