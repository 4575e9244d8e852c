"""End-to-end proof that one-way video works: the video-direction verification scenario.

    sign in the video agent (agenttype 11)
    get a voice call: call out to ``called``, or wait for AgentEvent_Ringing and answer
    wait for AgentEvent_Talking
    for each direction d (default 1 and 2, the ones P978 bit 0 = 0 enables):
        POST .../mediaswitch?mediaType=3&videoDirection=d   -> retcode "0"
        AgentEvent_MediaSwith with reason 0 and mediaType 3 before the deadline
        back to audio (mediaType=1, its AgentEvent_MediaSwith too) before the next direction
    release the call, sign out               <- always, even after a failure or Ctrl-C

Outcomes (the CLI maps them to exit codes 0 / 101 / 1):

- ``passed``: every direction switched (``status == "pass"``);
- a direction refused (a 200-0xx retcode, a non-zero ``reason``, no event before the deadline,
  the call dropped by the switch) is a *verdict*: ``passed`` False, ``error`` None ("fail");
- anything that stops the scenario from reaching a verdict (sign-in refused, no call, the
  session lost, the gateway unreachable) sets ``error`` ("error").

Every step is recorded (``VerifyStep``) with its request line (no password, no GUID), retcode,
the events it consumed and its timing, for the evidence bundle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from mml_tool.errors import ConfigError, MmlToolError
from mml_tool.gateway.client import GatewayClient
from mml_tool.gateway.protocol import validate_called
from mml_tool.gateway.scenario import MEDIA_SWITCH_EVENT as MEDIA_SWITCH_EVENT
from mml_tool.gateway.scenario import _Scenario
from mml_tool.gateway.verify_result import DirectionResult as DirectionResult
from mml_tool.gateway.verify_result import VerifyResult as VerifyResult
from mml_tool.gateway.verify_result import VerifyStep as VerifyStep
from mml_tool.inventory.models import GatewayConfig


def client_from_config(gateway: GatewayConfig, **kwargs: Any) -> GatewayClient:
    """A GatewayClient for an inventory gateway (``verify_tls: false`` -> insecure)."""
    return GatewayClient(
        gateway.url,
        gateway.agent_id,
        gateway.agent_password,
        phone_number=gateway.phone_number,
        ca_bundle=gateway.ca_bundle,
        insecure=not gateway.verify_tls,
        timeout=gateway.timeout,
        name=gateway.name,
        **kwargs,
    )


def verify_gateway(
    gateway: GatewayConfig,
    *,
    directions: Sequence[int] = (1, 2),
    wait_incoming: bool = False,
    step_timeout: float | None = None,
    ring_timeout: float | None = None,
    force_sign_in: bool = False,
    on_step: Callable[[VerifyStep], None] | None = None,
) -> VerifyResult:
    """Run the scenario against an inventory gateway, with its ``called`` and ``skill_id``."""
    result = verify_video_directions(
        lambda: client_from_config(gateway),
        called=gateway.called,
        skill_id=gateway.skill_id,
        directions=directions,
        wait_incoming=wait_incoming,
        step_timeout=step_timeout if step_timeout is not None else gateway.timeout,
        ring_timeout=ring_timeout,
        force_sign_in=force_sign_in,
        on_step=on_step,
        gateway_name=gateway.name,
    )
    result.verify_tls = gateway.verify_tls  # also when the client could not even be set up
    return result


def verify_video_directions(
    client: GatewayClient | Callable[[], GatewayClient],
    *,
    called: str,
    skill_id: int,
    directions: Sequence[int] = (1, 2),
    wait_incoming: bool = False,
    step_timeout: float = 15.0,
    ring_timeout: float | None = None,
    force_sign_in: bool = False,
    on_step: Callable[[VerifyStep], None] | None = None,
    gateway_name: str | None = None,
) -> VerifyResult:
    """Prove each video direction on a live call; see the module docstring.

    ``client``: a GatewayClient (signed out; left open for the caller to close) or a factory
    (its client is closed here). ``on_step`` is called after every recorded step (progress
    display); an exception it raises aborts the scenario like any other, after cleanup.
    Raises ConfigError for bad arguments before anything is sent; re-raises KeyboardInterrupt
    after cleanup; otherwise returns a VerifyResult.
    """
    if not directions:
        raise ConfigError("give at least one video direction to verify")
    for direction in directions:
        if direction not in (1, 2, 3, 4):
            raise ConfigError(f"video direction {direction!r} is invalid: use 1, 2, 3 or 4")
    if not wait_incoming:
        validate_called(called)
    owned = not isinstance(client, GatewayClient)
    started = time.time()
    t0 = time.monotonic()
    if isinstance(client, GatewayClient):
        gw = client
    else:
        try:
            gw = client()
        except MmlToolError as exc:
            return VerifyResult(
                gateway=gateway_name or "",
                agent_id="",
                error=f"could not set up the gateway client: {exc}",
                started=started,
                elapsed=time.monotonic() - t0,
            )
    result = VerifyResult(
        gateway=gateway_name or gw.name,
        agent_id=gw.agent_id,
        started=started,
        verify_tls=not gw.insecure,
    )
    scenario = _Scenario(
        gw,
        result,
        called=called,
        skill_id=skill_id,
        step_timeout=step_timeout,
        ring_timeout=ring_timeout if ring_timeout is not None else step_timeout,
        on_step=on_step,
    )
    try:
        scenario.run(directions, wait_incoming=wait_incoming, force_sign_in=force_sign_in)
    finally:
        if owned:
            gw.close()
        result.elapsed = time.monotonic() - t0
    return result
