"""Hostile or odd answers never pass: another NE's header, a second answer to a command, a
serial that goes backwards are each an AnswerError for that host (the session closes), never a
value; a password the element repeats anywhere is scrubbed from everything the session keeps
or prints. Every case runs against a tiny hostile MML server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import RunningLab, StartLab, lab_env
from hostile import NE, Connection, HostileServer, frame, inventory_with_hostile, sfp_table

from mml_tool.cli import cli
from mml_tool.compliance import check_host
from mml_tool.errors import AnswerError, LoginError, TransportError
from mml_tool.inventory import HostConfig
from mml_tool.lab.uap import NodeConfig
from mml_tool.mml.session import MmlSession, Transcript, element_head
from mml_tool.policy import load_policy
from mml_tool.secret import Secret

LST = "LST SFP: ID=P978;"
PASSWORD = "Hx7-secret-Pw"


@pytest.fixture(scope="module")
def normal(start_lab: StartLab) -> RunningLab:
    return start_lab([NodeConfig("uap-ok")])


def hostile_host(server: HostileServer, **changes: object) -> HostConfig:
    base = HostConfig(
        name="odd-1",
        hostname="127.0.0.1",
        port=server.port,
        transport="tcp",
        username="admin",
        password=Secret(PASSWORD),
        key_file=None,
        known_hosts=None,
        trust_on_first_use=False,
        connect_timeout=3,
        timeout=3,
        platform="huawei_uap9600",
        groups=(),
        ne_name=NE,
        meid=None,
        gateway=None,
        jump=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def lst_answer(
    *, ne: str = NE, serial: Callable[[Connection], int | str] | None = None, value: str = "1"
) -> Callable[[Connection, str], str | None]:
    def answer(conn: Connection, command: str) -> str | None:
        if not command.upper().startswith("LST SFP"):
            return None
        number = serial(conn) if serial else conn.next_serial()
        return frame(command, number, ne=ne, body=sfp_table(value))

    return answer


def assert_refused(host: HostConfig, pattern: str, transcript: Transcript | None = None) -> None:
    with MmlSession(host, transcript=transcript) as s:
        with pytest.raises(AnswerError, match=pattern) as info:
            s.run(LST)
        assert not s.healthy  # the stream is no longer trusted
        with pytest.raises(TransportError, match="session closed after an earlier error"):
            s.run(LST)
    assert host.name in str(info.value)


# -- another NE ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["UAP-X", "UAP9600/*MEID:5 MENAME:UAP-X*/", "UAP-H2"],
)
def test_an_answer_headed_by_another_ne_is_refused(header: str) -> None:
    with HostileServer(lst_answer(ne=header)) as server:
        assert_refused(hostile_host(server), r"headed by .*UAP-(X|H2).*not by NE 'UAP-H'")


@pytest.mark.parametrize("header", [NE, "uap-h", f"UAP9600/*MEID:5 MENAME:{NE}*/"])
def test_an_answer_from_the_selected_ne_passes(header: str) -> None:
    with HostileServer(lst_answer(ne=header)) as server, MmlSession(hostile_host(server)) as s:
        assert s.run(LST).records[0]["Bit value"] == "1"


def test_use_me_checks_the_meid_in_the_header_or_keeps_to_the_first_element() -> None:
    headers = iter(["UNC/*MEID:5 MENAME:unc*/", "UNC/*MEID:7 MENAME:unc*/"])
    with HostileServer(lst_answer(ne="")) as server:
        server.answer = lambda conn, cmd: (
            frame(cmd, conn.next_serial(), ne=next(headers), body=sfp_table("1"))
            if cmd.startswith("LST")
            else None
        )
        host = hostile_host(server, ne_name=None, meid=5)
        with MmlSession(host) as s:
            assert s.run(LST).ok
            with pytest.raises(AnswerError, match=r"MEID:7.*not by MEID 5 \(USE ME\)"):
                s.run(LST)
        plain = iter(["UAP-H", "UAP-H", "UAP-Z"])
        server.answer = lambda conn, cmd: (
            frame(cmd, conn.next_serial(), ne=next(plain), body=sfp_table("1"))
            if cmd.startswith("LST")
            else None
        )
        with MmlSession(host) as s:
            assert s.run(LST).ok and s.run(LST).ok
            with pytest.raises(AnswerError, match="'UAP-Z', not by the element of the first"):
                s.run(LST)


def test_element_head_reads_the_elements_header_after_an_nms_pair() -> None:
    text = (
        "+++    NMS SERVER        2026-01-01 00:00:00\n"
        "O&M    #2304\n"
        "+++    UAP-H        2026-01-01 00:00:01\n"
        "O&M    #HWHandle=174\n"
        f"%%{LST}%%\n"
        "RETCODE = 0  Operation succeeded\n"
        "---    END\n"
    )
    assert element_head(text) == ("UAP-H", "HWHandle=174")
    assert element_head(frame(LST, 42)) == (NE, "42")
    assert element_head("+++    UAP-H\nO&M    #7\n%%X%%\n") == ("UAP-H", "7")  # no time
    assert element_head(f"%%{LST}%%\nRETCODE = 0  ok\n---    END\n") == (None, None)


# -- a second answer, a serial going backwards -------------------------------------------------


def test_a_second_answer_in_the_same_packet_is_refused() -> None:
    def answer(conn: Connection, command: str) -> str | None:
        if command.startswith("LST"):
            first = frame(command, conn.next_serial(), body=sfp_table("1"))
            return first + frame(command, conn.next_serial(), body=sfp_table("0"))
        return None

    with HostileServer(answer) as server:
        transcript = Transcript()
        assert_refused(hostile_host(server), r"a second answer to LST SFP: ID=P978;", transcript)
    assert transcript.text().count(f"%%{LST}%%") == 2  # both kept as evidence


def test_a_second_answer_arriving_with_the_next_reply_is_refused() -> None:
    replies: list[str] = []

    def answer(conn: Connection, command: str) -> str | None:
        if command.startswith("LST"):
            replies.append(frame(command, conn.next_serial(), body=sfp_table("1")))
            return replies[0] if len(replies) == 1 else replies[0] + replies[-1]
        return None

    with HostileServer(answer) as server, MmlSession(hostile_host(server)) as s:
        assert s.run(LST).ok
        with pytest.raises(AnswerError, match="a second answer to LST SFP: ID=P978;"):
            s.run("LST SFP: ID=P917;")


def test_a_second_answer_at_logout_makes_the_check_an_error() -> None:
    """Too late for the read it repeats, but still before the session ends: the host's
    findings are errors, not the value the first answer gave."""
    sent: list[str] = []

    def answer(conn: Connection, command: str) -> str | None:
        if command.startswith("LST"):
            sent.append(frame(command, conn.next_serial(), body=sfp_table("0")))
            return sent[-1]
        if command.startswith("LGO"):
            return sent[-1] + frame(command, conn.next_serial())
        return None

    with HostileServer(answer) as server:
        (finding,) = check_host(hostile_host(server), load_policy())
    assert finding.status == "error"
    assert finding.error is not None and "a second answer" in finding.error


def test_a_serial_going_backwards_is_refused() -> None:
    serials = iter([500, 499])
    server = HostileServer(lst_answer(serial=lambda conn: next(serials)))
    with server, MmlSession(hostile_host(server)) as s:
        assert s.run(LST).ok
        with pytest.raises(AnswerError, match=r"serial went backwards \(#499 after #500\)"):
            s.run(LST)
        assert not s.healthy


def test_equal_serials_and_non_numeric_serials_pass() -> None:
    """Pages of one reply share a serial; `#HWHandle=174` is not a number to order."""

    def answer(conn: Connection, command: str) -> str | None:
        if command == "LST SFP:;":
            serial = conn.next_serial()
            return frame(command, serial, body=sfp_table("1"), continued=True) + frame(
                command, serial, body=sfp_table("0", pid="P979")
            )
        return None

    with HostileServer(answer) as server, MmlSession(hostile_host(server)) as s:
        response = s.run("LST SFP:;")
        assert [r.serial for r in response.reports] == [102, 102]


# -- secrets by value ----------------------------------------------------------------------------


def echoing_login(conn: Connection, command: str) -> str | None:
    """A login error that repeats the password it was given, outside PWD=."""
    if command.startswith("LGI"):
        given = command.split('PWD="', 1)[1].split('"', 1)[0]
        return frame(
            command,
            conn.next_serial(),
            retcode=1007,
            message=f"Incorrect password {given} for user admin",
        )
    return None


def test_a_login_error_that_repeats_the_password_is_scrubbed(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    transcript = Transcript()
    with HostileServer(echoing_login) as server, pytest.raises(LoginError) as info:
        MmlSession(hostile_host(server), transcript=transcript).open()
    texts = [
        str(info.value),
        repr(info.value),
        "".join(traceback.format_exception(info.value)),
        transcript.text(),
        caplog.text,
        *capsys.readouterr(),
    ]
    assert "Incorrect password *****" in str(info.value)
    assert "Incorrect password *****" in transcript.text()
    for text in texts:
        assert PASSWORD not in text


def test_a_password_repeated_in_an_answer_is_scrubbed_from_the_response() -> None:
    def answer(conn: Connection, command: str) -> str | None:
        if command.startswith("LST"):
            body = f"Software parameter\n------------------\nNote  =  was {PASSWORD}\n"
            return frame(command, conn.next_serial(), body=body)
        return None

    transcript = Transcript()
    server = HostileServer(answer)
    with server, MmlSession(hostile_host(server), transcript=transcript) as s:
        response = s.run(LST)
    kept = [response.raw, repr(response), transcript.text(), repr(s.stale)]
    assert "was *****" in response.raw
    assert all(PASSWORD not in text for text in kept)


# -- the fleet: the hostile host is an error, the others are judged, nothing leaks ---------------


def test_a_forged_ne_in_a_fleet_check_is_that_hosts_error(
    normal: RunningLab, tmp_path: Path
) -> None:
    with HostileServer(lst_answer(ne="UAP-X")) as server:
        inventory = inventory_with_hostile(normal.inventory_path, server, tmp_path / "fleet.yaml")
        report = tmp_path / "r.json"
        env = {**lab_env(normal.inventory_path), "COLUMNS": "250"}
        result = CliRunner().invoke(
            cli, ["check", "-i", str(inventory), "--report", f"json:{report}"], env=env
        )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    by_host = {r["host"]: r for r in json.loads(report.read_text())["results"]}
    assert by_host["uap-ok"]["status"] == "fail"
    assert by_host["odd-1"]["status"] == "error"
    assert "headed by 'UAP-X'" in by_host["odd-1"]["error"]
