"""MML through a real OpenSSH sshd: a forced command in a cooked or raw pty, password and key
authentication, and sshd as the jump host of the ssh-tunnel transport (tests/openssh.py).

A cooked pty turns every LF the element sends into CR LF, so each CRLF arrives as CR CR LF, and
it echoes what the client types; the session must read both as a raw pty's plain CRLF.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from openssh import OpenSshLab, why_not
from test_transport import read_until

from mml_tool.cli import cli
from mml_tool.errors import HostKeyError, TransportError
from mml_tool.mml.session import MmlSession, Transcript
from mml_tool.mml.transport import make_transport
from mml_tool.secret import Secret

LST = "LST SFP: ID=P978;"


@pytest.fixture(scope="module")
def sshd() -> Iterator[OpenSshLab]:
    reason = why_not()
    if reason is not None:
        pytest.skip(reason)
    lab = OpenSshLab().start()
    try:
        yield lab
    finally:
        lab.stop()


def accepted(sshd: OpenSshLab, name: str, since: int) -> str:
    """The method sshd ``name`` accepted for the last login (``password`` | ``publickey``)."""
    line = sshd.sshd[name].wait_for(rf"Accepted (\w+) for {sshd.user} ", start=since)
    return line.split("Accepted ", 1)[1].split()[0]


def exercise(session: MmlSession) -> None:
    """One short reply, one paged reply read whole, one refused command."""
    response = session.run(LST)
    assert response.ok, response.raw
    assert [r["Parameter ID"] for r in response.records] == ["P978"] * 16
    paged = session.run("LST SFP:;")
    assert paged.ok and len(paged.reports) > 1  # "To be continued..." pages followed
    assert {r["Parameter ID"] for r in paged.records} >= {"P978", "P001"}
    refused = session.run("LST SFP: ID=P999;")
    assert refused.retcode == 1006


@pytest.mark.parametrize("auth", ["password", "key"])
@pytest.mark.parametrize("pty", ["cooked", "raw"])
def test_mml_over_a_forced_command_in_a_pty(sshd: OpenSshLab, pty: str, auth: str) -> None:
    since = sshd.sshd[pty].mark()
    transcript = Transcript()
    with MmlSession(sshd.host(pty, auth), transcript=transcript) as session:
        exercise(session)
        assert session.autonomous == [] and session.stale == []
    assert accepted(sshd, pty, since) == {"password": "password", "key": "publickey"}[auth]
    # The cooked pty echoes LGI with the password: masked like everything the session keeps.
    assert sshd.password not in transcript.text()
    assert "\r\r" not in "".join(e.text for e in transcript.entries)


def test_cooked_pty_really_sends_cr_cr_lf(sshd: OpenSshLab) -> None:
    """The premise of the cooked tests: without normalising, the bytes carry CR CR LF."""
    t = make_transport(sshd.host("cooked", "password"))
    t.open()
    try:
        t.write(f'LGI:OP="{sshd.user}",PWD="{sshd.password}";\r\n'.encode())
        data = read_until(t, b"END\r\r\n")
    finally:
        t.close()
    assert b"RETCODE = 0" in data and b"\r\r\n" in data


@pytest.mark.parametrize("auth", ["password", "key"])
def test_tunnel_through_sshd_as_jump_host(sshd: OpenSshLab, auth: str) -> None:
    since = sshd.sshd["cooked"].mark()
    with MmlSession(sshd.tunnel_host(auth)) as session:
        exercise(session)
    assert accepted(sshd, "cooked", since) == {"password": "password", "key": "publickey"}[auth]


def test_tunnel_to_a_port_sshd_does_not_permit(sshd: OpenSshLab) -> None:
    host = sshd.tunnel_host("key", port=sshd.sshd["raw"].port)  # PermitOpen: the MML port only
    with pytest.raises(TransportError, match="could not open a tunnel"):
        MmlSession(host).open()


def test_wrong_password_is_refused_without_echoing_it(sshd: OpenSshLab) -> None:
    host = sshd.host("cooked", "password", password=Secret("wrong-pw-4711"))
    with pytest.raises(TransportError, match=f"authentication failed for user '{sshd.user}'") as e:
        MmlSession(host).open()
    assert "wrong-pw-4711" not in str(e.value)


def test_unknown_sshd_host_key_is_refused(sshd: OpenSshLab) -> None:
    other = sshd.dir / "known_hosts_empty"
    other.write_text("")
    host = dataclasses.replace(sshd.host("raw", "key"), known_hosts=other)
    with pytest.raises(HostKeyError, match="unknown SSH host key"):
        MmlSession(host).open()


def test_mml_tool_check_through_real_sshd(
    sshd: OpenSshLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mml-tool check`` over the cooked pty, the raw one and the tunnel: all read P978."""
    common = {"hostname": "127.0.0.1", "ne_name": "UAP-1", "known_hosts": str(sshd.known_hosts)}
    inventory = {
        "defaults": {"username": sshd.user, "password": "${PTY_TEST_PASSWORD}", "timeout": 10},
        "hosts": {
            "cooked": {**common, "port": sshd.sshd["cooked"].port},
            "raw": {**common, "port": sshd.sshd["raw"].port, "key_file": str(sshd.client_key)},
            "tunnel": {
                **common,
                "transport": "ssh-tunnel",
                "port": sshd.tcp_port,
                "jump": {
                    "hostname": "127.0.0.1",
                    "port": sshd.sshd["cooked"].port,
                    "username": sshd.user,
                    "key_file": str(sshd.client_key),
                },
            },
        },
    }
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory))
    monkeypatch.setenv("PTY_TEST_PASSWORD", sshd.password)
    report = tmp_path / "check.json"
    result = CliRunner().invoke(
        cli, ["check", "-i", str(path), "--report", f"json:{report}"], catch_exceptions=False
    )
    assert result.exit_code == 100, result.output  # the lab's P978 bit 0 is 1: non-compliant
    assert sshd.password not in result.output
    results = json.loads(report.read_text())["results"]
    assert {(r["host"], r["status"]) for r in results} == {
        ("cooked", "fail"),
        ("raw", "fail"),
        ("tunnel", "fail"),
    }
