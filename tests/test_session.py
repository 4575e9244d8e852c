"""MmlSession against the lab simulator over ssh, ssh-tunnel and tcp: replies, paging, faults."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TRANSPORTS, RunningLab, StartLab

from mml_tool.errors import (
    CommandError,
    LoginError,
    MmlTimeout,
    ParseError,
    RetcodeError,
    TransportError,
)
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.mml.command import MmlCommand, quoted
from mml_tool.mml.response import parse_response
from mml_tool.mml.session import LOGOUT_TIMEOUT, MmlSession, Transcript
from mml_tool.secret import Secret

LST = "LST SFP: ID=P978;"


@pytest.fixture(scope="module")
def fl(start_lab: StartLab) -> RunningLab:
    """One node per behaviour under test."""
    nodes = [
        NodeConfig("uap-table", serial_start=1000),
        NodeConfig("uap-vertical", layout="vertical"),
        NodeConfig("uap-value", layout="value", hex_line=True),
        NodeConfig("uap-zh-echo", language="zh", ssh_echo=True),
        NodeConfig("uap-scratch"),
        NodeConfig("uap-alarms", faults=FaultConfig(alarms=True)),
        NodeConfig("uap-slow", faults=FaultConfig(latency=0.3)),
        NodeConfig("uap-drop3", faults=FaultConfig(drop_after=3)),
        NodeConfig("uap-dropmid", faults=FaultConfig(drop_mid_response="LST SFP")),
        NodeConfig("uap-garbage", faults=FaultConfig(garbage_reply="LST SFP")),
        NodeConfig("uap-noend", faults=FaultConfig(never_end="LST SFP")),
        NodeConfig("uap-locked", faults=FaultConfig(login_refused=True)),
        NodeConfig("uap-dropmod", faults=FaultConfig(drop_after_mod=True)),
    ]
    return start_lab(nodes)


def assert_closed_after_error(session: MmlSession) -> None:
    assert not session.healthy
    with pytest.raises(TransportError, match="session closed after an earlier error"):
        session.run(LST)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("node", "check"),
    [
        ("uap-table", lambda r: r == {"Parameter ID": "P978", "Bit": "0", "Bit value": "1"}),
        ("uap-vertical", lambda r: r == {"Parameter ID": "P978", "Bit": "0", "Bit value": "1"}),
        ("uap-value", lambda r: r["Parameter ID"] == "P978" and r["Parameter value"] == "1"),
        ("uap-zh-echo", lambda r: "P978" in r.values() and list(r.values())[1:] == ["0", "1"]),
    ],
)
def test_lst_sfp_in_every_layout(
    fl: RunningLab, transport: str, node: str, check: Callable[[dict[str, str]], bool]
) -> None:
    transcript = Transcript()
    with MmlSession(fl.host(node, transport), transcript=transcript) as s:
        r = s.run(LST)
        assert r.ok and r.command == LST and r.host == node and 0 < r.elapsed < 5
        assert len(r.reports) == 1 and r.reports[0].echo == LST
        assert check(r.records[0]), r.records[0]
        assert "%%LST SFP: ID=P978;%%" in r.raw and r.raw.startswith("+++")  # no echo
        assert parse_response(r.raw).records == r.records
    text = transcript.text()
    assert '>>> LGI: OP="admin", PWD="*****";' in text
    assert f'>>> REG NE: NAME="{node.upper()}";' in text
    assert ">>> LGO:;" in text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_mod_then_lst(fl: RunningLab, transport: str) -> None:
    store = fl.lab.node("uap-scratch").store
    with MmlSession(fl.host("uap-scratch", transport)) as s:
        mod = MmlCommand.create("MOD", "SFP", ID="P978", MODTYPE="P1", BIT=0, BITVAL=0)
        s.run(mod).raise_for_retcode()
        assert store.get_bit("P978", 0) == 0
        assert s.run("LST SFP: ID=P978, BIT=0;").records == [
            {"Parameter ID": "P978", "Bit": "0", "Bit value": "0"}
        ]
        s.run(mod.render().replace("BITVAL=0", "BITVAL=1")).raise_for_retcode()
        assert store.get_bit("P978", 0) == 1
        bad = s.run("MOD SFP: ID=P9999, MODTYPE=P1, BIT=0, BITVAL=0;")
        assert bad.retcode == 1006 and bad.failed
        with pytest.raises(RetcodeError, match="RETCODE = 1006"):
            bad.raise_for_retcode()
        assert s.healthy  # a RETCODE is an answer, not a broken session


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_paged_reply_is_followed_to_the_last_page(fl: RunningLab, transport: str) -> None:
    ids = fl.lab.node("uap-table").store.ids()
    with MmlSession(fl.host("uap-table", transport)) as s:
        r = s.run("LST SFP:;")
        assert len(r.reports) == -(-len(ids) // 20) > 1
        assert [p.continued for p in r.reports] == [True] * (len(r.reports) - 1) + [False]
        assert len(r.records) == 16 * len(ids)
        assert s.run(LST).ok  # the stream is still in step


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_autonomous_reports_are_set_aside(fl: RunningLab, transport: str) -> None:
    with MmlSession(fl.host("uap-alarms", transport)) as s:
        r = s.run(LST)
        assert r.ok and all(not rep.autonomous for rep in r.reports)
        assert s.autonomous and {a.kind for a in s.autonomous} == {"ALARM"}
        assert "ALARM  #" not in r.raw


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_latency_within_and_beyond_the_timeout(fl: RunningLab, transport: str) -> None:
    with MmlSession(fl.host("uap-slow", transport, timeout=5)) as s:
        assert s.run(LST).elapsed >= 0.3
        start = time.monotonic()
        with pytest.raises(MmlTimeout) as info:
            s.run(LST, timeout=0.1)
        assert time.monotonic() - start < 2.5  # the 0.1 s, not the host's 5 s (load-proof gap)
        assert "uap-slow" in str(info.value) and LST in str(info.value)
        assert "within 0.1 s" in str(info.value)
        assert_closed_after_error(s)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_drop_after_n_commands(fl: RunningLab, transport: str) -> None:
    """The element answers a third command and drops the connection at once. Over SSH the
    answer can be lost with it: when the drop has arrived too before the reply is read,
    libssh2 (1.11.1) reports the closed socket and never hands out the packets it holds. Then
    it is "connection lost while waiting for the reply", never a result; over TCP the
    answer is always read."""
    with MmlSession(fl.host("uap-drop3", transport, timeout=2)) as s:  # LGI, REG NE, then 1
        try:
            assert s.run(LST).ok
        except TransportError as lost:
            assert transport != "tcp", lost
            assert re.search(
                r"uap-drop3: connection lost while waiting for the reply to LST", str(lost)
            )
        else:
            with pytest.raises(TransportError, match=r"uap-drop3.*LST SFP: ID=P978;"):
                s.run(LST)
        assert_closed_after_error(s)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_drop_mid_response(fl: RunningLab, transport: str) -> None:
    with MmlSession(fl.host("uap-dropmid", transport, timeout=2)) as s:
        with pytest.raises(TransportError, match="connection lost while waiting for the reply"):
            s.run(LST)
        assert_closed_after_error(s)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_garbage_reply_is_a_parse_error(fl: RunningLab, transport: str) -> None:
    with MmlSession(fl.host("uap-garbage", transport, timeout=2)) as s:
        with pytest.raises(ParseError, match="uap-garbage: reply to LST SFP"):
            s.run(LST)
        assert_closed_after_error(s)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_never_ending_reply_times_out(fl: RunningLab, transport: str) -> None:
    start = time.monotonic()
    with MmlSession(fl.host("uap-noend", transport, timeout=1)) as s:
        with pytest.raises(MmlTimeout) as info:
            s.run(LST)
        assert "(Number of results = 16)" in str(info.value)  # the last bytes received
        assert_closed_after_error(s)
    assert time.monotonic() - start < 4


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_login_refused(fl: RunningLab, transport: str) -> None:
    s = MmlSession(fl.host("uap-locked", transport))
    with pytest.raises(LoginError) as info:
        s.open()
    msg = str(info.value)
    assert "uap-locked" in msg and "'admin'" in msg and "RETCODE = 1008" in msg
    assert "locked" in msg
    with pytest.raises(TransportError, match="closed"):
        s.run(LST)


def test_wrong_password_over_tcp_is_a_login_error(fl: RunningLab) -> None:
    host = fl.host("uap-table", "tcp", password=Secret("wrong-pw-123"))
    with pytest.raises(LoginError, match="Incorrect user name or password") as info:
        MmlSession(host).open()
    assert "wrong-pw-123" not in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_drop_after_mod(fl: RunningLab, transport: str) -> None:
    store = fl.lab.node("uap-dropmod").store
    with MmlSession(fl.host("uap-dropmod", transport, timeout=2)) as s:
        bit = 1 - (store.get_bit("P978", 5) or 0)
        with pytest.raises(TransportError):
            s.run(f"MOD SFP: ID=P978, MODTYPE=P1, BIT=5, BITVAL={bit};")
        assert store.get_bit("P978", 5) == bit  # done, but unanswered
        assert_closed_after_error(s)


def test_ne_selection_failures_raise_retcode_errors(fl: RunningLab) -> None:
    with pytest.raises(RetcodeError, match=r"REG NE.*RETCODE = 1009"):
        MmlSession(fl.host("uap-table", "tcp", ne_name="NOPE")).open()
    with MmlSession(fl.host("uap-table", "tcp", meid=fl.lab.node("uap-table").config.meid)) as s:
        assert s.run(LST).ok
    with pytest.raises(RetcodeError, match="USE ME"):
        MmlSession(fl.host("uap-table", "tcp", meid=77)).open()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_injection_attempts_send_nothing(fl: RunningLab, transport: str) -> None:
    store = fl.lab.node("uap-table").store
    before = store.snapshot()
    transcript = Transcript()
    with MmlSession(fl.host("uap-table", transport), transcript=transcript) as s:
        first = s.run(LST).reports[0].serial
        sent = len(transcript.entries)
        attempts: list[Callable[[], object]] = [
            lambda: s.run(LST + " MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"),
            lambda: s.run("LST SFP: ID=P978;\r\nMOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"),
            lambda: s.run(MmlCommand.create("LST", "SFP", ID="P978;MOD")),
            lambda: s.run(MmlCommand.create("REG", "NE", NAME=quoted('X";MOD SFP:ID=P978'))),
            lambda: s.run('LST SFP: ID="P978'),
            lambda: s.run("LST SFP: ID=P978"),
        ]
        for attempt in attempts:
            with pytest.raises(CommandError):
                attempt()
        assert len(transcript.entries) == sent  # nothing written
        assert s.healthy
        assert s.run(LST).reports[0].serial == first + 1  # the element answered nothing else
    assert store.snapshot() == before


def test_close_is_idempotent_and_logs_out(fl: RunningLab, tmp_path: Path) -> None:
    transcript = Transcript()
    s = MmlSession(fl.host("uap-table", "tcp"), transcript=transcript)
    s.open()
    s.close()
    s.close()
    assert [e.text for e in transcript.entries if e.direction == ">>>"][-1] == "LGO:;"
    with pytest.raises(TransportError, match="the session is closed"):
        s.run(LST)
    transcript.write(tmp_path / "t.log")
    lines = (tmp_path / "t.log").read_text().splitlines()
    assert lines[0].split(" ", 2)[
        1
    ] == ">>>" and "<<< RETCODE = 0  Operation succeeded" in "\n".join(lines)


# Echo prefixes the reference shows real elements print: %%241299DSP ...;%% (a running number)
# and %%/*1879106888 MEID=005*/LST RT:...;%% (a literal comment).
MEID_PREFIX = "/*1879106888 MEID=005*/"
PREFIX_NODES = {
    "uap-pfx-serial": NodeConfig("uap-pfx-serial", echo_prefix="{serial}"),
    "uap-pfx-meid": NodeConfig("uap-pfx-meid", echo_prefix=MEID_PREFIX, layout="vertical"),
    "uap-pfx-echo": NodeConfig("uap-pfx-echo", echo_prefix="{serial}", ssh_echo=True),
}


@pytest.fixture(scope="module")
def pfx(start_lab: StartLab) -> RunningLab:
    return start_lab(list(PREFIX_NODES.values()))


def expected_echo(node: str, command: str) -> str:
    """A regex for the echo of ``command`` on ``node``."""
    if PREFIX_NODES[node].echo_prefix == MEID_PREFIX:
        return re.escape(MEID_PREFIX + command)
    return r"[0-9]{6}" + re.escape(command)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("node", list(PREFIX_NODES))
def test_echo_with_a_prefix_is_matched(
    pfx: RunningLab, transport: str, node: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mml_tool.session")
    store = pfx.lab.node(node).store
    transcript = Transcript()
    s = MmlSession(pfx.host(node, transport, timeout=5), transcript=transcript)
    with s:  # LGI and REG NE: their prefixed echoes must match, or open() times out
        r = s.run(LST)
        assert r.ok and len(r.reports) == 1
        assert re.fullmatch(expected_echo(node, LST), r.reports[0].echo), r.reports[0].echo
        assert r.records[0] == {"Parameter ID": "P978", "Bit": "0", "Bit value": "1"}
        mod = MmlCommand.create("MOD", "SFP", ID="P978", MODTYPE="P1", BIT=0, BITVAL=0)
        s.run(mod).raise_for_retcode()
        assert store.get_bit("P978", 0) == 0
        lst_bit = "LST SFP: ID=P978, BIT=0;"
        assert s.run(lst_bit).records == [{"Parameter ID": "P978", "Bit": "0", "Bit value": "0"}]
        s.run(mod.render().replace("BITVAL=0", "BITVAL=1")).raise_for_retcode()
        assert store.get_bit("P978", 0) == 1
        paged = s.run("LST SFP:;")
        assert len(paged.reports) > 1 and not paged.reports[-1].continued
        assert all(re.fullmatch(expected_echo(node, "LST SFP:;"), p.echo) for p in paged.reports)
        if PREFIX_NODES[node].echo_prefix == "{serial}":  # one running number per command
            numbers = [int(rep.echo[:6]) for rep in (*r.reports, *paged.reports)]
            assert numbers[1] == numbers[0] + 4 and len(set(numbers[1:])) == 1
        assert s.healthy
        start = time.monotonic()
    # LGO answered and matched, not left to its timeout (the log says so; the clock agrees).
    assert not [rec for rec in caplog.records if "logout failed" in rec.getMessage()]
    assert time.monotonic() - start < LOGOUT_TIMEOUT
    assert not s.stale and not s.autonomous
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    received = "".join(e.text for e in transcript.entries if e.direction == "<<<")
    for command in ('LGI: OP="admin", PWD="*****";', f'REG NE: NAME="{node.upper()}";', "LGO:;"):
        assert re.search("%%" + expected_echo(node, command) + "%%", received), command
    assert pfx.lab.password.reveal() not in received


class ScriptedTransport:
    """Replays canned bytes: the only way to make a reply arrive out of step."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.written: list[bytes] = []

    def open(self) -> None: ...

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def read(self, deadline: float) -> bytes:
        return self.replies.pop(0) if self.replies else b""

    def close(self) -> None: ...


def report(echo: str, serial: int, retcode: int = 0) -> bytes:
    return (
        f"+++    UAP-1        2026-01-01 00:00:00\r\nO&M    #{serial}\r\n%%{echo}%%\r\n"
        f"RETCODE = {retcode}  Operation succeeded\r\n\r\n---    END\r\n"
    ).encode()


def test_stale_o_and_m_report_is_set_aside(fl: RunningLab) -> None:
    host = fl.host("uap-table", "tcp", ne_name=None)
    t = ScriptedTransport(
        [
            report('LGI: OP="admin", PWD="x";', 1),
            report("LST SFP: ID=P1;", 2),
            report(LST, 3),
            report("LGO:;", 4),
        ]
    )
    with MmlSession(host, transport=t) as s:
        r = s.run(LST)
        assert [rep.serial for rep in r.reports] == [3]
        assert [rep.echo for rep in s.stale] == ["LST SFP: ID=P1;"]
    assert t.written[-1] == b"LGO:;\r\n"


class EndlessTransport(ScriptedTransport):
    """After the canned replies, a peer that streams bytes and never ends a report."""

    def read(self, deadline: float) -> bytes:
        return super().read(deadline) or b"x" * 4096 + b"\r\n"


def test_a_reply_without_end_cannot_grow_without_bound(
    fl: RunningLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mml_tool.mml.session.MAX_FRAME_CHARS", 100_000)
    host = fl.host("uap-table", "tcp", ne_name=None, timeout=30)
    t = EndlessTransport([report('LGI: OP="admin", PWD="x";', 1)])
    start = time.monotonic()
    with MmlSession(host, transport=t) as s:
        with pytest.raises(ParseError, match=r"more than 100000 characters.*LST SFP: ID=P978;"):
            s.run(LST)
        assert len(s._buffer) < 110_000
        assert_closed_after_error(s)
    assert time.monotonic() - start < 5  # refused at the size limit, not at the 30 s deadline
