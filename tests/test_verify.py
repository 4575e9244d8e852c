"""The video-direction verification scenario against the CC-Gateway simulator (real HTTPS)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ReadyFlag

from mml_tool.errors import ConfigError
from mml_tool.gateway.client import GatewayClient
from mml_tool.gateway.verify import (
    VerifyResult,
    VerifyStep,
    client_from_config,
    verify_gateway,
    verify_video_directions,
)
from mml_tool.inventory import GatewayConfig
from mml_tool.lab.gateway import AgentSpec, EventDelays, GatewayFaults, GatewaySimulator
from mml_tool.secret import Secret

PASSWORD = "Video-Agent-pw1"


@pytest.fixture
def ready() -> ReadyFlag:
    return ReadyFlag(True)


def make_sim(tmp_path: Path, ready: ReadyFlag, **kwargs: Any) -> GatewaySimulator:
    kwargs.setdefault("poll_wait", 0.5)
    kwargs.setdefault("event_delays", EventDelays(0.01, 0.01, 0.01, 0.01))
    return GatewaySimulator(
        tmp_path / "gw",
        one_way_video_ready=ready,
        agents={"101": AgentSpec(password=PASSWORD, uap_host="uap-1")},
        **kwargs,
    )


@pytest.fixture
def sim(tmp_path: Path, ready: ReadyFlag) -> Iterator[GatewaySimulator]:
    with make_sim(tmp_path, ready) as simulator:
        yield simulator


def factory(sim: GatewaySimulator, **kwargs: Any) -> Callable[[], GatewayClient]:
    def make() -> GatewayClient:
        return GatewayClient(
            sim.url,
            "101",
            Secret(kwargs.pop("password", PASSWORD)),
            phone_number="40038",
            ca_bundle=sim.ca_path,
            timeout=5.0,
            **kwargs,
        )

    return make


def run(sim: GatewaySimulator, **kwargs: Any) -> VerifyResult:
    client = kwargs.pop("client", None) or factory(sim)
    kwargs.setdefault("called", "40040")
    kwargs.setdefault("skill_id", 25)
    kwargs.setdefault("step_timeout", 3.0)
    return verify_video_directions(client, **kwargs)


def assert_cleaned_up(sim: GatewaySimulator) -> None:
    assert sim.signed_in_agents() == []
    assert sim.active_calls() == {}


def requests(sim: GatewaySimulator) -> list[str]:
    """The requests other than polls, without those refused with a GUID rotated out while they
    were in flight (000-003: the client resends them once; more events, more rotations)."""
    return [
        f"{r.method} {r.path.rsplit('/', 1)[-1]}"
        for r in sim.requests_log
        if "agentevent" not in r.path and r.retcode != "000-003"
    ]


def test_passes_when_p978_is_ready(sim: GatewaySimulator) -> None:
    result = run(sim)
    assert result.error is None and result.passed and result.status == "pass"
    assert [(d.direction, d.ok) for d in result.directions] == [(1, True), (2, True)]
    assert [s.name for s in result.steps] == [
        "sign-in",
        "callout",
        "mediaswitch video direction 1",
        "mediaswitch audio (after direction 1)",
        "mediaswitch video direction 2",
        "release",
        "sign-out",
    ]
    assert all(s.ok for s in result.steps)
    callout = result.steps[1]
    assert callout.request == "PUT /agentgateway/resource/voicecall/101/callout"
    assert callout.events[-1] == "AgentEvent_Talking"
    switch = result.steps[2]
    assert switch.request.endswith("/voicecall/101/mediaswitch?mediaType=3&videoDirection=1")
    assert switch.events == ["AgentEvent_MediaSwith"]
    assert requests(sim) == [
        "PUT 101",
        "PUT callout",
        "POST mediaswitch",
        "POST mediaswitch",
        "POST mediaswitch",
        "DELETE release",
        "DELETE logout",
    ]
    assert [r.query for r in sim.requests_log if r.path.endswith("mediaswitch")] == [
        "mediaType=3&videoDirection=1",
        "mediaType=1",
        "mediaType=3&videoDirection=2",
    ]
    assert_cleaned_up(sim)


def test_fails_when_p978_is_not_ready_then_passes(sim: GatewaySimulator, ready: ReadyFlag) -> None:
    ready.set(False)
    result = run(sim)
    assert result.error is None
    assert not result.passed and result.status == "fail"
    assert [d.ok for d in result.directions] == [False, False]
    assert "reason 1" in result.directions[0].reason
    assert_cleaned_up(sim)
    ready.set(True)
    assert run(sim).passed
    assert_cleaned_up(sim)


def test_directions_3_and_4_do_not_need_p978(sim: GatewaySimulator, ready: ReadyFlag) -> None:
    ready.set(False)
    assert run(sim, directions=(3, 4)).passed


def test_sync_refusal_is_a_verdict(sim: GatewaySimulator) -> None:
    # A voice-only agent (agenttype 4): the gateway refuses the switch with 200-028.
    result = run(sim, client=factory(sim, agent_type=4), directions=(1,))
    assert result.status == "fail"
    assert "200-028" in result.directions[0].reason
    assert_cleaned_up(sim)


def test_sign_in_refused_is_an_error(sim: GatewaySimulator) -> None:
    result = run(sim, client=factory(sim, password="wrong-password"))
    assert result.status == "error"
    assert result.error is not None and "could not sign in" in result.error
    assert "100-004" in result.error
    assert result.directions == []
    assert requests(sim) == ["PUT 101"]  # no release, no logout for a session never opened
    assert_cleaned_up(sim)


def test_rejected_callout_is_an_error_and_cleans_up(tmp_path: Path, ready: ReadyFlag) -> None:
    with make_sim(tmp_path, ready, rejected_numbers={"40040"}) as sim:
        result = run(sim)
        assert result.status == "error"
        assert result.error is not None and "200-001" in result.error
        assert requests(sim) == ["PUT 101", "PUT callout", "DELETE logout"]
        assert_cleaned_up(sim)


def test_unreachable_number_is_an_error(tmp_path: Path, ready: ReadyFlag) -> None:
    with make_sim(tmp_path, ready, unreachable_numbers={"40040"}) as sim:
        result = run(sim)
        assert result.status == "error"
        assert result.error is not None and "AgentEvent_Call_Out_Fail" in result.error
        assert_cleaned_up(sim)


def test_missing_event_fails_the_direction(tmp_path: Path, ready: ReadyFlag) -> None:
    delays = EventDelays(0.01, 0.01, 30.0, 0.01)  # the switch never reports in time
    with make_sim(tmp_path, ready, event_delays=delays) as sim:
        result = run(sim, directions=(1,), step_timeout=0.5)
        assert result.status == "fail"
        assert "no AgentEvent_MediaSwith" in result.directions[0].reason
        assert_cleaned_up(sim)


def test_injected_exception_mid_scenario_still_cleans_up(sim: GatewaySimulator) -> None:
    def explode(step: VerifyStep) -> None:
        if step.name == "mediaswitch video direction 1":
            assert sim.active_calls()  # the call is up at this point
            raise RuntimeError("injected")

    with pytest.raises(RuntimeError, match="injected"):
        run(sim, on_step=explode)
    assert requests(sim)[-2:] == ["DELETE release", "DELETE logout"]
    assert_cleaned_up(sim)


def test_keyboard_interrupt_cleans_up_then_propagates(sim: GatewaySimulator) -> None:
    seen: list[str] = []

    def interrupt(step: VerifyStep) -> None:
        seen.append(step.name)
        if step.name == "callout":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(sim, on_step=interrupt)
    assert seen[-2:] == ["release", "sign-out"]
    assert_cleaned_up(sim)


def test_gateway_failing_mid_scenario(sim: GatewaySimulator) -> None:
    def fail_gateway(step: VerifyStep) -> None:
        if step.name == "callout":
            sim.set_faults(GatewayFaults(http_5xx_every=1))

    result = run(sim, on_step=fail_gateway)
    assert result.status == "error"
    assert result.error is not None and "HTTP 503" in result.error
    assert result.cleanup_error is not None  # release and sign-out could not get through
    sim.set_faults(GatewayFaults())


def test_incoming_call(sim: GatewaySimulator) -> None:
    def ring(step: VerifyStep) -> None:
        if step.name == "sign-in":
            sim.ring("101", "10086")

    result = run(sim, wait_incoming=True, on_step=ring)
    assert result.passed, result
    assert [s.name for s in result.steps][:3] == ["sign-in", "wait for an incoming call", "answer"]
    assert_cleaned_up(sim)


def test_no_incoming_call_is_an_error(sim: GatewaySimulator) -> None:
    result = run(sim, wait_incoming=True, ring_timeout=0.3)
    assert result.status == "error"
    assert result.error is not None and "AgentEvent_Ringing" in result.error
    assert_cleaned_up(sim)


def test_bad_arguments_are_refused_before_anything_is_sent(sim: GatewaySimulator) -> None:
    with pytest.raises(ConfigError):
        run(sim, directions=(5,))
    with pytest.raises(ConfigError):
        run(sim, called="40040#x")
    assert sim.requests_log == []


def test_verify_gateway_from_inventory_settings(
    sim: GatewaySimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = GatewayConfig(
        name="gw-1",
        url=sim.url,
        ca_bundle=sim.ca_path,
        verify_tls=True,
        agent_id="101",
        agent_password=Secret(PASSWORD),
        phone_number="40038",
        called="40040",
        skill_id=25,
        timeout=5.0,
    )
    result = verify_gateway(gateway)
    assert result.passed and result.gateway == "gw-1" and result.agent_id == "101"
    dumped = json.dumps(result.to_dict())
    assert json.loads(dumped)["status"] == "pass"
    guids = {r.guid for r in sim.requests_log if r.guid}
    for text in (dumped, caplog.text, repr(result)):
        assert PASSWORD not in text
        assert not any(guid in text for guid in guids)
    assert repr(client_from_config(gateway)).startswith("GatewayClient(")
    assert_cleaned_up(sim)
