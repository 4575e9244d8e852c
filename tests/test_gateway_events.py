"""Agent events in every shape the vendor's pages print (tests/samples/cc-gateway, README there):
the parser on each sample, the client reading them from a poll over real HTTPS, and
verification (API and ``mml-tool verify``) against the simulator's documented and wrapped forms.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from conftest import lab_env

from mml_tool.cli import cli
from mml_tool.errors import ConfigError, GatewayError, GatewayEventError
from mml_tool.gateway.client import GatewayClient
from mml_tool.gateway.events import EventFormatError, GatewayEvent, is_bare_event, parse_event
from mml_tool.gateway.verify import VerifyStep, verify_video_directions
from mml_tool.lab.gateway import AgentSpec, EventDelays, GatewaySimulator
from mml_tool.lab.lab import Lab, load_gateway_settings, load_lab_config
from mml_tool.lab.uap import NodeConfig
from mml_tool.secret import Secret

SAMPLES = Path(__file__).parent / "samples" / "cc-gateway"
PASSWORD = "Events-Agent-pw1"
GEN_TIME = 1784529722590

# file -> (eventType, workNo, bare, eventGenTime, call ID)
EXPECTED: dict[str, tuple[str, str, bool, int | None, str | None]] = {
    "agentevent_call_release_content_is_string.json": (
        "AgentEvent_Call_Release", "49999", False, None, "1456403549-15"),
    "agentevent_call_release_zh_md_eventGenTime.json": (
        "AgentEvent_Call_Release", "49999", False, GEN_TIME, "1456403549-15"),
    "agentevent_customer_release.json": (
        "AgentEvent_Customer_Release", "49999", False, None, "1456404171-43"),
    "agentevent_mediaswith_unwrapped.json": (
        "AgentEvent_MediaSwith", "111", True, None, "1603286369-16773"),
    "agentevent_ringing.json": ("AgentEvent_Ringing", "49999", False, None, "1456404043-37"),
    "agentevent_talking_intl_en.json": (
        "AgentEvent_Talking", "49999", False, None, "1456401416-3"),
    "agentevent_talking_zh_md_eventGenTime.json": (
        "AgentEvent_Talking", "49999", False, GEN_TIME, "1456401416-3"),
    "agentmediaevent_stoprecorddone_recordFormat.json": (
        "AgentMediaEvent_StopRecordDone", "1115", True, None, None),
    "agentmediaevent_stoprecorddone_unwrapped.json": (
        "AgentMediaEvent_StopRecordDone", "1115", True, None, None),
}  # fmt: skip
EVENT_SAMPLES = sorted(EXPECTED)
NOT_JSON = [
    "agentevent_mediaswith_zh_md_MALFORMED.txt",
    "signin_response_devguide_INVALID_JSON.txt",
]


def test_every_sample_is_covered() -> None:
    names = {p.name for p in SAMPLES.iterdir() if p.name != "README.md"}
    assert names == {*EXPECTED, *NOT_JSON, "signin_response_api_example.json"}


def event_of(data: Any) -> GatewayEvent:
    """What the client does with a poll answer: the bare event, or the envelope's."""
    bare = is_bare_event(data)
    return parse_event(data if bare else data["event"], received=0.0, wrapped=not bare)


# ------------------------------------------------------------------ the parser


@pytest.mark.parametrize("name", EVENT_SAMPLES)
def test_parser_reads_each_vendor_sample(name: str) -> None:
    data = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    event = event_of(data)
    event_type, work_no, bare, generated, call_id = EXPECTED[name]
    assert (event.event_type, event.work_no, event.wrapped) == (event_type, work_no, not bare)
    assert (event.generated, event.call_id) == (generated, call_id)
    if event_type == "AgentEvent_MediaSwith":
        assert (event.number("reason"), event.number("mediaType")) == (0, 3)
    if event_type == "AgentEvent_Call_Release":
        assert event.content == call_id  # kept as the gateway sent it
    if event_type == "AgentMediaEvent_StopRecordDone":
        assert event.number("taskId") == 5451 and event.number("fileMediaType") == 1


@pytest.mark.parametrize("name", NOT_JSON)
def test_not_json_samples_do_not_parse(name: str) -> None:
    with pytest.raises(ValueError):
        json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def mediaswitch(**content: Any) -> dict[str, Any]:
    return {"eventType": "AgentEvent_MediaSwith", "workNo": "111", "content": content}


@pytest.mark.parametrize(
    ("raw", "check"),
    [
        # numbers as strings and strings as numbers
        (mediaswitch(callid=1603286369, reason="0", mediaType=" 3 "), ("1603286369", 0, 3)),
        (mediaswitch(callid="c-1", reason=0.0, mediaType=3.0), ("c-1", 0, 3)),
        (mediaswitch(callid="c-1", reason=-1, mediaType="1"), ("c-1", -1, 1)),
    ],
)
def test_numbers_and_strings_either_way(raw: dict[str, Any], check: tuple[Any, ...]) -> None:
    event = parse_event(raw, received=0.0)
    assert (event.call_id, event.number("reason"), event.number("mediaType")) == check


@pytest.mark.parametrize(
    ("raw", "work_no", "generated", "content"),
    [
        ({"eventType": "AgentEvent_Call_Release", "workNo": 111, "content": None}, "111", None,
         None),
        ({"eventType": "AgentEvent_Call_Release", "workNo": "7", "content": 1456403549,
          "eventGenTime": str(GEN_TIME)}, "7", GEN_TIME, "1456403549"),
        ({"eventType": "AgentState_Busy", "content": "", "eventGenTime": None}, "", None, ""),
        ({"eventType": "AgentEvent_Talking", "workNo": "1", "content": {"callid": "x"},
          "jsonKey": ["eventType", "workNo", "content"]}, "1", None, {"callid": "x"}),
    ],
)  # fmt: skip
def test_content_object_string_or_null_and_optional_fields(
    raw: dict[str, Any], work_no: str, generated: int | None, content: Any
) -> None:
    event = parse_event(raw, received=0.0)
    assert (event.work_no, event.generated, event.content) == (work_no, generated, content)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("AgentEvent_Talking", "the event is 'AgentEvent_Talking', not a JSON object"),
        ({"workNo": "1"}, "eventType is None, not an event name"),
        ({"eventType": ""}, "eventType is '', not an event name"),
        ({"eventType": "Agent Event"}, "eventType is 'Agent Event'"),
        ({"eventType": "E", "workNo": {"id": 1}}, "E: workNo is {'id': 1}, not an agent ID"),
        ({"eventType": "E", "workNo": True}, "E: workNo is True"),
        ({"eventType": "E", "eventGenTime": "yesterday"}, "E: eventGenTime is 'yesterday'"),
        ({"eventType": "E", "eventGenTime": -5}, "E: eventGenTime is -5, not epoch milliseconds"),
        ({"eventType": "E", "content": [1, 2]}, "E: content is [1, 2]: expected an object"),
        ({"eventType": "E", "content": True}, "E: content is True"),
        (mediaswitch(reason="abc", mediaType=3), "content.reason is 'abc', not a number"),
        (mediaswitch(reason=True, mediaType=3), "content.reason is True, not a number"),
        (mediaswitch(reason=0), "content.mediaType is None, not a number"),
        (mediaswitch(reason=0, mediaType=[3]), "content.mediaType is [3], not a number"),
        ({"eventType": "AgentEvent_MediaSwith", "content": "0"}, "content is '0', expected an"),
        ({"eventType": "AgentEvent_MediaSwith", "content": None}, "content is None, expected an"),
        (mediaswitch(reason=0, mediaType=3, callid={"a": 1}), "content.callid is {'a': 1}"),
        ({"eventType": "AgentEvent_Call_Release", "content": "x" * 300}, "content is 'xxx"),
    ],
)
def test_malformed_events_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(EventFormatError) as info:
        parse_event(raw, received=0.0)
    assert message in str(info.value)


def test_bare_answer_detection() -> None:
    assert is_bare_event({"eventType": "AgentEvent_MediaSwith"})
    assert not is_bare_event({"retcode": "0", "event": {"eventType": "X"}})
    assert not is_bare_event({"retcode": "0", "eventType": "X"})  # an envelope wins
    assert not is_bare_event({"message": "", "retcode": "0"})
    assert not is_bare_event(["eventType"])


# ------------------------------------------------------- the client, real HTTPS


def always_ready(uap_host: str) -> bool:
    return True


def make_sim(tmp_path: Path, **kwargs: Any) -> GatewaySimulator:
    kwargs.setdefault("poll_wait", 0.5)
    kwargs.setdefault("event_delays", EventDelays(0.01, 0.01, 0.01, 0.01))
    kwargs.setdefault("one_way_video_ready", always_ready)
    return GatewaySimulator(
        tmp_path / "gw", agents={"101": AgentSpec(password=PASSWORD, uap_host="uap-1")}, **kwargs
    )


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[GatewaySimulator]:
    with make_sim(tmp_path) as simulator:
        yield simulator


def client(sim: GatewaySimulator, **kwargs: Any) -> GatewayClient:
    kwargs.setdefault("timeout", 5.0)
    return GatewayClient(
        sim.url, "101", Secret(PASSWORD), phone_number="40038", ca_bundle=sim.ca_path, **kwargs
    )


def test_client_reads_every_sample_from_a_poll(sim: GatewaySimulator) -> None:
    with client(sim) as gw:
        gw.sign_in()
        for name in EVENT_SAMPLES:
            sim.answer_next_poll("101", (SAMPLES / name).read_bytes())
        for name in EVENT_SAMPLES:
            event_type, work_no, bare, generated, call_id = EXPECTED[name]
            event = gw.wait_for(event_type, timeout=5)
            assert (event.work_no, event.wrapped, event.generated) == (work_no, not bare, generated)
            assert event.call_id == call_id
            expected = event_of(json.loads((SAMPLES / name).read_bytes()))
            assert event == dataclasses.replace(expected, received=event.received)


def test_malformed_vendor_sample_is_a_clear_error_in_order(sim: GatewaySimulator) -> None:
    """The zh page's MediaSwith example is not JSON: waiting for MediaSwith raises at once
    (not at the deadline), after the events before it; polling goes on."""
    with client(sim, poll_gap=0.01) as gw:
        gw.sign_in()
        sim.answer_next_poll("101", (SAMPLES / "agentevent_ringing.json").read_bytes())
        sim.answer_next_poll("101", (SAMPLES / NOT_JSON[0]).read_bytes())
        with pytest.raises(GatewayEventError) as info:
            gw.wait_for("AgentEvent_MediaSwith", timeout=30)
        message = str(info.value)
        assert "while waiting for AgentEvent_MediaSwith" in message
        assert "events seen: AgentEvent_Ringing" in message
        assert "not valid JSON" in message and "agentevent/101" in message
        assert isinstance(info.value, GatewayError) and info.value.retcode == ""
        sim.ring("101", "10086")
        assert gw.wait_for("AgentEvent_Ringing", timeout=5).get("caller") == "10086"


@pytest.mark.parametrize(
    "body",
    [
        {"eventType": "AgentEvent_MediaSwith", "workNo": "101",
         "content": {"callid": "1", "reason": "ok", "mediaType": 3}},
        {"message": "", "retcode": "0", "event": {"eventType": "", "content": {}}},
        {"message": "", "retcode": "0", "event": ["AgentEvent_MediaSwith"]},
    ],
)  # fmt: skip
def test_malformed_event_in_a_poll_is_a_gateway_error(
    sim: GatewaySimulator, body: dict[str, Any]
) -> None:
    with client(sim, poll_gap=0.01) as gw:
        gw.sign_in()
        sim.answer_next_poll("101", json.dumps(body).encode())
        with pytest.raises(GatewayEventError, match="sent an agent event that cannot be read"):
            gw.wait_for("AgentEvent_MediaSwith", timeout=30)


def test_bare_event_is_only_read_from_a_poll() -> None:
    """A bare event in answer to a call-out is not a success: it has no retcode."""
    bare = (SAMPLES / "agentevent_mediaswith_unwrapped.json").read_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Set-GUID": "JSESSIONID=G1", "Content-Type": "application/json"}
        if request.url.path.endswith("/onlineagent/101"):
            return httpx.Response(200, json={"message": "", "retcode": "0"}, headers=headers)
        return httpx.Response(200, content=bare, headers=headers)

    gw = GatewayClient(
        "https://gw.example:8043",
        "101",
        Secret(PASSWORD),
        phone_number="40038",
        poll_events=False,
        transport=httpx.MockTransport(handler),  # a gateway answering a call-out with an event
    )
    with gw:
        gw.sign_in()
        with pytest.raises(GatewayError, match="without a CC-Gateway JSON envelope"):
            gw.callout("40040", skill_id=25)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("signin_response_api_example.json", None),
        ("signin_response_devguide_INVALID_JSON.txt", "without a CC-Gateway JSON envelope"),
    ],
)
def test_sign_in_samples(name: str, error: str | None) -> None:
    body = (SAMPLES / name).read_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Set-GUID": "JSESSIONID=G1", "Content-Type": "application/json"}
        return httpx.Response(200, content=body, headers=headers)

    gw = GatewayClient(
        "https://gw.example:8043",
        "101",
        Secret(PASSWORD),
        phone_number="40038",
        poll_events=False,
        transport=httpx.MockTransport(handler),  # the vendor's sign-in bodies, as printed
    )
    with gw:
        if error is None:
            assert gw.sign_in().result["workno"] == "291"
        else:
            with pytest.raises(GatewayError, match=error):
                gw.sign_in()


# -------------------------------------------------- verification, both shapes


@pytest.mark.parametrize("shape", ["documented", "wrapped"])
@pytest.mark.parametrize("ready", [True, False])
def test_verification_against_both_event_shapes(tmp_path: Path, shape: Any, ready: bool) -> None:
    with make_sim(
        tmp_path, event_shape=shape, one_way_video_ready=lambda host: ready
    ) as sim:  # fmt: skip
        result = verify_video_directions(
            lambda: client(sim), called="40040", skill_id=25, step_timeout=3.0
        )
        assert result.error is None, result.error
        assert result.passed is ready and result.status == ("pass" if ready else "fail")
        reasons = [d.reason for d in result.directions]
        if ready:
            assert reasons == ["AgentEvent_MediaSwith reason 0, mediaType 3"] * 2
            events = [e for s in result.steps for e in s.events]
            assert events.count("AgentMediaEvent_StopRecordDone") == 3  # read, then passed over
        else:
            assert reasons == ["AgentEvent_MediaSwith reason 1, mediaType 1"] * 2
        assert sim.signed_in_agents() == [] and sim.active_calls() == {}


def test_unreadable_mediaswitch_event_is_an_error_not_a_verdict(sim: GatewaySimulator) -> None:
    bad = json.dumps(
        {
            "eventType": "AgentEvent_MediaSwith",
            "workNo": "101",
            "content": {"callid": "1", "reason": "OK", "mediaType": 3},
        }
    ).encode()

    def inject(step: VerifyStep) -> None:
        if step.name == "callout":  # the next poll answer: before the real MediaSwith
            sim.answer_next_poll("101", bad)

    result = verify_video_directions(
        lambda: client(sim), called="40040", skill_id=25, step_timeout=3.0, on_step=inject
    )
    assert result.status == "error" and not result.passed
    assert result.error is not None and "content.reason is 'OK', not a number" in result.error
    assert sim.signed_in_agents() == [] and sim.active_calls() == {}


@pytest.mark.parametrize("shape", ["documented", "wrapped"])
def test_mml_tool_verify_against_both_event_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: Any
) -> None:
    node = NodeConfig("uap-1", params={"P978": 0})  # one-way video allowed
    with Lab([node], workdir=tmp_path / "lab", gateway_event_shape=shape) as lab:
        inventory = lab.write_inventory(tmp_path / "lab" / "inventory.yaml")
        for key, value in lab_env(inventory).items():
            monkeypatch.setenv(key, value)
        assert lab.gateway is not None and lab.gateway.event_shape == shape  # type: ignore[attr-defined]
        result = CliRunner().invoke(cli, ["verify", "-i", str(inventory)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        lab.node("uap-1").store.set_bit("P978", 0, 1)
        result = CliRunner().invoke(cli, ["verify", "-i", str(inventory)], catch_exceptions=False)
        assert result.exit_code == 101, result.output


# ------------------------------------------------------------ the lab setting


def test_lab_config_gateway_event_shape(tmp_path: Path) -> None:
    cfg = tmp_path / "LAB.yaml"
    cfg.write_text(yaml.safe_dump({"nodes": {"uap-1": {}}, "gateway": {"event_shape": "wrapped"}}))
    assert load_gateway_settings(cfg) == "wrapped"
    assert [n.name for n in load_lab_config(cfg)] == ["uap-1"]
    cfg.write_text(yaml.safe_dump({"nodes": {"uap-1": {}}}))
    assert load_gateway_settings(cfg) == "documented"
    for gateway, message in [
        ({"event_shape": "bare"}, "gateway.event_shape is 'bare': use documented"),
        ({"shape": "wrapped"}, "gateway: unknown field 'shape'"),
        ("wrapped", "'gateway' must be a mapping"),
    ]:
        cfg.write_text(yaml.safe_dump({"nodes": {"uap-1": {}}, "gateway": gateway}))
        with pytest.raises(ConfigError, match=str(cfg)) as info:
            load_lab_config(cfg)
        assert message in str(info.value)


def test_lab_foreground_takes_the_event_shape_from_lab_yaml(tmp_path: Path) -> None:
    from mml_tool.lab import lab as lab_module

    cfg = tmp_path / "LAB.yaml"
    cfg.write_text(yaml.safe_dump({"nodes": {"uap-1": {}}, "gateway": {"event_shape": "wrapped"}}))
    shapes: list[str] = []
    started = threading.Event()
    stop = threading.Event()

    def factory(lab: Lab) -> Any:
        shapes.append(lab.gateway_event_shape)
        started.set()
        return lab_module._default_gateway_factory(lab)

    runner = threading.Thread(
        target=lab_module.run_lab_foreground,
        kwargs={
            "config": cfg,
            "workdir": tmp_path / "w",
            "gateway_factory": factory,
            "out": io.StringIO(),
            "stop_event": stop,
        },
    )
    runner.start()
    try:
        assert started.wait(10)
    finally:
        stop.set()
        runner.join(10)
    assert shapes == ["wrapped"] and not runner.is_alive()
