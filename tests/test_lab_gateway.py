"""The CC-Gateway simulator over real HTTPS: envelope, paths, events and error codes as the
reference (../shared/reference/cc-gateway-api.md) documents them, and its fault modes."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ReadyFlag

from mml_tool.lab.certs import write_lab_certificates
from mml_tool.lab.gateway import (
    ONE_WAY_NOT_READY_REASON,
    AgentSpec,
    GatewayFaults,
    GatewaySimulator,
)

BASE = "/agentgateway/resource"
PASSWORD = "lab-agent-pw"
SIGN_IN = {
    "password": PASSWORD,
    "phonenum": "40038",
    "status": "4",
    "releasephone": "false",
    "agenttype": "11",
}
JSON = {"Content-Type": "application/json; charset=UTF-8"}
STOP_RECORD = "AgentMediaEvent_StopRecordDone"


@pytest.fixture
def ready() -> ReadyFlag:
    return ReadyFlag(True)


def ctx(sim: GatewaySimulator) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(sim.ca_path))


def make_sim(tmp_path: Path, ready: ReadyFlag, **kwargs: Any) -> GatewaySimulator:
    kwargs.setdefault("poll_wait", 0.5)
    agents = {
        "101": AgentSpec(password=PASSWORD, uap_host="uap-1"),
        "102": AgentSpec(password=PASSWORD, uap_host="uap-2"),
    }
    return GatewaySimulator(tmp_path, one_way_video_ready=ready, agents=agents, **kwargs)


@pytest.fixture
def sim(tmp_path: Path, ready: ReadyFlag) -> Iterator[GatewaySimulator]:
    # Static GUIDs keep these raw-protocol tests simple; rotation has its own tests.
    with make_sim(tmp_path, ready, guid_mode="static") as simulator:
        yield simulator


@pytest.fixture
def http(sim: GatewaySimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5.0) as client:
        yield client


def sign_in(http: httpx.Client, agent: str = "101", **changes: str) -> str:
    body = {**SIGN_IN, **changes}
    response = http.put(f"{BASE}/onlineagent/{agent}", json=body, headers=JSON)
    assert response.json()["retcode"] == "0", response.text
    header = response.headers["Set-GUID"]
    assert header.startswith("JSESSIONID=")
    return header.removeprefix("JSESSIONID=")


def poll(http: httpx.Client, guid: str, agent: str = "101") -> dict[str, Any]:
    response = http.get(f"{BASE}/agentevent/{agent}", headers={**JSON, "Guid": guid})
    data: dict[str, Any] = response.json()
    return data


def next_answer(http: httpx.Client, guid: str, agent: str = "101") -> dict[str, Any]:
    """The next poll answer that carries an event, wrapped or bare, as the gateway sent it."""
    for _ in range(20):
        data = poll(http, guid, agent)
        if "eventType" in data and "retcode" not in data:  # bare, as the vendor's pages print
            return data
        assert data["retcode"] == "0", data
        if "event" in data:
            return data
    raise AssertionError("no event")


def next_event(
    http: httpx.Client, guid: str, agent: str = "101", skip: tuple[str, ...] = (STOP_RECORD,)
) -> dict[str, Any]:
    """The next event object (the envelope's ``event``, or the bare answer), skipping ``skip``."""
    while True:
        data = next_answer(http, guid, agent)
        event: dict[str, Any] = data.get("event", data)
        if event["eventType"] not in skip:
            return event


def talking_call(http: httpx.Client, guid: str) -> dict[str, Any]:
    body = {"called": "40040", "caller": "", "skillid": 25, "mediaability": 0}
    response = http.put(f"{BASE}/voicecall/101/callout", json=body, headers={**JSON, "Guid": guid})
    assert response.json()["retcode"] == "0"
    types = []
    while True:
        event = next_event(http, guid)
        types.append(event["eventType"])
        if event["eventType"] == "AgentEvent_Talking":
            assert types == [
                "AgentState_Busy",
                "AgentEvent_Customer_Alerting",
                "AgentEvent_Talking",
            ]
            return event


def switch(http: httpx.Client, guid: str, query: str) -> dict[str, Any]:
    response = http.post(
        f"{BASE}/voicecall/101/mediaswitch?{query}", headers={**JSON, "Guid": guid}
    )
    data: dict[str, Any] = response.json()
    return data


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_trusts_the_written_ca(sim: GatewaySimulator) -> None:
    proc = subprocess.run(
        [
            "curl", "-sS", "-i", "--cacert", str(sim.ca_path), "-X", "PUT",
            "-H", "Content-Type: application/json; charset=UTF-8",
            "--data", json.dumps(SIGN_IN),
            f"{sim.url}{BASE}/onlineagent/101",
        ],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Set-GUID: JSESSIONID=" in proc.stdout
    assert '"retcode": "0"' in proc.stdout
    assert sim.signed_in_agents() == ["101"]


def test_certificate_names_loopback(sim: GatewaySimulator) -> None:
    with httpx.Client(verify=ctx(sim)) as client:
        url = sim.url.replace("127.0.0.1", "localhost")
        assert client.get(url + "/nothing").status_code == 404


def test_unknown_path_and_non_json_are_404_envelopes(http: httpx.Client) -> None:
    response = http.get("/nothing/here")
    assert response.status_code == 404
    assert response.json() == {
        "message": response.json()["message"],
        "retcode": "000-002",
        "result": {},
    }
    response = http.put(f"{BASE}/onlineagent/101", content=b"password=x", headers=JSON)
    assert (response.status_code, response.json()["retcode"]) == (404, "000-002")
    response = http.put(f"{BASE}/onlineagent/abc", json=SIGN_IN, headers=JSON)
    assert (response.status_code, response.json()["retcode"]) == (404, "000-002")
    response = http.delete(f"{BASE}/onlineagent/101", headers=JSON)  # wrong method
    assert (response.status_code, response.json()["retcode"]) == (404, "000-002")


@pytest.mark.parametrize(
    ("agent", "changes", "retcode"),
    [
        ("101", {"password": "wrong"}, "100-004"),
        ("555", {}, "100-004"),
        ("101", {"password": ""}, "100-001"),
        ("101", {"agenttype": "7"}, "100-012"),
        ("101", {"phonenum": "40a"}, "100-013"),
        ("100", {}, "000-002"),
    ],
)
def test_sign_in_refusals(
    http: httpx.Client, sim: GatewaySimulator, agent: str, changes: dict[str, str], retcode: str
) -> None:
    response = http.put(f"{BASE}/onlineagent/{agent}", json={**SIGN_IN, **changes}, headers=JSON)
    assert response.json()["retcode"] == retcode
    assert "Set-GUID" not in response.headers
    assert sim.signed_in_agents() == []


def test_sign_in_result_twice_and_force(http: httpx.Client, sim: GatewaySimulator) -> None:
    response = http.put(f"{BASE}/onlineagent/101", json=SIGN_IN, headers=JSON)
    data = response.json()
    assert (data["retcode"], data["message"], data["result"]["workno"]) == ("0", "", "101")
    old = response.headers["Set-GUID"].removeprefix("JSESSIONID=")
    again = http.put(f"{BASE}/onlineagent/101", json=SIGN_IN, headers=JSON)
    assert again.json()["retcode"] == "100-002"
    forced = http.put(f"{BASE}/onlineagent/101/forcelogin", json=SIGN_IN, headers=JSON)
    assert forced.json()["retcode"] == "0"
    new = forced.headers["Set-GUID"].removeprefix("JSESSIONID=")
    assert new != old
    assert poll(http, old)["retcode"] == "000-003"
    assert sim.current_guid("101") == new


def test_concurrent_sign_in_is_000_007(http: httpx.Client, sim: GatewaySimulator) -> None:
    sim.set_faults(GatewayFaults(slow=0.5))
    first: list[str] = []

    def sign() -> None:
        with httpx.Client(verify=ctx(sim), timeout=5) as other:
            r = other.put(f"{sim.url}{BASE}/onlineagent/101", json=SIGN_IN, headers=JSON)
            first.append(r.json()["retcode"])

    thread = threading.Thread(target=sign)
    thread.start()
    # The first request has arrived (it is counted as soon as its bytes are read) ...
    assert sim.wait_until(lambda: sim.sign_ins_in_progress() == {"101"}, timeout=5)
    second = http.put(f"{BASE}/onlineagent/101", json=SIGN_IN, headers=JSON)
    thread.join()
    assert second.json()["retcode"] == "000-007"
    assert first == ["0"]


def test_guid_header_required(http: httpx.Client, sim: GatewaySimulator) -> None:
    assert poll(http, "whatever")["retcode"] == "100-006"  # not signed in
    guid = sign_in(http)
    response = http.get(f"{BASE}/agentevent/101", headers=JSON)
    assert response.json()["retcode"] == "000-003"
    assert poll(http, guid[::-1])["retcode"] == "000-003"


def test_long_poll_empty_answer_and_immediate_wake(
    http: httpx.Client, sim: GatewaySimulator
) -> None:
    guid = sign_in(http)
    started = time.monotonic()
    empty = poll(http, guid)
    assert empty == {"message": "", "retcode": "0"}
    assert time.monotonic() - started >= sim.poll_wait * 0.9
    # A poll already open answers as soon as an event is queued, not at poll_wait: a long
    # poll_wait keeps the two far apart, so a loaded machine cannot blur them.
    sim.poll_wait = 10.0
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(poll(http, guid)))
    waiter.start()
    assert sim.wait_until(lambda: sim.open_polls("101") == 1, timeout=5)
    started = time.monotonic()
    sim.ring("101", "10086")
    waiter.join()
    assert time.monotonic() - started < sim.poll_wait / 2
    assert answers[0]["event"]["eventType"] == "AgentEvent_Ringing"


def test_call_events_match_the_reference(http: httpx.Client, sim: GatewaySimulator) -> None:
    """The documented shapes (samples/cc-gateway): most events wrapped with eventGenTime,
    MediaSwith and StopRecordDone bare with jsonKey arrays, Call_Release's content a string."""
    guid = sign_in(http)
    talking = talking_call(http, guid)
    assert talking["workNo"] == "101"
    assert set(talking) == {"eventType", "eventGenTime", "workNo", "content"}
    assert abs(talking["eventGenTime"] - time.time() * 1000) < 60_000
    content = talking["content"]
    assert set(content) == {"caller", "callid", "called", "feature", "type", "mediaAbility"}
    assert (content["called"], content["mediaAbility"], content["type"]) == ("40040", "1", "main")
    callid = content["callid"]
    assert sim.active_calls()["101"].state == "talking"

    assert switch(http, guid, "mediaType=3&videoDirection=1")["retcode"] == "0"
    event = next_answer(http, guid)
    assert list(event) == ["eventType", "workNo", "content", "jsonKey"]  # bare: no envelope
    assert event["eventType"] == "AgentEvent_MediaSwith"
    assert event["jsonKey"] == ["eventType", "workNo", "content"]
    keys = ["callid", "reason", "caller", "mediaType", "called"]
    assert list(event["content"]) == [*keys, "jsonKey"]
    assert event["content"]["jsonKey"] == keys
    assert event["content"]["reason"] == 0
    assert event["content"]["mediaType"] == 3
    assert event["content"]["callid"] == callid
    assert sim.active_calls()["101"].direction == 1
    record = next_answer(http, guid)
    assert record["eventType"] == STOP_RECORD and "retcode" not in record
    assert list(record["content"]) == ["beginTime", "endTime", "fileMediaType", "taskId", "jsonKey"]
    assert record["content"]["beginTime"] <= record["content"]["endTime"]

    release = http.delete(f"{BASE}/voicecall/101/release", headers={**JSON, "Guid": guid})
    assert release.json()["retcode"] == "0"
    assert sim.active_calls() == {}
    answer = next_answer(http, guid)
    assert (answer["message"], answer["retcode"]) == ("", "0")
    event = answer["event"]
    assert event.pop("eventGenTime") > 0
    assert event == {"eventType": "AgentEvent_Call_Release", "workNo": "101", "content": callid}


def test_wrapped_event_shape(tmp_path: Path, ready: ReadyFlag) -> None:
    """event_shape="wrapped": every event in the envelope, numbers in content as strings."""
    with (
        make_sim(tmp_path, ready, guid_mode="static", event_shape="wrapped") as sim,
        httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5.0) as http,
    ):
        guid = sign_in(http)
        talking = talking_call(http, guid)
        assert set(talking) == {"eventType", "workNo", "content"}
        assert switch(http, guid, "mediaType=3&videoDirection=2")["retcode"] == "0"
        answer = next_answer(http, guid)
        assert answer["retcode"] == "0" and answer["event"]["eventType"] == "AgentEvent_MediaSwith"
        content = answer["event"]["content"]
        assert (content["reason"], content["mediaType"]) == ("0", "3")
        assert "jsonKey" not in content
        record = next_answer(http, guid)
        assert record["event"]["eventType"] == STOP_RECORD
        assert isinstance(record["event"]["content"]["taskId"], str)


def test_unknown_event_shape_is_refused(tmp_path: Path, ready: ReadyFlag) -> None:
    with pytest.raises(ValueError, match="event_shape"):
        make_sim(tmp_path, ready, event_shape="bare")


def test_one_way_video_not_ready_is_the_async_failure_form(
    http: httpx.Client, sim: GatewaySimulator, ready: ReadyFlag
) -> None:
    guid = sign_in(http)
    talking_call(http, guid)
    ready.set(False)
    for direction in (1, 2):
        assert switch(http, guid, f"mediaType=3&videoDirection={direction}")["retcode"] == "0"
        event = next_event(http, guid)
        assert event["content"]["reason"] == ONE_WAY_NOT_READY_REASON != 0
        assert event["content"]["mediaType"] == 1
    assert ready.asked == ["uap-1", "uap-1"]
    # Directions 3 and 4 do not depend on P978.
    assert switch(http, guid, "mediaType=3&videoDirection=3")["retcode"] == "0"
    assert next_event(http, guid)["content"]["reason"] == 0
    assert switch(http, guid, "mediaType=1")["retcode"] == "0"
    assert next_event(http, guid)["content"]["mediaType"] == 1


def test_mediaswitch_prerequisites(http: httpx.Client, sim: GatewaySimulator) -> None:
    voice_guid = sign_in(http, "102", agenttype="4")
    assert switch(http, voice_guid, "mediaType=3")["retcode"] == "100-006"  # agent 101 is out
    response = http.post(
        f"{BASE}/voicecall/102/mediaswitch?mediaType=3", headers={**JSON, "Guid": voice_guid}
    )
    assert response.json()["retcode"] == "200-028"

    guid = sign_in(http)
    assert switch(http, guid, "mediaType=3")["retcode"] == "200-027"
    body = {"called": "40040", "caller": "", "skillid": 25, "mediaability": 0}
    http.put(f"{BASE}/voicecall/101/callout", json=body, headers={**JSON, "Guid": guid})
    assert switch(http, guid, "mediaType=3")["retcode"] == "200-029"  # still alerting
    while next_event(http, guid)["eventType"] != "AgentEvent_Talking":
        pass
    for query in (
        "",
        "mediaType=2",
        "mediaType=1&videoDirection=1",
        "mediaType=3&videoDirection=5",
    ):
        assert switch(http, guid, query)["retcode"] == "000-002", query
    assert switch(http, guid, "mediaType=3&videoDirection=4")["retcode"] == "0"
    assert switch(http, guid, "mediaType=1")["retcode"] == "000-007"  # previous one pending


def test_callout_errors(tmp_path: Path, ready: ReadyFlag) -> None:
    with (
        make_sim(tmp_path, ready, rejected_numbers={"999"}, unreachable_numbers={"777"}) as sim,
        httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5) as http,
    ):
        guid = sign_in(http)
        headers = {**JSON, "Guid": guid}
        for called in ("12a", "", "1" * 25, "999"):
            body = {"called": called, "caller": "", "skillid": 25, "mediaability": 0}
            r = http.put(f"{BASE}/voicecall/101/callout", json=body, headers=headers)
            assert r.json()["retcode"] == "200-001", called
        body = {"called": "777", "caller": "", "skillid": 25, "mediaability": 0}
        assert (
            http.put(f"{BASE}/voicecall/101/callout", json=body, headers=headers).json()["retcode"]
            == "0"
        )
        r = http.put(f"{BASE}/voicecall/101/callout", json=body, headers=headers)
        assert r.json()["retcode"] == "100-009"  # a call is already in progress
        types = [next_event(http, guid)["eventType"] for _ in range(3)]
        assert types[-1] == "AgentEvent_Call_Out_Fail"
        assert sim.active_calls() == {}


def test_incoming_call_and_answer(http: httpx.Client, sim: GatewaySimulator) -> None:
    guid = sign_in(http)
    headers = {**JSON, "Guid": guid}
    assert http.put(f"{BASE}/voicecall/101/answer", headers=headers).json()["retcode"] == "100-009"
    callid = sim.ring("101", "10086")
    ringing = next_event(http, guid)
    assert ringing["eventType"] == "AgentEvent_Ringing"
    assert ringing["content"]["callid"] == callid
    assert http.put(f"{BASE}/voicecall/101/answer", headers=headers).json()["retcode"] == "0"
    talking = next_event(http, guid)
    assert (talking["eventType"], talking["content"]["caller"]) == ("AgentEvent_Talking", "10086")


def test_logout_ends_session_and_wakes_poll(http: httpx.Client, sim: GatewaySimulator) -> None:
    guid = sign_in(http)
    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(poll(http, guid)))
    waiter.start()
    assert sim.wait_until(lambda: sim.open_polls("101") == 1, timeout=5)
    response = http.delete(f"{BASE}/onlineagent/101/logout", headers={**JSON, "Guid": guid})
    assert response.json()["retcode"] == "0"
    waiter.join()
    assert answers[0]["retcode"] == "100-006"
    assert sim.signed_in_agents() == []


def test_idle_agent_is_signed_out(tmp_path: Path, ready: ReadyFlag) -> None:
    with (
        make_sim(tmp_path, ready, idle_signout=0.3) as sim,
        httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5) as http,
    ):
        guid = sign_in(http)
        assert sim.wait_until(lambda: sim.signed_in_agents() == [], timeout=5)
        assert poll(http, guid)["retcode"] == "100-006"


def test_dynamic_guid_rotation_with_grace(tmp_path: Path, ready: ReadyFlag) -> None:
    with (
        make_sim(tmp_path, ready, guid_rotate_every=1, guid_grace=30.0) as sim,
        httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5) as http,
    ):
        old = sign_in(http)
        sim.ring("101", "10086")
        response = http.get(f"{BASE}/agentevent/101", headers={**JSON, "Guid": old})
        new = response.headers["Set-GUID"].removeprefix("JSESSIONID=")
        assert new != old
        headers = {**JSON, "Guid": old}
        # In flight with the old GUID: still accepted during the grace ...
        assert (
            http.put(f"{BASE}/onlineagent/101/handshake", headers=headers).json()["retcode"] == "0"
        )
        # ... until the new one has been used.
        handshake = http.put(f"{BASE}/onlineagent/101/handshake", headers={**JSON, "Guid": new})
        assert handshake.json()["retcode"] == "0"
        assert (
            http.put(f"{BASE}/onlineagent/101/handshake", headers=headers).json()["retcode"]
            == "000-003"
        )


def test_static_guid_never_rotates(tmp_path: Path, ready: ReadyFlag) -> None:
    with (
        make_sim(tmp_path, ready, guid_mode="static", guid_rotate_every=1) as sim,
        httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5) as http,
    ):
        guid = sign_in(http)
        sim.ring("101", "10086")
        response = http.get(f"{BASE}/agentevent/101", headers={**JSON, "Guid": guid})
        assert "Set-GUID" not in response.headers


def test_guid_expiry_fault(tmp_path: Path, ready: ReadyFlag) -> None:
    faults = GatewayFaults(guid_expire_after=0.2)
    with (
        make_sim(tmp_path, ready, guid_mode="static", faults=faults) as sim,
        httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5) as http,
    ):
        guid = sign_in(http)
        assert sim.wait_until(lambda: sim.guid_expired("101"), timeout=5)
        assert poll(http, guid)["retcode"] == "000-003"


def test_http_5xx_and_dropped_connection_faults(http: httpx.Client, sim: GatewaySimulator) -> None:
    sim.set_faults(GatewayFaults(http_5xx_every=2))
    assert http.get("/x").status_code == 404
    response = http.get("/x")
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    sim.set_faults(GatewayFaults(drop_connection_every=1))
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/x")
    sim.set_faults(GatewayFaults())
    assert http.get("/x").status_code == 404


def test_stop_is_prompt_with_open_connections(tmp_path: Path, ready: ReadyFlag) -> None:
    sim = make_sim(tmp_path, ready, poll_wait=30.0).start()
    with httpx.Client(base_url=sim.url, verify=ctx(sim), timeout=5) as http:
        guid = sign_in(http)
        waiter = threading.Thread(target=lambda: poll(http, guid))
        waiter.start()
        assert sim.wait_until(lambda: sim.open_polls("101") == 1, timeout=5)
        started = time.monotonic()
        sim.stop()
        waiter.join(timeout=5)
        assert not waiter.is_alive()
        assert time.monotonic() - started < 5


def test_lab_key_is_private_even_when_the_file_existed(tmp_path: Path) -> None:
    first = write_lab_certificates(tmp_path)
    first.key_path.chmod(0o644)
    again = write_lab_certificates(tmp_path)
    assert again.key_path.stat().st_mode & 0o777 == 0o600
