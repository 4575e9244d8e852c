"""The UAP9600 simulator over real loopback TCP and SSH: frames, state, faults, clients."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
import yaml
from conftest import WatchedOutput

from mml_tool.errors import ConfigError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import Lab, load_lab_config, run_lab_foreground
from mml_tool.lab.uap import FaultConfig, NodeConfig, SfpStore, UapNode, UapServer

PASSWORD = "Lab-pw_0123"
USER = "admin"
LGI = f'LGI:OP="{USER}",PWD="{PASSWORD}";'
END = b"---    END\r\n"
HEADER_RE = re.compile(r"\+\+\+    (\S+)        \d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
SERIAL_RE = re.compile(r"O&M    #(\d+)")
ECHO_RE = re.compile(r"%%(.*)%%")
RETCODE_RE = re.compile(r"RETCODE = (\d+)  (\S[^\r\n]*)")
MEID_PREFIX = "/*1879106888 MEID=005*/"


def _nodes(tmp: Path) -> list[NodeConfig]:
    return [
        NodeConfig("t-en", serial_start=100, state_file=tmp / "t-en.json"),
        NodeConfig("v-zh", layout="vertical", language="zh", meid=7),
        NodeConfig("val", layout="value", hex_line=True, unknown_param="empty"),
        NodeConfig("slow", faults=FaultConfig(latency=0.3)),
        NodeConfig("drop2", faults=FaultConfig(drop_after=2)),
        NodeConfig("midcut", faults=FaultConfig(drop_mid_response="LST SFP")),
        NodeConfig("garbage", faults=FaultConfig(garbage_reply="lst sfp")),
        NodeConfig("neverend", faults=FaultConfig(never_end="LST SFP")),
        NodeConfig("alarms", faults=FaultConfig(alarms=True)),
        NodeConfig("locked", faults=FaultConfig(login_refused=True)),
        NodeConfig("dropmod", faults=FaultConfig(drop_after_mod=True)),
        NodeConfig("once", faults=FaultConfig(garbage_reply="*", times=1)),
        NodeConfig("echo", ssh_echo=True),
        NodeConfig("pfx-serial", echo_prefix="{serial}", serial_start=500),
        NodeConfig("pfx-meid", echo_prefix=MEID_PREFIX),
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UapServer]:
    tmp = tmp_path_factory.mktemp("uap")
    srv = UapServer()
    srv.start(_nodes(tmp), username=USER, password=PASSWORD)
    yield srv
    srv.stop()


class Wire:
    """A minimal MML client over any socket-like object, reading with deadlines."""

    def __init__(self, conn: socket.socket | paramiko.Channel) -> None:
        self.conn = conn
        self.buf = b""
        conn.settimeout(0.2)

    def send(self, text: str, end: str = "\r\n") -> None:
        self.conn.sendall((text + end).encode())

    def _fill(self, deadline: float) -> bool:
        """Read once; False on EOF. Raises TimeoutError after the deadline."""
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete reply; got {self.buf!r}")
        try:
            data = self.conn.recv(65536)
        except TimeoutError:
            return True
        if not data:
            return False
        self.buf += data
        return True

    def report(self, timeout: float = 5.0) -> str:
        """The next complete report (up to and including its END line)."""
        deadline = time.monotonic() + timeout
        while END not in self.buf:
            if not self._fill(deadline):
                raise EOFError(f"closed; got {self.buf!r}")
        i = self.buf.index(END) + len(END)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out.decode()

    def reply(self, timeout: float = 5.0) -> list[str]:
        """Every report of one (possibly paged) reply."""
        reports = [self.report(timeout)]
        while "To be continued..." in reports[-1]:
            reports.append(self.report(timeout))
        return reports

    def run(self, command: str) -> str:
        self.send(command)
        return "".join(self.reply())

    def until_closed(self, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        return self.buf

    def until(self, marker: bytes, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            if not self._fill(deadline):
                raise EOFError(f"closed; got {self.buf!r}")

    def quiet_for(self, seconds: float) -> bool:
        """True when nothing arrives (and the peer stays open) for ``seconds``."""
        deadline = time.monotonic() + seconds
        before = len(self.buf)
        while time.monotonic() < deadline:
            if not self._fill(deadline + 1):
                return False
        return len(self.buf) == before


def tcp(server: UapServer, name: str) -> Wire:
    return Wire(socket.create_connection(("127.0.0.1", server.node(name).tcp_port), timeout=5))


def logged_in(server: UapServer, name: str) -> Wire:
    wire = tcp(server, name)
    assert retcode(wire.run(LGI)) == 0
    return wire


def retcode(report: str) -> int:
    match = RETCODE_RE.search(report)
    assert match, report
    return int(match.group(1))


def check_frame(report: str, ne: str, echo: str) -> int:
    """Assert the exact frame of one report; return its serial."""
    assert report.endswith("\r\n")
    assert "\n" not in report.replace("\r\n", ""), "bare LF in a frame"
    lines = report[:-2].split("\r\n")
    header = HEADER_RE.fullmatch(lines[0])
    assert header and header.group(1) == ne, lines[0]
    serial = SERIAL_RE.fullmatch(lines[1])
    assert serial, lines[1]
    assert ECHO_RE.fullmatch(lines[2]) and lines[2] == f"%%{echo}%%"
    assert RETCODE_RE.fullmatch(lines[3]), lines[3]
    assert lines[4] == ""
    assert lines[-1] == "---    END"
    assert lines[-2] == ""
    return int(serial.group(1))


def body(report: str) -> list[str]:
    lines = report[:-2].split("\r\n")
    return lines[5:-2]


# ---------------------------------------------------------------- frames and session


def test_frame_exact_and_serial_increases(server: UapServer) -> None:
    wire = tcp(server, "t-en")
    first = wire.run(LGI)
    assert check_frame(first, "T-EN", LGI) == 100
    assert RETCODE_RE.search(first).group(0) == "RETCODE = 0  Operation succeeded"  # type: ignore[union-attr]
    reply = wire.run("LST SFP: ID=P978, BIT=0;")
    assert check_frame(reply, "T-EN", "LST SFP: ID=P978, BIT=0;") == 101
    assert body(reply) == [
        "Software parameter",
        "------------------",
        "Parameter ID  Bit  Bit value",
        "",
        "P978          0    1",
        "(Number of results = 1)",
    ]
    assert check_frame(wire.run("LST SFP: ID=P001;"), "T-EN", "LST SFP: ID=P001;") == 102


def echo_serial(report: str, command: str) -> int:
    """The running number of a ``%%<n><command>%%`` echo (``echo_prefix="{serial}"``)."""
    match = re.search(r"^%%([0-9]+)(.*)%%\r$", report, re.M)
    assert match and match.group(2) == command, report
    return int(match.group(1))


def test_echo_prefix_literal_is_echoed_before_the_command(server: UapServer) -> None:
    wire = tcp(server, "pfx-meid")
    check_frame(wire.run(LGI), "PFX-MEID", MEID_PREFIX + LGI)
    lst = "LST SFP: ID=P978, BIT=0;"
    reply = wire.run(lst)
    check_frame(reply, "PFX-MEID", MEID_PREFIX + lst)
    assert "%%/*1879106888 MEID=005*/LST SFP: ID=P978, BIT=0;%%\r\n" in reply
    assert "P978          0    1" in reply
    failed = wire.run("LST SFP: ID=P978, BIT=0")  # no ';': RETCODE 1002, still prefixed
    check_frame(failed, "PFX-MEID", MEID_PREFIX + "LST SFP: ID=P978, BIT=0")
    assert retcode(failed) == 1002


def test_echo_prefix_serial_is_a_running_number_per_connection(server: UapServer) -> None:
    wire = tcp(server, "pfx-serial")
    first = wire.run(LGI)
    assert check_frame(first, "PFX-SERIAL", f"{echo_serial(first, LGI)}{LGI}") == 500
    n = echo_serial(first, LGI)
    assert 100000 <= n <= 999999
    lst = "LST SFP: ID=P978;"
    reply = wire.run(lst)
    assert check_frame(reply, "PFX-SERIAL", f"{n + 1}{lst}") == 501  # O&M serial: its own count
    wire.send("LST SFP:;")
    pages = wire.reply()
    assert len(pages) >= 2
    assert {echo_serial(page, "LST SFP:;") for page in pages} == {n + 2}  # one per command
    assert echo_serial(wire.run("LGO:;"), "LGO:;") == n + 3
    other = tcp(server, "pfx-serial").run(LGI)  # a new connection starts its own count
    assert check_frame(other, "PFX-SERIAL", f"{echo_serial(other, LGI)}{LGI}") == 500


def test_echo_prefix_over_ssh(server: UapServer, tmp_path: Path) -> None:
    client = ssh_client(server, server.node("pfx-meid").ssh_port, tmp_path)
    try:
        wire = Wire(client.invoke_shell())
        wire.send(LGI)
        check_frame(wire.report(), "PFX-MEID", MEID_PREFIX + LGI)
    finally:
        client.close()


def test_echo_prefix_is_checked() -> None:
    assert NodeConfig("n", echo_prefix="/*{serial} MEID=5*/").echo_prefix == "/*{serial} MEID=5*/"
    with pytest.raises(ConfigError, match=r"unknown token '\{serail\}'"):
        NodeConfig("n", echo_prefix="{serail}")
    for bad in ("a%%b", "a\r\nb"):
        with pytest.raises(ConfigError, match="echo_prefix must not hold"):
            NodeConfig("n", echo_prefix=bad)
    with pytest.raises(ConfigError, match="echo_prefix must be a string, not dict"):
        NodeConfig("n", echo_prefix={"serial": None})  # type: ignore[arg-type]


def test_login_required_and_wrong_password(server: UapServer) -> None:
    wire = tcp(server, "t-en")
    before = wire.run("LST SFP: ID=P978;")
    assert retcode(before) == 1 and "Please log in first" in before
    assert body(before) == []
    bad = wire.run('LGI:OP="admin",PWD="wrong";')
    assert "RETCODE = 1007  Incorrect user name or password" in bad
    assert retcode(wire.run('LGI:OP="admin";')) == 1003
    assert retcode(wire.run("LST SFP: ID=P978;")) == 1
    assert retcode(wire.run(LGI)) == 0
    assert retcode(wire.run("LST SFP: ID=P978;")) == 0


def test_partial_lines_several_commands_and_lf(server: UapServer) -> None:
    wire = tcp(server, "t-en")
    for part in (LGI[:5], LGI[5:17], LGI[17:] + "\r", "\n"):
        wire.conn.sendall(part.encode())
    assert retcode(wire.report()) == 0
    wire.conn.sendall(b"LST SFP: ID=P978;\nlst sfp: id=p978, bit=0;\nSHOW VERSION\n")
    first, second, third = wire.report(), wire.report(), wire.report()
    assert ECHO_RE.search(first).group(1) == "LST SFP: ID=P978;"  # type: ignore[union-attr]
    assert "P978          0    1" in second and retcode(second) == 0
    assert "RETCODE = 1002  Invalid command format: end the command with a semicolon" in third


def test_reg_ne_use_me_and_lgo_closes(server: UapServer) -> None:
    wire = logged_in(server, "v-zh")
    assert retcode(wire.run('REG NE:NAME="V-ZH";')) == 0
    assert "RETCODE = 1009  网元 UAP-9 不存在" in wire.run('REG NE:NAME="UAP-9";')
    assert retcode(wire.run("USE ME:MEID=7;")) == 0
    assert retcode(wire.run("USE ME:MEID=8;")) == 1009
    assert retcode(wire.run('UNREG NE:NAME="V-ZH";')) == 0
    assert "RETCODE = 0  操作成功" in wire.run('LGO:OP="admin";')
    assert wire.until_closed() == b""


# ---------------------------------------------------------------- LST SFP layouts


def test_table_layout_prints_every_bit(server: UapServer) -> None:
    lines = body(logged_in(server, "t-en").run("LST SFP: ID=P978;"))
    assert lines[2] == "Parameter ID  Bit  Bit value"
    rows = [line.split() for line in lines[4:-1]]
    assert rows == [["P978", str(b), "1" if b == 0 else "0"] for b in range(16)]
    assert lines[-1] == "(Number of results = 16)"


def test_vertical_layout_chinese(server: UapServer) -> None:
    wire = logged_in(server, "v-zh")
    one = wire.run("LST SFP: ID=P978, BIT=0;")
    assert "RETCODE = 0  操作成功" in one
    assert body(one) == [
        "软件参数",
        "--------",
        "软参编号  =  P978",
        "  比特位  =  0",
        "比特位值  =  1",
        "(结果个数 = 1)",
    ]
    every = wire.run("LST SFP: ID=P917;")
    assert every.count("(结果个数 = 1)") == 16
    assert "比特位  =  13\r\n比特位值  =  1" in every


def test_value_layout_hex_and_empty_result(server: UapServer) -> None:
    wire = logged_in(server, "val")
    assert body(wire.run("LST SFP: ID=P007;")) == [
        "Software parameter",
        "------------------",
        "     Parameter ID  =  P007",
        "  Parameter value  =  255",
        "Hexadecimal value  =  0x00FF",
        "(Number of results = 1)",
    ]
    empty = wire.run("LST SFP: ID=P999;")
    assert retcode(empty) == 0 and body(empty) == ["No matching result is found"]


def test_lst_unknown_parameter_is_an_error_by_default(server: UapServer) -> None:
    reply = logged_in(server, "t-en").run("LST SFP: ID=P999;")
    assert "RETCODE = 1006  Software parameter P999 does not exist" in reply


@pytest.mark.parametrize("node", ["t-en", "v-zh", "val"])
def test_list_all_is_paged(server: UapServer, node: str) -> None:
    wire = logged_in(server, node)
    wire.send("LST SFP:;")
    reports = wire.reply()
    params = server.node(node).store.ids()
    assert len(reports) == -(-len(params) // 20) >= 2
    serials = {check_frame(r, server.node(node).config.ne_name, "LST SFP:;") for r in reports}
    assert len(serials) == 1, "the pages of one reply share the serial"
    for r in reports[:-1]:
        assert r.endswith("\r\nTo be continued...\r\n\r\n---    END\r\n")
    assert "To be continued" not in reports[-1]
    seen = set(re.findall(r"\bP\d{3}\b", "".join(reports)))
    assert seen == set(params)


# ---------------------------------------------------------------- MOD SFP


def test_mod_changes_state_and_persists(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with UapServer() as srv:
        srv.start([NodeConfig("n1", state_file=state)], username=USER, password=PASSWORD)
        assert json.loads(state.read_text())["params"]["P978"] == 1
        wire = logged_in(srv, "n1")
        mod = "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
        assert check_frame(done := wire.run(mod), "N1", mod) and retcode(done) == 0
        assert body(done) == []
        assert "P978          0    0" in wire.run("LST SFP: ID=P978, BIT=0;")
        assert json.loads(state.read_text())["params"]["P978"] == 0
        assert retcode(wire.run("mod sfp:id=p978,modtype=p1,bit=3,bitval=1;")) == 0
        assert srv.node("n1").store.get("P978") == 8
    assert not list(tmp_path.glob("*.tmp"))
    assert SfpStore({"P978": 1}, state).get("P978") == 8  # the file wins over the config


@pytest.mark.parametrize(
    ("command", "code", "text"),
    [
        ("MOD SFP: ID=P999, MODTYPE=P1, BIT=0, BITVAL=0;", 1006, "Software parameter P999"),
        ("MOD SFP: ID=P978, MODTYPE=P1, BIT=16, BITVAL=0;", 1004, "BIT: must be 0..15"),
        ("MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=2;", 1004, "BITVAL: must be 0..1"),
        ("MOD SFP: ID=P978, MODTYPE=P1, BIT=x, BITVAL=0;", 1004, "BIT: a number"),
        ("MOD SFP: ID=P978, MODTYPE=P2, BIT=0, BITVAL=0;", 1004, "only P1"),
        ("MOD SFP: ID=P978, MODTYPE=P1, BIT=0;", 1003, "parameter: BITVAL"),
        ("MOD SFP: MODTYPE=P1, BIT=0, BITVAL=0;", 1003, "parameter: ID"),
        ("MOD SFP: ID=P978, BIT=0, BITVAL=0;", 1003, "parameter: MODTYPE"),
        ("MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0, X=1;", 1005, "Parameter X"),
        ("LST SFP: ID=P978, BIT=99;", 1004, "BIT: must be 0..15"),
        ("RMV SFP: ID=P978;", 1001, "Command not supported: RMV SFP"),
        ('LST SFP: ID="P978;', 1002, "unbalanced quotes"),
    ],
)
def test_command_errors(server: UapServer, command: str, code: int, text: str) -> None:
    reply = logged_in(server, "t-en").run(command)
    assert retcode(reply) == code and text in reply, reply
    assert body(reply) == []
    assert server.node("t-en").store.get("P978") == 1


# ---------------------------------------------------------------- faults


def test_fault_latency(server: UapServer) -> None:
    wire = tcp(server, "slow")
    started = time.monotonic()
    wire.run(LGI)
    assert time.monotonic() - started >= 0.3


def test_fault_drop_after_n_commands(server: UapServer) -> None:
    wire = logged_in(server, "drop2")
    assert retcode(wire.run("LST SFP: ID=P978;")) == 0
    assert wire.until_closed() == b""


def test_fault_drop_mid_response(server: UapServer) -> None:
    wire = logged_in(server, "midcut")
    wire.send("LST SFP: ID=P978;")
    rest = wire.until_closed()
    assert rest.startswith(b"+++    MIDCUT") and b"---    END" not in rest


def test_fault_garbage_reply(server: UapServer) -> None:
    wire = logged_in(server, "garbage")
    reply = wire.run("LST SFP: ID=P978;")
    assert "+++" not in reply and "RETCODE" in reply and reply.endswith("---    END\r\n")
    assert retcode(wire.run("MOD SFP: ID=P978, MODTYPE=P1, BIT=5, BITVAL=0;")) == 0


def test_fault_never_end_keeps_connection_open(server: UapServer) -> None:
    wire = logged_in(server, "neverend")
    wire.send("LST SFP: ID=P978;")
    wire.until(b"(Number of results = 16)\r\n\r\n")
    assert wire.quiet_for(0.4)
    assert wire.buf.startswith(b"+++    NEVEREND") and b"(Number of results = 16)" in wire.buf
    assert b"---    END" not in wire.buf
    wire.send("LST SFP: ID=P978;")
    assert wire.quiet_for(0.2)


def test_fault_alarms_interleaved(server: UapServer) -> None:
    wire = tcp(server, "alarms")
    wire.send(LGI)
    alarm = wire.report()
    lines = alarm.split("\r\n")
    assert HEADER_RE.fullmatch(lines[0]) and re.fullmatch(r"ALARM  #\d+  Major  Fault", lines[1])
    assert alarm.endswith("\r\n\r\n---    END\r\n")
    assert retcode(wire.report()) == 0
    wire.send("LST SFP: ID=P978;")
    second_alarm, answer = wire.report(), wire.report()
    assert int(second_alarm.split("#")[1].split()[0]) > int(lines[1].split("#")[1].split()[0])
    assert check_frame(answer, "ALARMS", "LST SFP: ID=P978;")


def test_fault_login_refused(server: UapServer) -> None:
    reply = tcp(server, "locked").run(LGI)
    assert "RETCODE = 1008  The user is locked. Contact the administrator" in reply


def test_fault_drop_after_mod_applies_the_change(server: UapServer) -> None:
    wire = logged_in(server, "dropmod")
    wire.send("MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;")
    assert wire.until_closed() == b""
    assert server.node("dropmod").store.get("P978") == 0


def test_fault_times_bounds_a_fault(server: UapServer) -> None:
    wire = logged_in(server, "once")
    assert "+++" not in wire.run("LST SFP: ID=P978;")
    assert retcode(wire.run("LST SFP: ID=P978;")) == 0


# ---------------------------------------------------------------- SSH


def ssh_client(server: UapServer, port: int, tmp_path: Path, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line(port) + "\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=port,
        username=USER,
        password=password,
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
    )
    return client


def test_ssh_shell_frames(server: UapServer, tmp_path: Path) -> None:
    node = server.node("t-en")
    client = ssh_client(server, node.ssh_port, tmp_path)
    try:
        wire = Wire(client.invoke_shell())
        wire.send("")  # netmiko and people press Enter first: no answer, no prompt
        assert check_frame(wire.run(LGI), "T-EN", LGI)
        reply = wire.run("LST SFP: ID=P978;")
        assert (
            check_frame(reply, "T-EN", "LST SFP: ID=P978;") and "(Number of results = 16)" in reply
        )
        assert wire.buf == b""
        wire.send("LGO:;")
        assert retcode(wire.report()) == 0
        assert wire.until_closed() == b""
    finally:
        client.close()


def test_ssh_echo_node_echoes_typed_line(server: UapServer, tmp_path: Path) -> None:
    client = ssh_client(server, server.node("echo").ssh_port, tmp_path)
    try:
        wire = Wire(client.invoke_shell())
        wire.send(LGI)
        assert wire.report().startswith(LGI + "\r\n+++    ECHO")
    finally:
        client.close()


def test_ssh_wrong_password_refused(server: UapServer, tmp_path: Path) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        ssh_client(server, server.node("t-en").ssh_port, tmp_path, password="nope")


def test_direct_tcpip_forwards_only_to_lab_tcp_ports(server: UapServer, tmp_path: Path) -> None:
    jump = ssh_client(server, server.node("t-en").ssh_port, tmp_path)
    try:
        transport = jump.get_transport()
        assert transport is not None
        target = ("127.0.0.1", server.node("v-zh").tcp_port)
        wire = Wire(transport.open_channel("direct-tcpip", target, ("127.0.0.1", 0)))
        assert check_frame(wire.run(LGI), "V-ZH", LGI)
        assert "软参编号" in wire.run("LST SFP: ID=P978, BIT=0;")
        with pytest.raises(paramiko.ChannelException):
            transport.open_channel("direct-tcpip", ("127.0.0.1", 22), ("127.0.0.1", 0))
        with pytest.raises(paramiko.ChannelException):
            ssh_port = ("127.0.0.1", server.node("v-zh").ssh_port)
            transport.open_channel("direct-tcpip", ssh_port, ("127.0.0.1", 0))
    finally:
        jump.close()


def test_netmiko_generic_driver(server: UapServer) -> None:
    netmiko = pytest.importorskip("netmiko")
    for name, verify in (("t-en", False), ("echo", True)):
        conn = netmiko.ConnectHandler(
            device_type="generic",
            host="127.0.0.1",
            port=server.node(name).ssh_port,
            username=USER,
            password=PASSWORD,
            fast_cli=True,
        )
        try:
            ne = server.node(name).config.ne_name
            out = conn.send_command(LGI, expect_string=r"---\s+END", cmd_verify=verify)
            assert "RETCODE = 0  Operation succeeded" in out
            out = conn.send_command(
                "LST SFP: ID=P978, BIT=0;", expect_string=r"---\s+END", cmd_verify=verify
            )
            lines = out.strip().splitlines()
            assert HEADER_RE.fullmatch(lines[0]) and lines[0].split()[1] == ne, out
            assert lines[2] == "%%LST SFP: ID=P978, BIT=0;%%" and lines[-1] == "---    END"
        finally:
            conn.disconnect()


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client not installed")
def test_openssh_client(server: UapServer, tmp_path: Path) -> None:
    port = server.node("t-en").ssh_port
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line(port) + "\n")
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    askpass.chmod(0o700)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    env.pop("DISPLAY", None)
    result = subprocess.run(
        [
            "ssh",
            "-T",
            "-F",
            "/dev/null",
            "-p",
            str(port),
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "BatchMode=no",
            f"{USER}@127.0.0.1",
        ],
        input=f"{LGI}\r\nLST SFP: ID=P978, BIT=0;\r\nLGO;\r\n".encode(),
        capture_output=True,
        env=env,
        timeout=15,
        check=False,
    )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert out.count("---    END\r\n") == 3 and "P978          0    1\r\n" in out


# ---------------------------------------------------------------- scale


def test_two_hundred_nodes_and_concurrent_sessions() -> None:
    with UapServer() as srv:
        nodes = srv.start(
            [NodeConfig(f"uap-{i}") for i in range(200)], username=USER, password=PASSWORD
        )
        assert len({n.ssh_port for n in nodes} | {n.tcp_port for n in nodes}) == 400
        errors: list[BaseException] = []

        def session(node: UapNode) -> None:
            try:
                wire = logged_in(srv, node.name)
                assert "P978          0    1" in wire.run("LST SFP: ID=P978, BIT=0;")
                wire.run("LGO;")
            except BaseException as exc:  # collected and re-raised in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=session, args=(n,)) for n in nodes[::2]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert not errors, errors[0]


# ---------------------------------------------------------------- lab.py


def test_load_lab_config(tmp_path: Path) -> None:
    cfg = tmp_path / "LAB.yaml"
    cfg.write_text(
        "defaults: {language: zh}\n"
        "nodes:\n"
        "  uap-a: {layout: vertical, params: {P978: 0}, faults: {latency: 0.1}}\n"
        "  uap-b: {ne_name: B, language: en, state_file: s/b.json, replace_params: true,\n"
        "          params: {p978: 1}}\n"
    )
    a, b = load_lab_config(cfg)
    assert (a.name, a.ne_name, a.layout, a.language, a.meid) == (
        "uap-a",
        "UAP-A",
        "vertical",
        "zh",
        1,
    )
    assert a.params["P978"] == 0 and "P001" in a.params and a.faults.latency == 0.1
    assert (b.ne_name, b.language, b.params, b.meid) == ("B", "en", {"P978": 1}, 2)
    assert b.state_file == tmp_path / "s" / "b.json"
    cfg.write_text(
        "nodes:\n"
        '  uap-a: {echo_prefix: "{serial}"}\n'
        '  uap-b: {echo_prefix: "/*1879106888 MEID=005*/"}\n'
        "  uap-c: {}\n"
    )
    assert [n.echo_prefix for n in load_lab_config(cfg)] == [
        "{serial}",
        "/*1879106888 MEID=005*/",
        "",
    ]
    cfg.write_text("nodes:\n  uap-a:\n    echo_prefix: {serial}\n")  # unquoted: a mapping
    with pytest.raises(ConfigError, match=r"node uap-a: .*echo_prefix must be a string.*quote"):
        load_lab_config(cfg)
    cfg.write_text("nodes:\n  uap-a: {faults: {lateny: 1}}\n")
    with pytest.raises(ConfigError, match=r"LAB\.yaml: node uap-a: unknown field 'faults\.lateny'"):
        load_lab_config(cfg)
    cfg.write_text("nodes:\n  uap-a: {layuot: table}\n")
    with pytest.raises(ConfigError, match=r"LAB\.yaml: node uap-a: unknown field 'layuot'"):
        load_lab_config(cfg)
    cfg.write_text("nodes:\n  uap-a: {layout: fancy}\n")
    with pytest.raises(ConfigError, match=r"uap-a: .*layout must be one of"):
        load_lab_config(cfg)


def test_lab_writes_inventory_known_hosts_and_env(tmp_path: Path) -> None:
    with Lab(2, with_gateway=False, workdir=tmp_path / "work") as lab:
        inv = lab.write_inventory(tmp_path / "inv" / "lab.yaml")
        data = yaml.safe_load(inv.read_text())
        assert set(data["hosts"]) == {"uap-1", "uap-2"}
        host = data["hosts"]["uap-1"]
        assert host["port"] == lab.node("uap-1").ssh_port and host["groups"] == ["lab"]
        assert host["ne_name"] == "UAP-1" and "lab" in data["groups"]
        assert data["defaults"]["password"] == "${MML_LAB_PASSWORD}"
        known = (inv.parent / data["defaults"]["known_hosts"]).read_text()
        assert f"[127.0.0.1]:{host['port']} ssh-ed25519 " in known
        env = inv.parent / "lab.env"
        assert stat.S_IMODE(env.stat().st_mode) == 0o600
        password = lab.password.reveal()
        assert env.read_text() == f"export MML_LAB_PASSWORD='{password}'\n"
        assert password not in inv.read_text() and password not in known
        wire = tcp(lab.server, "uap-1")
        assert retcode(wire.run(f'LGI:OP="admin",PWD="{password}";')) == 0
        assert lab.one_way_video_ready("uap-1") is False
        wire.run("MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;")
        assert lab.one_way_video_ready("uap-1") is True
    assert json.loads((tmp_path / "work/state/uap-1.json").read_text())["params"]["P978"] == 0
    hosts = load_inventory(inv, env={"MML_LAB_PASSWORD": password}).hosts
    assert hosts["uap-2"].port == data["hosts"]["uap-2"]["port"]
    assert hosts["uap-2"].password is not None and hosts["uap-2"].password.reveal() == password


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_lab_env_quotes_any_password_for_the_shell(tmp_path: Path) -> None:
    odd = 'it\'s $(touch pwned) `x` \\ "q"'
    with Lab(1, password=odd, with_gateway=False, workdir=tmp_path / "work") as lab:
        inv = lab.write_inventory(tmp_path / "inventory.yaml")
    env = inv.parent / "lab.env"
    result = subprocess.run(
        ["sh", "-c", f'. "{env}" && printf %s "$MML_LAB_PASSWORD"'],
        capture_output=True,
        cwd=tmp_path,
        check=True,
        timeout=10,
    )
    assert result.stdout.decode() == odd
    assert not (tmp_path / "pwned").exists()


def test_run_lab_foreground_prints_one_ready_line(tmp_path: Path) -> None:
    out, stop = WatchedOutput(), threading.Event()
    inv = tmp_path / "inventory.yaml"
    runner = threading.Thread(
        target=run_lab_foreground,
        kwargs={
            "nodes": 2,
            "inventory": inv,
            "with_gateway": False,
            "out": out,
            "stop_event": stop,
        },
    )
    runner.start()
    try:
        assert out.ready.wait(10)
        assert out.text.count("\n") == 1
        assert out.text.startswith("lab ready: 2 UAP nodes (SSH 127.0.0.1:")
        assert f"inventory: {inv}; source {tmp_path / 'lab.env'} for credentials" in out.text
        assert inv.exists() and (tmp_path / "lab_host_key").exists()
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_lab_with_gateway_links_agents_to_nodes(tmp_path: Path) -> None:
    pytest.importorskip("mml_tool.lab.gateway")
    with Lab(2, workdir=tmp_path / "work") as lab:
        inv = lab.write_inventory(tmp_path / "inventory.yaml")
        data = yaml.safe_load(inv.read_text())
        gw = data["gateways"][data["hosts"]["uap-2"]["gateway"]]
        assert gw["agent_id"] == "102" and gw["agent_password"] == "${CCGW_AGENT_PASSWORD}"
        assert gw["url"].startswith("https://127.0.0.1:") and (tmp_path / gw["ca_bundle"]).exists()
        env = (tmp_path / "lab.env").read_text()
        assert f"export CCGW_AGENT_PASSWORD='{lab.agent_password.reveal()}'" in env
        assert lab.agent_password.reveal() not in inv.read_text()
        assert ", gateway https://127.0.0.1:" in lab.ready_line(inv)


def test_shipped_lab_config_is_valid() -> None:
    """The README's lab walk-through starts from this file: it must keep loading."""
    path = Path(__file__).parents[1] / "inventories" / "lab-config.yaml"
    nodes = {n.name: n for n in load_lab_config(path)}
    assert list(nodes) == ["uap-1", "uap-2", "uap-3", "uap-4", "uap-5"]
    assert (nodes["uap-2"].layout, nodes["uap-2"].language) == ("vertical", "zh")
    assert nodes["uap-3"].params["P978"] == 0
    assert nodes["uap-5"].faults.login_refused
