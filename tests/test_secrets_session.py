"""The MML password never appears in output, logs, transcripts, errors or files."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
from conftest import TRANSPORTS, RunningLab, StartLab

from mml_tool.errors import LoginError, MmlTimeout, MmlToolError, TransportError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import PASSWORD_ENV
from mml_tool.lab.uap import FaultConfig, NodeConfig
from mml_tool.mml.session import MmlSession, Transcript
from mml_tool.secret import Secret

SECRET = "S3cr3t-P4ss-XYZ"
WRONG = "Wr0ng-P4ss-XYZ"


@pytest.fixture(scope="module")
def sl(start_lab: StartLab) -> RunningLab:
    nodes = [
        NodeConfig("uap-echo", ssh_echo=True),  # echoes the typed LGI, password included
        NodeConfig("uap-stuck", faults=FaultConfig(never_end="LGI")),
        NodeConfig("uap-locked", faults=FaultConfig(login_refused=True)),
    ]
    return start_lab(nodes, password=SECRET)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_nowhere(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text and WRONG not in text


def error_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def check_outputs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, *more: str
) -> None:
    out, err = capsys.readouterr()
    assert caplog.records  # DEBUG logs were captured
    assert_nowhere(out, err, caplog.text, *more)
    assert_nowhere(*(str(r.args) for r in caplog.records))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_login_success(
    sl: RunningLab,
    transport: str,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    transcript = Transcript()
    host = sl.host("uap-echo", transport)
    assert host.password is not None and host.password.reveal() == SECRET
    with MmlSession(host, transcript=transcript) as s:
        response = s.run("LST SFP: ID=P978;")
    assert 'PWD="*****"' in transcript.text()
    transcript.write(tmp_path / "t.log")
    files = (tmp_path / "t.log").read_text()
    objects = [repr(response), repr(s.autonomous), repr(host), repr(sl.inventory)]
    check_outputs(capsys, debug_logs, transcript.text(), files, *objects)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_login_failure(
    sl: RunningLab,
    transport: str,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    transcript = Transcript()
    host = sl.host("uap-echo", transport, password=Secret(WRONG))
    with pytest.raises(MmlToolError) as info:
        MmlSession(host, transcript=transcript).open()
    # SSH refuses the password before MML sees it; over TCP the element refuses the LGI.
    assert isinstance(info.value, TransportError if transport == "ssh" else LoginError)
    check_outputs(capsys, debug_logs, transcript.text(), *error_texts(info.value))
    with pytest.raises(LoginError) as locked:
        MmlSession(sl.host("uap-locked", transport), transcript=transcript).open()
    check_outputs(capsys, debug_logs, transcript.text(), *error_texts(locked.value))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timeout_during_login(
    sl: RunningLab,
    transport: str,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    transcript = Transcript()
    with pytest.raises(MmlTimeout) as info:
        MmlSession(sl.host("uap-stuck", transport, timeout=1), transcript=transcript).open()
    assert 'PWD="*****"' in str(info.value)  # the reply's echo is shown, masked
    check_outputs(capsys, debug_logs, transcript.text(), *error_texts(info.value))


def test_trust_on_first_use(
    sl: RunningLab,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    kh = tmp_path / "known_hosts"
    host = sl.host("uap-echo", "ssh", known_hosts=kh, trust_on_first_use=True)
    with MmlSession(host) as s:
        assert s.run("LST SFP: ID=P978;").ok
    assert kh.read_text().startswith("[127.0.0.1]:")
    check_outputs(capsys, debug_logs, kh.read_text())


def test_inventory_objects_never_show_the_password(sl: RunningLab) -> None:
    inv = load_inventory(sl.inventory_path, env={PASSWORD_ENV: SECRET})
    assert inv.hosts["uap-echo"].password == Secret(SECRET)
    assert_nowhere(repr(inv), str(inv), *(repr(h) for h in inv.hosts.values()))
    prompt_file = sl.inventory_path.with_name("prompt.yaml")
    prompt_file.write_text(
        "hosts: {p: {hostname: 127.0.0.1, username: admin, password_prompt: true}}\n"
    )
    prompted = load_inventory(prompt_file, prompt=lambda _: SECRET)
    assert prompted.hosts["p"].password == Secret(SECRET)
    assert_nowhere(repr(prompted))


def test_password_mml_cannot_carry_is_refused_unsent(sl: RunningLab) -> None:
    odd = 'S3cr3t"P4ss;XYZ'
    transcript = Transcript()
    with pytest.raises(LoginError, match="cannot carry") as info:
        MmlSession(sl.host("uap-echo", "tcp", password=Secret(odd)), transcript=transcript).open()
    assert transcript.entries == []  # nothing was sent
    assert all(odd not in text and "S3cr3t" not in text for text in error_texts(info.value))
