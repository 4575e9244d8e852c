"""The steps of the video-direction scenario (see ``gateway/verify.py``), each recorded as a
``VerifyStep``; cleanup (release, sign out) always runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from mml_tool.errors import GatewayError, GatewayEventError
from mml_tool.gateway.client import GatewayClient
from mml_tool.gateway.events import GatewayEvent
from mml_tool.gateway.protocol import describe_retcode
from mml_tool.gateway.verify_result import DirectionResult, VerifyResult, VerifyStep

# One logger name for verification, as before the scenario had its own module.
logger = logging.getLogger("mml_tool.gateway.verify")

MEDIA_SWITCH_EVENT = "AgentEvent_MediaSwith"  # sic: the vendor spells it without the "c"
_CALL_FAILED = frozenset(
    {"AgentEvent_Call_Out_Fail", "AgentEvent_Connect_Fail", "AgentEvent_Call_Release"}
)


class _CannotRun(Exception):
    """The scenario cannot reach a verdict; the message says why."""


class _CallLost(Exception):
    """The call ended during a switch; the remaining directions cannot run."""


class _Scenario:
    def __init__(
        self,
        client: GatewayClient,
        result: VerifyResult,
        *,
        called: str,
        skill_id: int,
        step_timeout: float,
        ring_timeout: float,
        on_step: Callable[[VerifyStep], None] | None,
    ) -> None:
        self.client = client
        self.result = result
        self.called = called
        self.skill_id = skill_id
        self.step_timeout = step_timeout
        self.ring_timeout = ring_timeout
        self.on_step = on_step
        self.signed_in = False
        self.call_maybe_up = False
        self.callid: str | None = None

    # --------------------------------------------------------------- plumbing

    @contextmanager
    def step(self, name: str) -> Iterator[VerifyStep]:
        """Record a step: timing, request, retcode; a GatewayError marks it failed."""
        step = VerifyStep(name=name, started=time.time())
        t0 = time.monotonic()
        before = self.client.last_request
        try:
            yield step
        except GatewayError as exc:
            step.ok = False
            step.error = str(exc)
            step.retcode = exc.retcode or step.retcode
            step.message = exc.gateway_message or step.message
            raise
        except BaseException as exc:
            step.ok = False
            step.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self.client.last_request != before and not step.request:
                step.request = self.client.last_request
            step.elapsed = time.monotonic() - t0
            self.result.steps.append(step)
            logger.info(
                "verify %s: %s %s%s",
                self.result.gateway,
                name,
                "ok" if step.ok else "FAILED",
                f" ({step.error})" if step.error else "",
            )
            if self.on_step is not None:
                self.on_step(step)

    def wait(
        self,
        step: VerifyStep,
        event_type: str,
        *,
        timeout: float | None = None,
        predicate: Callable[[GatewayEvent], bool] | None = None,
        fail_on: frozenset[str] = frozenset(),
    ) -> GatewayEvent:
        seen: list[GatewayEvent] = []
        deadline = time.monotonic() + (timeout if timeout is not None else self.step_timeout)
        try:
            return self.client.wait_for(
                event_type, predicate, deadline=deadline, fail_on=fail_on, seen=seen
            )
        finally:
            step.events.extend(event.event_type for event in seen)

    def same_call(self, event: GatewayEvent) -> bool:
        callid = event.call_id
        return not callid or self.callid is None or callid == self.callid

    # --------------------------------------------------------------- scenario

    def run(self, directions: Sequence[int], *, wait_incoming: bool, force_sign_in: bool) -> None:
        interrupt: KeyboardInterrupt | None = None
        try:
            self.sign_in(force_sign_in)
            if wait_incoming:
                self.answer_incoming()
            else:
                self.call_out()
            self.switch_all(directions)
        except _CannotRun as exc:
            self.result.error = str(exc)
        except KeyboardInterrupt as exc:
            interrupt = exc
            self.result.error = "interrupted by the operator"
        finally:
            # Runs for unexpected exceptions too (they propagate after it).
            interrupt = self.cleanup() or interrupt
            done = self.result.directions
            self.result.passed = (
                self.result.error is None and bool(done) and all(d.ok for d in done)
            )
        if interrupt is not None:
            raise interrupt

    def sign_in(self, force: bool) -> None:
        try:
            with self.step("sign-in") as step:
                self.client.sign_in(force=force)
                step.retcode, step.ok = "0", True
        except GatewayError as exc:
            raise _CannotRun(f"could not sign in the video agent: {exc}") from None
        self.signed_in = True

    def call_out(self) -> None:
        try:
            with self.step("callout") as step:
                self.call_maybe_up = True
                try:
                    self.client.callout(self.called, self.skill_id)
                except GatewayError as exc:
                    if exc.retcode:  # refused: no call was placed
                        self.call_maybe_up = False
                    raise
                step.retcode = "0"
                talking = self.wait(step, "AgentEvent_Talking", fail_on=_CALL_FAILED)
                self.callid = talking.call_id
                step.ok = True
        except GatewayError as exc:
            raise _CannotRun(f"no call to {self.called} was established: {exc}") from None

    def answer_incoming(self) -> None:
        try:
            with self.step("wait for an incoming call") as step:
                ringing = self.wait(step, "AgentEvent_Ringing", timeout=self.ring_timeout)
                self.callid = ringing.call_id
                step.ok = True
            with self.step("answer") as step:
                self.call_maybe_up = True
                self.client.answer()
                step.retcode = "0"
                self.wait(
                    step, "AgentEvent_Talking", predicate=self.same_call, fail_on=_CALL_FAILED
                )
                step.ok = True
        except GatewayError as exc:
            raise _CannotRun(f"no incoming call was answered: {exc}") from None

    def switch_all(self, directions: Sequence[int]) -> None:
        video = False
        for index, direction in enumerate(directions):
            try:
                if video:
                    self.back_to_audio(after=directions[index - 1])
                video = self.switch_video(direction)
            except (_CannotRun, _CallLost) as exc:
                for rest in directions[len(self.result.directions) :]:
                    self.result.directions.append(DirectionResult(rest, False, f"not run: {exc}"))
                if isinstance(exc, _CannotRun):
                    raise
                return

    def switch_video(self, direction: int) -> bool:
        """Switch to video in ``direction``; record the verdict. True when the call is video."""
        name = f"mediaswitch video direction {direction}"
        verdict: DirectionResult
        try:
            with self.step(name) as step:
                try:
                    self.client.media_switch(3, direction)
                except GatewayError as exc:
                    if exc.retcode.startswith("200-"):
                        verdict = DirectionResult(
                            direction,
                            False,
                            f"refused: retcode {describe_retcode(exc.retcode)}"
                            + (f" ({exc.gateway_message})" if exc.gateway_message else ""),
                        )
                        self.result.directions.append(verdict)
                        raise
                    raise _CannotRun(f"media switch to direction {direction}: {exc}") from exc
                step.retcode = "0"
                try:
                    event = self.wait(
                        step,
                        MEDIA_SWITCH_EVENT,
                        predicate=self.same_call,
                        fail_on=frozenset({"AgentEvent_Call_Release"}),
                    )
                except GatewayEventError as exc:  # no verdict from an event nobody can read
                    raise _CannotRun(f"media switch to direction {direction}: {exc}") from exc
                except GatewayError as exc:
                    if "AgentEvent_Call_Release" in step.events:
                        self.call_maybe_up = False
                        self.result.directions.append(
                            DirectionResult(direction, False, "the call was released by the switch")
                        )
                        raise _CallLost("the call was released during a media switch") from exc
                    self.result.directions.append(
                        DirectionResult(direction, False, f"no {MEDIA_SWITCH_EVENT}: {exc}")
                    )
                    raise
                # Numbers or strings of digits (gateway/events.py makes sure they are one).
                reason, media = event.number("reason"), event.number("mediaType")
                detail = f"{MEDIA_SWITCH_EVENT} reason {reason}, mediaType {media}"
                ok = reason == 0 and media == 3
                step.ok = ok
                if not ok:
                    step.error = f"switch refused: {detail}"
                self.result.directions.append(DirectionResult(direction, ok, detail))
                return media == 3
        except GatewayError:
            return False  # verdict recorded above; the call carries on in audio

    def back_to_audio(self, after: int) -> None:
        try:
            with self.step(f"mediaswitch audio (after direction {after})") as step:
                self.client.media_switch(1)
                step.retcode = "0"
                event = self.wait(
                    step,
                    MEDIA_SWITCH_EVENT,
                    predicate=self.same_call,
                    fail_on=frozenset({"AgentEvent_Call_Release"}),
                )
                reason, media = event.number("reason"), event.number("mediaType")
                if reason != 0 or media != 1:
                    step.error = f"{MEDIA_SWITCH_EVENT} reason {reason}, mediaType {media}"
                    raise _CannotRun(f"could not switch the call back to audio: {step.error}")
                step.ok = True
        except GatewayError as exc:
            raise _CannotRun(f"could not switch the call back to audio: {exc}") from None

    # ---------------------------------------------------------------- cleanup

    def cleanup(self) -> KeyboardInterrupt | None:
        """Release the call and sign out, whatever happened; never raises GatewayError."""
        interrupt: KeyboardInterrupt | None = None
        problems: list[str] = []
        if self.call_maybe_up and self.signed_in:
            try:
                with self.step("release") as step:
                    self.client.release()
                    step.retcode = "0"
                    self.wait(
                        step,
                        "AgentEvent_Call_Release",
                        timeout=min(self.step_timeout, 10.0),
                    )
                    step.ok = True
            except GatewayError as exc:
                if exc.retcode != "100-009":  # 100-009 here: the call had already ended
                    problems.append(f"release: {exc}")
            except KeyboardInterrupt as exc:
                interrupt = exc
            except Exception as exc:  # keep going: signing out matters more
                problems.append(f"release: {type(exc).__name__}: {exc}")
        if self.signed_in or self.client.signed_in:
            try:
                with self.step("sign-out") as step:
                    self.client.sign_out()
                    step.retcode, step.ok = "0", True
            except GatewayError as exc:
                problems.append(f"sign-out: {exc}")
            except KeyboardInterrupt as exc:
                interrupt = interrupt or exc
            except Exception as exc:
                problems.append(f"sign-out: {type(exc).__name__}: {exc}")
        if problems:
            self.result.cleanup_error = "; ".join(problems)
            logger.warning(
                "verify %s: cleanup incomplete (%s): check agent %s by hand",
                self.result.gateway,
                self.result.cleanup_error,
                self.result.agent_id,
            )
        return interrupt
