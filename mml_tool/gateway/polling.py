"""Long-polled agent events: the poller thread and ``wait_for``, over ``_AgentConnection``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection

import httpx

from mml_tool.errors import GatewayError, GatewayEventError
from mml_tool.gateway.agent import _AgentConnection
from mml_tool.gateway.events import GatewayEvent
from mml_tool.gateway.protocol import _FATAL_POLL_CODES

logger = logging.getLogger("mml_tool.gateway.client")


class _EventPolling(_AgentConnection):
    """The event poller of one agent session (started by sign-in, stopped by sign-out)."""

    def _start_poller(self) -> None:
        self._join_poller()
        self._stop = threading.Event()
        with self._events.cond:
            self._events.poll_error = None
            self._events.last_poll_problem = None
        self._poller = threading.Thread(
            target=self._poll_loop,
            args=(self._stop,),
            name=f"ccgw-events-{self.agent_id}",
            daemon=True,
        )
        self._poller.start()

    def _join_poller(self) -> None:
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=self.timeout)
            self._poller = None

    def _poll_loop(self, stop: threading.Event) -> None:
        path = self._path("agentevent")
        timeout = httpx.Timeout(self.timeout, read=self.poll_timeout)
        failures = 0
        while not stop.is_set():
            try:
                reply = self._request(
                    "GET",
                    path,
                    timeout=timeout,
                    budget=self.poll_timeout,
                    action="poll agent events",
                    track=False,
                )
            except GatewayEventError as exc:  # the poll itself worked: report it, poll on
                with self._events.cond:
                    self._events.queue.append(exc)
                    self._events.cond.notify_all()
                logger.warning("%s: %s", self.name, exc)
                stop.wait(self.poll_gap)  # a gateway that answers only such events is not hammered
                continue
            except GatewayError as exc:
                if stop.is_set():
                    return
                failures += 1
                fatal = exc.retcode in _FATAL_POLL_CODES or failures >= self.max_poll_failures
                with self._events.cond:
                    if fatal:
                        self._events.poll_error = str(exc)
                    else:
                        self._events.last_poll_problem = str(exc)
                    self._events.cond.notify_all()
                if fatal:
                    logger.warning("%s: event polling stopped: %s", self.name, exc)
                    return
                # Back off on transient failures (5xx, dropped connection) without hammering.
                stop.wait(min(self.poll_gap * (2**failures), 5.0))
                continue
            failures = 0
            if reply.event is not None:
                with self._events.cond:
                    self._events.queue.append(reply.event)
                    self._events.last_poll_problem = None
                    self._events.cond.notify_all()
                logger.debug("%s: event %s", self.name, reply.event.event_type)
                # No pause after an event: more may be queued, and the next poll is held
                # open by the gateway anyway, so it cannot hammer it.
                continue
            # Empty answer (the gateway held the poll ~10 s): pause as the vendor asks (200-500
            # ms between polls). Event.wait, not sleep: sign_out()/close() interrupt it at once.
            stop.wait(self.poll_gap)

    def wait_for(
        self,
        event_type: str,
        predicate: Callable[[GatewayEvent], bool] | None = None,
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        fail_on: Collection[str] = (),
        seen: list[GatewayEvent] | None = None,
    ) -> GatewayEvent:
        """Consume events in order until one of ``event_type`` matches ``predicate``.

        ``deadline`` is a ``time.monotonic()`` value (or give ``timeout`` seconds; default the
        client's timeout). Events consumed on the way are discarded, and appended to ``seen``
        when given. An event whose type is in ``fail_on`` raises at once; so does polling that
        has stopped for good. Raises GatewayError at the deadline, naming what was seen.
        """
        if deadline is None:
            deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        skipped: list[str] = []
        box = self._events
        with box.cond:
            while True:
                while box.queue:
                    event = box.queue.popleft()
                    if isinstance(event, GatewayEventError):
                        raise GatewayEventError(
                            f"while waiting for {event_type} (agent {self.agent_id}, events seen: "
                            f"{', '.join(skipped) or 'none'}): {event}"
                        )
                    if seen is not None:
                        seen.append(event)
                    if event.event_type == event_type and (predicate is None or predicate(event)):
                        return event
                    skipped.append(event.event_type)
                    if event.event_type in fail_on:
                        raise self._error(
                            f"{event.event_type} arrived while waiting for {event_type} "
                            f"(agent {self.agent_id} on {self.name}); events seen: "
                            f"{', '.join(skipped)}"
                        )
                if box.poll_error is not None:
                    raise self._error(
                        f"no {event_type} for agent {self.agent_id}: event polling has stopped "
                        f"({box.poll_error})"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._late(event_type, skipped)
                box.cond.wait(remaining)

    def _late(self, event_type: str, skipped: list[str]) -> GatewayError:
        """No ``event_type`` before the deadline: what was seen, and why polling may be to
        blame. Called with the event box's condition held."""
        box = self._events
        problem = (
            f"; event polling is failing: {box.last_poll_problem}" if box.last_poll_problem else ""
        )
        if not self.poll_events or (self._poller is None and self._signed_in):
            problem += "; event polling is off"
        return self._error(
            f"no {event_type} event for agent {self.agent_id} from {self.name} "
            f"before the deadline; events seen meanwhile: "
            f"{', '.join(skipped) if skipped else 'none'}{problem}"
        )

    def drain_events(self) -> list[GatewayEvent]:
        """Take every event received so far and not yet consumed."""
        with self._events.cond:
            events = [e for e in self._events.queue if isinstance(e, GatewayEvent)]
            self._events.queue.clear()
        return events

    # ------------------------------------------------------------------ calls
