"""GatewayClient against the CC-Gateway simulator over real HTTPS on loopback."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ReadyFlag

from mml_tool.errors import ConfigError, GatewayError
from mml_tool.gateway.client import GatewayClient, GatewayEvent, describe_retcode
from mml_tool.lab.certs import CertificateAuthority
from mml_tool.lab.gateway import AgentSpec, GatewayFaults, GatewaySimulator
from mml_tool.secret import Secret

PASSWORD = "Agent-Pa55word!"
BASE = "/agentgateway/resource"


def make_sim(tmp_path: Path, **kwargs: Any) -> GatewaySimulator:
    kwargs.setdefault("poll_wait", 0.5)
    return GatewaySimulator(
        tmp_path / "gw",
        one_way_video_ready=ReadyFlag(True),
        agents={"101": AgentSpec(password=PASSWORD, uap_host="uap-1")},
        **kwargs,
    )


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[GatewaySimulator]:
    with make_sim(tmp_path) as simulator:
        yield simulator


def make_client(sim: GatewaySimulator, **kwargs: Any) -> GatewayClient:
    kwargs.setdefault("ca_bundle", sim.ca_path)
    kwargs.setdefault("timeout", 5.0)
    return GatewayClient(sim.url, "101", Secret(PASSWORD), phone_number="40038", **kwargs)


def all_guids(sim: GatewaySimulator) -> set[str]:
    return {r.guid for r in sim.requests_log if r.guid}


def test_sign_in_guid_rotation_old_guid_refused(tmp_path: Path) -> None:
    with make_sim(tmp_path, guid_rotate_every=2, guid_grace=30.0) as sim, make_client(sim) as gw:
        gw.sign_in()
        first = sim.current_guid("101")
        assert first is not None and gw.signed_in
        gw.callout("40040", skill_id=25)
        gw.wait_for("AgentEvent_Talking", timeout=5)  # three events: at least one rotation
        assert sim.wait_until(lambda: sim.current_guid("101") != first, timeout=5)
        gw.handshake()
        handshake = [r for r in sim.requests_log if r.path.endswith("/handshake")][-1]
        assert handshake.retcode == "0"
        assert handshake.guid is not None and handshake.guid != first  # the client rotated
        # The new GUID has been used, so the server now refuses the first one.
        with httpx.Client(verify=ssl.create_default_context(cafile=str(sim.ca_path))) as raw:
            response = raw.put(
                f"{sim.url}{BASE}/onlineagent/101/handshake",
                headers={"Guid": first, "Content-Type": "application/json; charset=UTF-8"},
            )
        assert response.json()["retcode"] == "000-003"
        # Every request carried the content type; the load-balancer cookie came back.
        assert all(r.content_type == "application/json; charset=UTF-8" for r in sim.requests_log)
        assert all(r.cookie == "ccgw_node=node-1" for r in sim.requests_log[1:-1])
    assert sim.signed_in_agents() == []  # leaving the block signed out


def test_events_stop_with_sign_out(sim: GatewaySimulator) -> None:
    gw = make_client(sim)
    gw.sign_in()
    sim.ring("101", "10086")
    event = gw.wait_for("AgentEvent_Ringing", timeout=5)
    assert isinstance(event, GatewayEvent)
    assert (event.work_no, event.get("caller")) == ("101", "10086")
    gw.sign_out()
    assert not gw.signed_in
    assert not any(t.name == "ccgw-events-101" for t in threading.enumerate())
    assert sim.signed_in_agents() == []
    gw.close()
    gw.close()  # idempotent


def test_force_sign_in(sim: GatewaySimulator) -> None:
    with make_client(sim) as first, make_client(sim) as second:
        first.sign_in()
        with pytest.raises(GatewayError) as info:
            second.sign_in()
        assert info.value.retcode == "100-002"
        assert "agent already signed in" in str(info.value)
        second.sign_in(force=True)
        assert [r.path.rsplit("/", 1)[-1] for r in sim.requests_log if r.method == "PUT"][-1] == (
            "forcelogin"
        )
        # The replaced session's poller learns that it is over.
        with pytest.raises(GatewayError, match="polling has stopped"):
            first.wait_for("AgentEvent_Talking", timeout=5)


def test_wrong_ca_is_refused_with_a_clear_error(sim: GatewaySimulator, tmp_path: Path) -> None:
    other_ca = CertificateAuthority.create("some other CA").write(tmp_path / "other-ca.pem")
    with make_client(sim, ca_bundle=other_ca) as gw, pytest.raises(GatewayError) as info:
        gw.sign_in()
    message = str(info.value)
    assert "could not be verified" in message
    assert sim.url in message and str(other_ca) in message
    assert "ca_bundle" in message
    assert sim.requests_log == []


def test_missing_ca_bundle_is_a_config_error(sim: GatewaySimulator, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        make_client(sim, ca_bundle=tmp_path / "nope.pem")


def test_insecure_warns_loudly(sim: GatewaySimulator, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.warns(UserWarning, match="verification is OFF"):
        gw = make_client(sim, ca_bundle=None, insecure=True)
    assert "verification is OFF" in caplog.text
    with gw:
        gw.sign_in()


def test_expired_session_is_100_006(tmp_path: Path) -> None:
    with make_sim(tmp_path, idle_signout=0.3) as sim, make_client(sim, poll_events=False) as gw:
        gw.sign_in()
        assert sim.wait_until(lambda: sim.signed_in_agents() == [], timeout=5)
        with pytest.raises(GatewayError) as info:
            gw.callout("40040", skill_id=25)
        assert info.value.retcode == "100-006"
        assert "100-006 (agent not signed in" in str(info.value)


def test_expired_guid_is_000_003(tmp_path: Path) -> None:
    faults = GatewayFaults(guid_expire_after=0.2)
    with (
        make_sim(tmp_path, guid_mode="static", faults=faults) as sim,
        make_client(sim, poll_events=False) as gw,
    ):
        gw.sign_in()
        assert sim.wait_until(lambda: sim.guid_expired("101"), timeout=5)
        with pytest.raises(GatewayError) as info:
            gw.handshake()
        assert info.value.retcode == "000-003"
        assert "sign in again" in str(info.value)


def test_failed_callout_200_001(tmp_path: Path) -> None:
    with make_sim(tmp_path, rejected_numbers={"40049"}) as sim, make_client(sim) as gw:
        gw.sign_in()
        with pytest.raises(GatewayError) as info:
            gw.callout("40049", skill_id=25)
        assert info.value.retcode == "200-001"
        assert "wrong called number" in str(info.value)
        assert info.value.gateway_message == "the called number is wrong"


def test_wrong_password(sim: GatewaySimulator) -> None:
    gw = GatewayClient(
        sim.url, "101", Secret("not-the-password"), phone_number="40038", ca_bundle=sim.ca_path
    )
    with gw, pytest.raises(GatewayError) as info:
        gw.sign_in()
    assert info.value.retcode == "100-004"
    assert "not-the-password" not in str(info.value) + repr(info.value)


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        (GatewayFaults(http_5xx_every=1), "HTTP 503"),
        (GatewayFaults(drop_connection_every=1), "dropped"),
        (GatewayFaults(slow=2.0), "no answer"),
    ],
)
def test_transport_faults_are_gateway_errors(
    sim: GatewaySimulator, faults: GatewayFaults, expected: str
) -> None:
    sim.set_faults(faults)
    with make_client(sim, timeout=0.5) as gw:
        with pytest.raises(GatewayError, match=expected) as info:
            gw.sign_in()
        assert info.value.retcode == ""
        assert sim.url in str(info.value)
    sim.set_faults(GatewayFaults())


def test_transient_poll_failures_are_ridden_out(sim: GatewaySimulator) -> None:
    with make_client(sim, poll_gap=0.01) as gw:
        gw.sign_in()
        sim.set_faults(GatewayFaults(http_5xx_every=2))
        sim.ring("101", "10086")
        assert gw.wait_for("AgentEvent_Ringing", timeout=5).event_type == "AgentEvent_Ringing"
        sim.set_faults(GatewayFaults())


def test_non_json_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, text="<html>login page</html>", headers={"Content-Type": "text/html"}
        )

    gw = GatewayClient(
        "https://gw.example:8043",
        "101",
        Secret(PASSWORD),
        phone_number="40038",
        transport=httpx.MockTransport(handler),  # a proxy login page cannot come from the lab
    )
    with gw, pytest.raises(GatewayError, match="without a CC-Gateway JSON envelope"):
        gw.sign_in()


def test_wait_for_deadline_names_event_and_what_was_seen(sim: GatewaySimulator) -> None:
    with make_client(sim) as gw:
        gw.sign_in()
        gw.callout("40040", skill_id=25)
        with pytest.raises(GatewayError) as info:
            gw.wait_for("AgentEvent_MediaSwith", timeout=0.5)
        message = str(info.value)
        assert "no AgentEvent_MediaSwith event" in message
        assert "AgentState_Busy, AgentEvent_Customer_Alerting, AgentEvent_Talking" in message


def test_wait_for_fail_on(tmp_path: Path) -> None:
    with make_sim(tmp_path, unreachable_numbers={"40041"}) as sim, make_client(sim) as gw:
        gw.sign_in()
        gw.callout("40041", skill_id=25)
        with pytest.raises(GatewayError, match="AgentEvent_Call_Out_Fail arrived"):
            gw.wait_for("AgentEvent_Talking", timeout=5, fail_on={"AgentEvent_Call_Out_Fail"})


@pytest.mark.parametrize(
    "action",
    [
        lambda gw: gw.callout("12a", skill_id=25),
        lambda gw: gw.callout("1" * 25, skill_id=25),
        lambda gw: gw.callout("40040;x", skill_id=25),
        lambda gw: gw.media_switch(2),
        lambda gw: gw.media_switch(1, 1),
        lambda gw: gw.media_switch(3, 5),
        lambda gw: gw.media_switch(3, 0),
    ],
)
def test_validation_before_any_request(sim: GatewaySimulator, action: Any) -> None:
    with make_client(sim, poll_events=False) as gw:
        gw.sign_in()
        before = len(sim.requests_log)
        with pytest.raises(ConfigError):
            action(gw)
        assert len(sim.requests_log) == before


@pytest.mark.parametrize("agent_id", ["100", "1000000", "abc", "10 1", "", "0101x"])
def test_agent_id_validated(sim: GatewaySimulator, agent_id: str) -> None:
    with pytest.raises(ConfigError, match=r"101\.\.999999"):
        GatewayClient(sim.url, agent_id, Secret(PASSWORD), phone_number="40038")
    assert sim.requests_log == []


def test_plain_http_refused() -> None:
    with pytest.raises(ConfigError, match="https://"):
        GatewayClient("http://gw:8043", "101", Secret(PASSWORD), phone_number="40038")


def test_describe_retcode() -> None:
    assert describe_retcode("100-006").startswith("100-006 (agent not signed in")
    assert describe_retcode("999-999") == "999-999"


def test_secrets_never_leak(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with make_sim(tmp_path, guid_rotate_every=1, idle_signout=60) as sim:
        gw = make_client(sim)
        gw.sign_in()
        texts.append(repr(gw))
        gw.callout("40040", skill_id=25)
        gw.wait_for("AgentEvent_Talking", timeout=5)
        for action in (
            lambda: gw.callout("40040", skill_id=25),  # 100-009: a call is in progress
            lambda: gw.media_switch(3, 1),  # fine
            lambda: gw.wait_for("AgentEvent_Nothing", timeout=0.2),
        ):
            try:
                action()
            except GatewayError as exc:
                texts += [str(exc), repr(exc), exc.gateway_message]
        sim.set_faults(GatewayFaults(http_5xx_every=1))
        try:
            gw.release()
        except GatewayError as exc:
            texts += [str(exc), repr(exc)]
        sim.set_faults(GatewayFaults())
        gw.close()
        texts.append(repr(gw))
        guids = all_guids(sim)
    assert len(guids) >= 2
    blob = "\n".join(texts) + caplog.text
    assert PASSWORD not in blob
    for guid in guids:
        assert guid not in blob


def test_sign_in_without_set_guid() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"message": "", "retcode": "0", "result": {}})

    gw = GatewayClient(
        "https://gw.example:8043",
        "101",
        Secret(PASSWORD),
        phone_number="40038",
        transport=httpx.MockTransport(handler),  # a gateway that forgets Set-GUID: not in the lab
    )
    with gw, pytest.raises(GatewayError, match="no Set-GUID header"):
        gw.sign_in()
    assert not gw.signed_in
