"""`mml-tool watch`: check the fleet every interval on MML sessions kept open between rounds.

A round on open sessions sends only the read commands: no TCP/SSH handshake, no LGI, no LGO.
Each host has its own worker (``run_fleet``), so a host whose session must be re-opened, or
that does not answer, holds up no other host beyond its own timeouts. A kept session the
element dropped, or ended at its idle timeout, shows as a broken session at the first command
of the next round: the host is then checked again at once on a new session, so a drop is a
reconnect, not an `error`. At most ``max_sessions`` sessions are kept open (to stay under the
element's or an NMS's session limit); hosts beyond that are checked on a session of their
own each round, closed after it.

A host that cannot be reached (no session opens, or the new one is lost too: an element that
reboots) is `error` in every round until it is read again, never its last good state. It is
tried again after 1 s, then 2, 4 ... capped at 60 s (``backoff_delay``), at the first round
due; the rounds between report it `error` without connecting. The log says when it cannot be
read and when it is back, so a watch that runs for weeks rides out any number of outages.

The command (``mml_tool/cli/watch.py``) records each round in the history (command ``watch``)
and the metrics file, and prints only changes of status. SIGTERM ends the watch after the round
in progress (its hosts are bounded by their timeouts): it is recorded, the sessions are logged
out, exit 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line imports this module: the domain loads when it runs
    from mml_tool.inventory import HostConfig
    from mml_tool.mml.session import MmlSession
    from mml_tool.policy import Finding, Policy

log = logging.getLogger("mml_tool.watch")
DEFAULT_MAX_SESSIONS = 100
DEFAULT_WORKERS = 32
BACKOFF_FIRST = 1.0  # seconds: a host that cannot be read is tried again after 1 s,
BACKOFF_MAX = 60.0  # then 2, 4, 8 ... and at most every 60 s while it stays down


def backoff_delay(attempts: int, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt in a row: doubling, capped."""
    return float(min(cap, first * 2 ** min(attempts - 1, 62)))


@dataclass
class _Down:
    """A host that cannot be read: since when, why, and when to try it again."""

    since: float  # the watch's clock
    error: str
    attempts: int = 1  # failed attempts in a row
    next_try: float = 0.0


def _new_session(host: HostConfig) -> MmlSession:
    from mml_tool.mml.session import MmlSession

    return MmlSession(host)


class KeptSessions:
    """One open MML session per host, kept between rounds; thread-safe."""

    def __init__(
        self,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        factory: Callable[[HostConfig], MmlSession] = _new_session,
    ) -> None:
        self.max_sessions = max_sessions
        self.factory = factory
        self._lock = threading.Lock()
        self._open: dict[str, MmlSession] = {}
        self.opened = 0  # sessions opened, over the whole watch
        self.reconnects = 0  # of those, to replace a kept session that had been dropped

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._open)

    def lease(self, host: HostConfig) -> Lease:
        return Lease(self, host)

    def close_all(self) -> None:
        """Log out of every kept session, in parallel: each is bounded by its logout timeout,
        and a stop (SIGTERM) must not wait for them one after the other."""
        with self._lock:
            sessions, self._open = list(self._open.values()), {}
        if sessions:
            with ThreadPoolExecutor(max_workers=min(32, len(sessions))) as pool:
                list(pool.map(lambda session: session.close(), sessions))


class Lease:
    """A host's session for one check: the kept one when it is still usable, else a new one
    (kept when there is room). Used as ``check_host``'s session factory result."""

    def __init__(self, pool: KeptSessions, host: HostConfig) -> None:
        self.pool = pool
        self.host = host
        self.reused = False
        self.broken = False
        self.session: MmlSession | None = None
        self.keep = False

    def __enter__(self) -> MmlSession:
        pool, name = self.pool, self.host.name
        with pool._lock:
            kept = pool._open.get(name)
            if kept is not None and kept.healthy:
                self.reused, self.keep, self.session = True, True, kept
                return kept
            if kept is not None:  # broken in an earlier round: replace it
                del pool._open[name]
            self.keep = len(pool._open) < pool.max_sessions
        if kept is not None:
            kept.close()
        session = pool.factory(self.host)
        session.open()  # outside the lock: a slow host must not hold the others up
        with pool._lock:
            pool.opened += 1
            if self.keep:
                pool._open[name] = session
        self.session = session
        return session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        if session is None:
            return
        self.broken = not session.healthy
        if self.keep and not self.broken:
            return
        with self.pool._lock:
            if self.pool._open.get(self.host.name) is session:
                del self.pool._open[self.host.name]
        session.close()


def _unreachable(leases: Sequence[Lease], findings: Sequence[Finding]) -> bool:
    """The host could not be read: some control is `error` and the last session could not be
    opened or was lost (a session that ends after everything was read is no outage)."""
    lost = bool(leases) and (leases[-1].session is None or leases[-1].broken)
    return lost and any(f.status == "error" for f in findings)


@dataclass
class Round:
    number: int
    started: datetime
    finished: datetime
    findings: list[Finding]
    exit_code: int
    reconnects: int = 0
    changes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()


class Watcher:
    """Rounds of checks over ``hosts`` on kept-open sessions."""

    def __init__(
        self,
        hosts: Sequence[HostConfig],
        policy: Policy,
        *,
        template_dirs: Sequence[Path] = (),
        workers: int = DEFAULT_WORKERS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        session_factory: Callable[[HostConfig], MmlSession] = _new_session,
        on_round: Callable[[Round], None] | None = None,
        say: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = list(hosts)
        self.policy = policy
        self.template_dirs = list(template_dirs)
        self.workers = workers
        self.sessions = KeptSessions(max_sessions, session_factory)
        self.on_round = on_round
        self.say = say
        self.rounds = 0
        self._last: dict[tuple[str, str], str] = {}
        self.clock = clock
        self._down: dict[str, _Down] = {}  # hosts that cannot be read, by name
        self._down_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # started by the first round, kept

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # The workers first (each bounded by its host's timeouts): a session still being read
        # by one (after a Ctrl-C) must not be logged out from this thread at the same time.
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.sessions.close_all()

    def _unread(self, host: HostConfig, today: date, error: str) -> list[Finding]:
        """Every control of ``host`` as `error`: never its last good state."""
        from mml_tool.policy import evaluate

        return [
            evaluate(host.name, c, None, error=error,
                     waiver=self.policy.waiver_for(host.name, c.id), today=today)
            for c in self.policy.controls_for(host)
        ]  # fmt: skip

    def _check(self, host: HostConfig, today: date) -> tuple[list[Finding], int]:
        """One host's check, unless it is down and its next attempt is not due: then `error`
        without connecting (an element that reboots is not hammered with logins)."""
        with self._down_lock:
            down = self._down.get(host.name)
        if down is not None and self.clock() < down.next_try:
            wait = down.next_try - self.clock()
            return self._unread(host, today, f"{down.error} (next reconnect attempt in "
                                             f"{wait:.0f} s)"), 0  # fmt: skip
        findings, reconnects, failed = self._attempt(host, today)
        self._after(host, findings, failed, down)
        return findings, reconnects

    def _after(
        self, host: HostConfig, findings: Sequence[Finding], failed: bool, down: _Down | None
    ) -> None:
        """Track whether ``host`` could be read: back off while it cannot, say when it is
        back."""
        now = self.clock()
        if not failed:
            if down is not None:
                with self._down_lock:
                    self._down.pop(host.name, None)
                log.warning(
                    "%s: back, after %.0f s that it could not be read (%d failed reconnect "
                    "attempt(s))",
                    host.name, now - down.since, down.attempts,
                )  # fmt: skip
            return
        error = next((f.error for f in findings if f.error), None) or "cannot be read"
        if down is None:
            down = _Down(since=now, error=error)
            log.warning(
                "%s: cannot be read (%s): reconnecting after %.0f s, doubling up to every %.0f s",
                host.name, error, backoff_delay(1), BACKOFF_MAX,
            )  # fmt: skip
        else:
            down.attempts += 1
            down.error = error
            log.info("%s: still cannot be read after %d attempt(s)", host.name, down.attempts)
        down.next_try = now + backoff_delay(down.attempts)
        with self._down_lock:
            self._down[host.name] = down

    def _attempt(self, host: HostConfig, today: date) -> tuple[list[Finding], int, bool]:
        """Findings, reconnects, and whether the host could not be reached (no session)."""
        from mml_tool.compliance import check_host

        leases: list[Lease] = []

        def lease(h: HostConfig) -> Any:
            leases.append(self.sessions.lease(h))
            return leases[-1]

        def once() -> list[Finding]:
            return check_host(
                host, self.policy, template_dirs=self.template_dirs, today=today,
                session_factory=lease,
            )  # fmt: skip

        findings = once()
        lost = leases and leases[-1].reused and leases[-1].broken
        if lost and any(f.status == "error" for f in findings):
            # The element dropped the kept session (or its idle timeout ended it): what this
            # session read is not trusted; read again on a new one, now.
            log.info("%s: kept session lost, reconnecting", host.name)
            with self.sessions._lock:
                self.sessions.reconnects += 1
            findings = once()
            return findings, 1, _unreachable(leases, findings)
        return findings, 0, _unreachable(leases, findings)

    def round(self) -> Round:
        """One check of every host; results recorded by ``on_round``."""
        from mml_tool.fleet import run_fleet, worker_pool
        from mml_tool.policy import evaluate
        from mml_tool.report import exit_code_for

        self.rounds += 1
        today = date.today()
        started = datetime.now(timezone.utc)
        log.info("round %d: checking %d host(s)", self.rounds, len(self.hosts))
        if self._pool is None:  # a round's threads serve the next rounds too
            self._pool = worker_pool(min(self.workers, len(self.hosts) or 1))
        results = run_fleet(
            self.hosts, lambda h: self._check(h, today), workers=self.workers, pool=self._pool
        )
        findings: list[Finding] = []
        reconnects = 0
        for host, result in zip(self.hosts, results, strict=True):
            if result.error is None and result.value is not None:
                findings.extend(result.value[0])
                reconnects += result.value[1]
            else:  # a job that died: every control of the host is an error (as check_fleet)
                findings.extend(
                    evaluate(
                        host.name, c, None, error=str(result.error),
                        waiver=self.policy.waiver_for(host.name, c.id), today=today,
                    )
                    for c in self.policy.controls_for(host)
                )  # fmt: skip
        done = Round(
            self.rounds,
            started,
            datetime.now(timezone.utc),
            findings,
            int(exit_code_for(findings)),
            reconnects,
        )
        done.changes = self._changes(findings, done.finished)
        log.info(
            "round %d: done in %.2f s, exit %d, %d reconnect(s), %d session(s) open",
            done.number, done.seconds, done.exit_code, reconnects, self.sessions.open_count,
        )  # fmt: skip
        for line in done.changes:
            self.say(line)
        if self.on_round is not None:
            self.on_round(done)
        return done

    def _changes(self, findings: Sequence[Finding], at: datetime) -> list[str]:
        """Lines for the statuses that changed since the previous round (all, the first time)."""
        lines = []
        stamp = at.isoformat(timespec="seconds").replace("+00:00", "Z")
        for f in sorted(findings, key=lambda f: (f.host, f.control_id)):
            key = (f.host, f.control_id)
            was = self._last.get(key)
            if was != f.status:
                why = f": {f.error}" if f.status == "error" and f.error else ""
                lines.append(f"{stamp} {f.host} {f.control_id}: {was or 'new'} -> {f.status}{why}")
            self._last[key] = f.status
        return lines

    def run(self, *, interval: float, rounds: int | None, stop: threading.Event) -> Round | None:
        """Rounds every ``interval`` seconds (from the start of one to the next) until
        ``rounds`` are done or ``stop`` is set; the last round."""
        last = None
        while not stop.is_set():
            begun = time.monotonic()
            last = self.round()
            if rounds is not None and self.rounds >= rounds:
                break
            stop.wait(max(0.0, interval - (time.monotonic() - begun)))
        return last
