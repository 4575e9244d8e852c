"""`mml-tool watch`: check the fleet every interval on MML sessions kept open between rounds.

A round on open sessions sends only the read commands: no TCP/SSH handshake, no LGI, no LGO.
Each host has its own worker (``run_fleet``), so a host whose session must be re-opened, or
that does not answer, holds up no other host beyond its own timeouts. A kept session the
element dropped, or ended at its idle timeout, shows as a broken session at the first command
of the next round: the host is then checked again at once on a new session, so a drop is a
reconnect, not an `error`. At most ``max_sessions`` sessions are kept open (to stay under the
element's or an NMS's session limit); hosts beyond that are checked on a session of their
own each round, closed after it.

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
        from concurrent.futures import ThreadPoolExecutor

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

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sessions.close_all()

    def _check(self, host: HostConfig, today: date) -> tuple[list[Finding], int]:
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
            return once(), 1
        return findings, 0

    def round(self) -> Round:
        """One check of every host; results recorded by ``on_round``."""
        from mml_tool.fleet import run_fleet
        from mml_tool.policy import evaluate
        from mml_tool.report import exit_code_for

        self.rounds += 1
        today = date.today()
        started = datetime.now(timezone.utc)
        log.info("round %d: checking %d host(s)", self.rounds, len(self.hosts))
        results = run_fleet(self.hosts, lambda h: self._check(h, today), workers=self.workers)
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
