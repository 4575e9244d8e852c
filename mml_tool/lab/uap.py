"""A UAP9600 MML simulator: many nodes in one process, over SSH and plain TCP.

Each node (``NodeConfig``) has its own SSH port, its own plain-TCP MML port and its own state
(``SfpStore``). One ``UapServer`` serves them all with threads: one selector thread accepts on
every listening socket, then one thread per connection (plus paramiko's own thread per SSH
connection).

Wire protocol (reference/mml-protocol.md): the client sends ``VERB OBJECT: NAME=value, ...;``
followed by ``\\r\\n`` (a bare LF or CR is accepted too); partial lines are buffered and one
packet may carry several commands. A line that ends without ``;`` is answered with RETCODE 1002.
Every reply is a report rendered by ``mml_tool.lab.frames`` (CRLF line endings, UTF-8, or
GB18030 on a node with ``encoding="gb18030"``, as Chinese-language elements send; commands are
read in the node's encoding too). The
``O&M`` serial starts at ``NodeConfig.serial_start`` (random in 1000..60000 when None) on each
connection and increases by one per reply; the pages of one paged reply share the serial
(inference: the reference says the serial counts responses).

The echo line is ``%%<command>%%`` (the command as received, line breaks turned into spaces),
or ``%%<prefix><command>%%`` when the node sets ``NodeConfig.echo_prefix``: the reference shows
real elements echoing ``%%241299DSP BTSETHPORT: ...;%%`` and
``%%/*1879106888 MEID=005*/LST RT:...;%%``. The prefix is literal text, except that the token
``{serial}`` is replaced by a running number of the connection: it starts at a random number in
100000..999999 on each connection and increases by one per command received (the pages of one
paged reply share it). So ``echo_prefix="{serial}"`` gives ``%%241299LST SFP: ID=P978;%%`` and
``echo_prefix="/*1879106888 MEID=005*/"`` gives ``%%/*1879106888 MEID=005*/LST SFP: ...;%%``.
A prefix holds no line break, no ``%%`` and no ``{...}`` token other than ``{serial}``.

Text outside reports: on plain TCP, none. On SSH, none either, unless the node sets
``ssh_echo=True``: then the shell echoes the typed characters like a terminal (CR/LF as
``\\r\\n``, backspace as ``\\b \\b``), so a client must skip the echoed command line before the
``+++`` line. No banner, no prompt is ever printed; an empty line gets no answer. (So an
interactive OpenSSH user types blind on a node without ``ssh_echo``; the reply's ``%%echo%%``
shows what was received. netmiko's ``generic`` driver works with ``expect_string=r"---\\s+END"``
and ``cmd_verify=False``, or with the default ``cmd_verify=True`` on an ``ssh_echo`` node.)
Server-side SSH transports log to ``mml_tool.lab.uap.ssh`` (level CRITICAL by default).

Commands (verb and object case-insensitive; names and enumeration values too):

    LGI:OP="user",PWD="pw"[,DN=x];   required first; the same user/password as SSH
    LGO[:OP="user"];                 RETCODE 0 (even before LGI), then the connection closes
    REG NE:NAME="x";                 x must be the node's NE name
    UNREG NE[:NAME="x"];             always succeeds
    USE ME:MEID=n;                   n must be the node's meid
    LST SFP:[ID=Pnnn][,BIT=n];       layouts below; no ID lists every parameter, paged
    MOD SFP:ID=Pnnn,MODTYPE=P1,BIT=n,BITVAL=0|1;   sets one bit, persists the state file

RETCODE numbers and texts (English; Chinese nodes print the ``RETCODES_ZH`` texts):

    0     Operation succeeded                      (zh: 操作成功)
    1     Please log in first
    1001  Command not supported: <VERB OBJECT>
    1002  Invalid command format: <why>
    1003  Missing mandatory parameter: <NAME>
    1004  Invalid value of parameter <NAME>: <why>
    1005  Parameter <NAME> is not supported by this command
    1006  Software parameter <ID> does not exist    (LST with unknown_param="error", and MOD)
    1007  Incorrect user name or password
    1008  The user is locked. Contact the administrator   (fault login_refused)
    1009  NE <x> does not exist

``LST SFP`` layouts (``NodeConfig.layout``; labels in English or Chinese per
``NodeConfig.language``; block title ``Software parameter`` / ``软件参数``):

- ``table``: one block, columns ``Parameter ID  Bit  Bit value`` (``软参编号  比特位  比特位值``),
  one row per bit: all 16 bits of each parameter, or only the bit ``BIT=n`` names.
- ``vertical``: one block per bit, records ``Parameter ID`` / ``Bit`` / ``Bit value``; all 16
  bits, or only the one ``BIT=n`` names.
- ``value``: one block per parameter, records ``Parameter ID`` / ``Parameter value`` (decimal;
  ``参数值``), plus ``Hexadecimal value  =  0x0001`` (``十六进制值``) when ``hex_line`` is set.
  ``BIT`` is accepted and ignored.

A parameter is 16 bits wide (inference: the width is not public; MSOFTX3000 documents
``BIT=13``). ``LST SFP:;`` pages ``page_size`` parameters per report (default 20): every page
but the last prints ``To be continued...`` (``NodeConfig.paging="en"``). With ``paging="zh"``
pages end as on Chinese-language elements: ``仍有后续报告输出`` on every page but the last,
``共有N个报告`` on the last, and a single count line, the total, on the last page (see
``frames``); ``paging="zh-bare"`` also drops header, echo and RETCODE from later pages, as in
the UNC manual's DSP OFFLOAD example. An unknown ``ID`` answers RETCODE 1006 or, with
``unknown_param="empty"``, RETCODE 0 and ``No matching result is found``.

Faults (``FaultConfig``, per node). A *prefix* selects the commands a fault hits: the command's
``VERB OBJECT`` starts with it (``"LST SFP"``, ``"MOD"``), ``"*"`` = every command but LGI and
LGO. The command itself is always executed; only its reply is damaged. ``times`` bounds how many
times the prefix faults and ``drop_after_mod`` fire on the node (None: every time).

    latency            seconds to wait before every reply
    drop_after         close the connection after answering N commands (LGI counts)
    drop_mid_response  prefix: send the first half of the reply's bytes, then close
    garbage_reply      prefix: send non-frame text, then a ``---    END`` line
    never_end          prefix: send the reply without its ``---    END`` line, then nothing more
                       (further input is read and ignored; the connection stays open)
    alarms             before every reply, an autonomous ALARM report (frames.render_alarm)
    login_refused      LGI always answers RETCODE 1008
    drop_after_mod     a successful MOD changes the state, then the connection closes unanswered

SSH: password authentication; and public-key authentication for a node that lists OpenSSH
public keys in ``NodeConfig.authorized_keys`` (``ssh-ed25519 AAAA... comment``), for the lab's
user only. A shell opened after public-key authentication is logged in to MML as that user,
so ``LGI`` is not needed there (inference: as the client does for a key without an MML
password; whether a real element also asks for ``LGI`` then is not public). ``session``
channels with pty and shell requests; ``exec`` refused; ``direct-tcpip`` accepted only towards
this server's own plain-TCP MML ports on its own address, 127.0.0.1 or localhost (a jump host
for the ssh-tunnel transport), the bytes are relayed to that port. The host key is Ed25519,
generated at start unless ``host_key_file`` names an existing key (a missing file is created
with the generated key).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import dataclasses
import hmac
import io
import json
import logging
import os
import random
import re
import selectors
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.pkey import UnknownKeyType

from mml_tool.errors import ConfigError
from mml_tool.lab.frames import END_LINE, Block, Report, render_alarm, render_report
from mml_tool.secret import Secret

PARAM_BITS = 16
# Server-side paramiko transports log here. Clients resetting a connection is routine in a lab
# (and the point of several faults), so only CRITICAL passes unless a user lowers the level.
SSH_LOG_NAME = "mml_tool.lab.uap.ssh"
logging.getLogger(SSH_LOG_NAME).setLevel(logging.CRITICAL)
LAYOUTS = ("table", "vertical", "value")
LANGUAGES = ("en", "zh")
ENCODINGS = ("utf-8", "gb18030")
PAGINGS = ("en", "zh", "zh-bare")
ZH_MORE_LINE = "仍有后续报告输出"
PID_RE = re.compile(r"P[0-9]{1,5}")
ECHO_SERIAL_TOKEN = "{serial}"
_ECHO_TOKEN_RE = re.compile(r"\{[^{}]*\}")
MAX_COMMAND_CHARS = 4096

RC_OK = 0
RC_NOT_LOGGED_IN = 1
RC_UNSUPPORTED = 1001
RC_FORMAT = 1002
RC_MISSING = 1003
RC_BAD_VALUE = 1004
RC_UNKNOWN_NAME = 1005
RC_NO_SUCH_SFP = 1006
RC_BAD_LOGIN = 1007
RC_USER_LOCKED = 1008
RC_NO_SUCH_NE = 1009

RETCODES_EN: dict[int, str] = {
    RC_OK: "Operation succeeded",
    RC_NOT_LOGGED_IN: "Please log in first",
    RC_UNSUPPORTED: "Command not supported: {}",
    RC_FORMAT: "Invalid command format: {}",
    RC_MISSING: "Missing mandatory parameter: {}",
    RC_BAD_VALUE: "Invalid value of parameter {}",
    RC_UNKNOWN_NAME: "Parameter {} is not supported by this command",
    RC_NO_SUCH_SFP: "Software parameter {} does not exist",
    RC_BAD_LOGIN: "Incorrect user name or password",
    RC_USER_LOCKED: "The user is locked. Contact the administrator",
    RC_NO_SUCH_NE: "NE {} does not exist",
}
RETCODES_ZH: dict[int, str] = {
    RC_OK: "操作成功",
    RC_NOT_LOGGED_IN: "请先登录",
    RC_UNSUPPORTED: "不支持该命令: {}",
    RC_FORMAT: "命令格式错误: {}",
    RC_MISSING: "缺少必选参数: {}",
    RC_BAD_VALUE: "参数取值错误 {}",
    RC_UNKNOWN_NAME: "该命令不支持参数 {}",
    RC_NO_SUCH_SFP: "软件参数 {} 不存在",
    RC_BAD_LOGIN: "用户名或密码错误",
    RC_USER_LOCKED: "用户已被锁定, 请联系管理员",
    RC_NO_SUCH_NE: "网元 {} 不存在",
}

_LABELS = {
    "en": {
        "title": "Software parameter",
        "id": "Parameter ID",
        "bit": "Bit",
        "bitval": "Bit value",
        "value": "Parameter value",
        "hex": "Hexadecimal value",
        "count": "Number of results",
        "empty": "No matching result is found",
    },
    "zh": {
        "title": "软件参数",
        "id": "软参编号",
        "bit": "比特位",
        "bitval": "比特位值",
        "value": "参数值",
        "hex": "十六进制值",
        "count": "结果个数",
        "empty": "没有查到相应的结果",
    },
}

# A plausible UAP9600 software-parameter set (values invented; only P978's meaning is public).
_DEFAULT_VALUES = (
    0, 1, 0, 3, 0, 16, 255, 0, 1, 0, 2, 0, 0, 8, 1, 0, 100, 0, 5, 0,
    0, 4, 0, 1, 30, 0, 0, 64, 1, 0, 12, 0, 0, 1, 0, 7, 0, 0, 3, 0,
)  # fmt: skip


def default_params() -> dict[str, int]:
    """P001..P040 with assorted values, plus P978 = 1 (bit 0 set: one-way video NOT allowed)."""
    params = {f"P{i:03d}": v for i, v in enumerate(_DEFAULT_VALUES, start=1)}
    params["P917"] = 8192
    params["P978"] = 1
    return params


@dataclass
class FaultConfig:
    """Faults of one node; see the module docstring for what each one does."""

    latency: float = 0.0
    drop_after: int | None = None
    drop_mid_response: str | None = None
    garbage_reply: str | None = None
    never_end: str | None = None
    alarms: bool = False
    login_refused: bool = False
    drop_after_mod: bool = False
    times: int | None = None

    def __post_init__(self) -> None:
        if self.latency < 0:
            raise ConfigError("faults.latency must be >= 0 seconds")
        if self.drop_after is not None and self.drop_after < 1:
            raise ConfigError("faults.drop_after must be a positive number of commands")
        if self.times is not None and self.times < 0:
            raise ConfigError("faults.times must be >= 0 (or unset for every time)")


@dataclass
class NodeConfig:
    """One simulated UAP9600 node."""

    name: str
    ne_name: str = ""  # "" -> name upper-cased
    layout: str = "table"
    language: str = "en"
    params: dict[str, int] = field(default_factory=default_params)
    faults: FaultConfig = field(default_factory=FaultConfig)
    state_file: Path | None = None
    meid: int = 1
    unknown_param: str = "error"  # "error" (RETCODE 1006) | "empty" (No matching result)
    hex_line: bool = False
    page_size: int = 20
    ssh_echo: bool = False
    serial_start: int | None = None
    echo_prefix: str = ""  # before the echoed command; "{serial}" -> a running number
    authorized_keys: Sequence[str] = ()  # OpenSSH public key lines accepted for SSH
    encoding: str = "utf-8"  # utf-8 | gb18030 (what Chinese-language elements send)
    paging: str = "en"  # en | zh | zh-bare (markers and later pages of LST SFP:;)

    def __post_init__(self) -> None:
        if not self.ne_name:
            self.ne_name = self.name.upper()
        self._check_echo_prefix()
        self.authorized_keys = tuple(self.authorized_keys)
        self.public_keys()  # refuse a bad line now, not at the first connection
        if self.layout not in LAYOUTS:
            raise ConfigError(f"node {self.name}: layout must be one of {', '.join(LAYOUTS)}")
        if self.language not in LANGUAGES:
            raise ConfigError(f"node {self.name}: language must be one of {', '.join(LANGUAGES)}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"node {self.name}: encoding must be one of {', '.join(ENCODINGS)}")
        if self.paging not in PAGINGS:
            raise ConfigError(f"node {self.name}: paging must be one of {', '.join(PAGINGS)}")
        if self.unknown_param not in ("error", "empty"):
            raise ConfigError(f"node {self.name}: unknown_param must be 'error' or 'empty'")
        if self.page_size < 1:
            raise ConfigError(f"node {self.name}: page_size must be >= 1")
        for pid, value in self.params.items():
            if not PID_RE.fullmatch(pid):
                raise ConfigError(f"node {self.name}: parameter id {pid!r} must look like P978")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"node {self.name}: {pid} must be an integer")
            if not 0 <= value < 1 << PARAM_BITS:
                raise ConfigError(f"node {self.name}: {pid} must be in 0..{(1 << PARAM_BITS) - 1}")

    def public_keys(self) -> list[paramiko.PKey]:
        """``authorized_keys`` parsed (ConfigError naming the line that is not a key)."""
        keys = []
        for number, line in enumerate(self.authorized_keys, start=1):
            parts = line.split() if isinstance(line, str) else []
            try:
                keys.append(paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1])))
            except (IndexError, ValueError, paramiko.SSHException, UnknownKeyType):
                raise ConfigError(
                    f"node {self.name}: authorized_keys line {number} is not an OpenSSH public "
                    "key ('ssh-ed25519 AAAA... comment')"
                ) from None
        return keys

    def _check_echo_prefix(self) -> None:
        prefix = self.echo_prefix
        if not isinstance(prefix, str):
            raise ConfigError(
                f"node {self.name}: echo_prefix must be a string, not {type(prefix).__name__} "
                f'(quote it in LAB.yaml: echo_prefix: "{ECHO_SERIAL_TOKEN}")'
            )
        if "%%" in prefix or any(ch < " " for ch in prefix):
            raise ConfigError(
                f"node {self.name}: echo_prefix must not hold '%%', a line break or a control "
                "character"
            )
        for token in _ECHO_TOKEN_RE.findall(prefix):
            if token != ECHO_SERIAL_TOKEN:
                raise ConfigError(
                    f"node {self.name}: echo_prefix: unknown token {token!r} "
                    f"(only {ECHO_SERIAL_TOKEN} is expanded)"
                )


def _pid_key(pid: str) -> tuple[int, str]:
    return (int(pid[1:]), pid)


class SfpStore:
    """Software-parameter values of one node; thread-safe; optionally persisted as JSON.

    The state file (``{"version": 1, "params": {"P978": 1, ...}}``) is loaded at start when it
    exists (it wins over the configured values), written at start when it does not, and
    rewritten atomically (temporary file + rename) on every change.
    """

    def __init__(self, params: Mapping[str, int], state_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._values = dict(params)
        self._state_file = state_file
        if state_file is not None:
            if state_file.exists():
                self._values = self._load(state_file)
            else:
                self._persist()

    @staticmethod
    def _load(path: Path) -> dict[str, int]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            values = data["params"]
            if not isinstance(values, dict):
                raise TypeError("params is not a mapping")
            return {str(k): int(v) for k, v in values.items()}
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ConfigError(
                f"{path}: not a lab state file ({exc}); delete it to start from the defaults"
            ) from exc

    def _persist(self) -> None:
        if self._state_file is None:
            return
        path = self._state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": 1, "params": self._values}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, pid: str) -> int | None:
        with self._lock:
            return self._values.get(pid)

    def get_bit(self, pid: str, bit: int) -> int | None:
        value = self.get(pid)
        return None if value is None else (value >> bit) & 1

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._values, key=_pid_key)

    def set_bit(self, pid: str, bit: int, val: int) -> int:
        """Set one bit; returns the new value. KeyError: unknown id; ValueError: bad bit/val."""
        if not 0 <= bit < PARAM_BITS:
            raise ValueError(f"bit must be 0..{PARAM_BITS - 1}")
        if val not in (0, 1):
            raise ValueError("bit value must be 0 or 1")
        with self._lock:
            old = self._values[pid]
            new = (old | (1 << bit)) if val else (old & ~(1 << bit))
            self._values[pid] = new
            self._persist()
            return new

    def set_value(self, pid: str, value: int) -> None:
        with self._lock:
            self._values[pid] = value
            self._persist()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class UapNode:
    """One running node: its config, state, ports and node-wide counters."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.store = SfpStore(config.params, config.state_file)
        self.ssh_port = 0
        self.tcp_port = 0
        self._lock = threading.Lock()
        self._alarm_no = random.randint(100, 9000)
        self._fault_fires = 0

    @property
    def name(self) -> str:
        return self.config.name

    def next_alarm(self) -> int:
        with self._lock:
            self._alarm_no += 1
            return self._alarm_no

    def take_fault(self) -> bool:
        """Whether a bounded fault may fire once more (and count it)."""
        with self._lock:
            limit = self.config.faults.times
            if limit is not None and self._fault_fires >= limit:
                return False
            self._fault_fires += 1
            return True


# ---------------------------------------------------------------- device-side command parsing


class _BadCommand(Exception):
    pass


@dataclass
class _Command:
    verb: str
    obj: str
    params: dict[str, str]

    @property
    def key(self) -> str:
        return f"{self.verb} {self.obj}".strip()


def parse_device_command(text: str) -> _Command:
    """The simulated device's own lenient parser; raises _BadCommand with a reason."""
    text = text.strip()
    if not text.endswith(";"):
        raise _BadCommand("end the command with a semicolon")
    body = text[:-1]
    head, _, rest = body.partition(":")
    words = head.split()
    if not words or not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", w) for w in words):
        raise _BadCommand("expected VERB OBJECT: NAME=value, ...;")
    if len(words) > 2:
        raise _BadCommand("expected VERB OBJECT: NAME=value, ...;")
    params: dict[str, str] = {}
    for part in _split_outside_quotes(rest, ","):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        name = name.strip().upper()
        value = value.strip()
        if not eq or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise _BadCommand(f"expected NAME=value, got {part.strip()!r}")
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
                raise _BadCommand(f"unbalanced quotes in {name}")
            value = value[1:-1]
        elif '"' in value or not value:
            raise _BadCommand(f"bad value of {name}")
        if name in params:
            raise _BadCommand(f"parameter {name} given twice")
        params[name] = value
    return _Command(words[0].upper(), words[1].upper() if len(words) > 1 else "", params)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


class CommandSplitter:
    """Turns received bytes into complete command texts (and, optionally, terminal echo).

    A command ends at ``;`` outside double quotes, or at a line end (then it lacks ``;`` and
    is answered with RETCODE 1002). Blank lines are ignored. Backspace/DEL erase a character,
    Ctrl-C drops the pending line.
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._current: list[str] = []
        self._quoted = False
        self._last_cr = False

    def feed(self, data: bytes) -> tuple[list[str], str]:
        commands: list[str] = []
        echo: list[str] = []
        for ch in self._decoder.decode(data):
            if ch in "\r\n":
                skip = ch == "\n" and self._last_cr
                self._last_cr = ch == "\r"
                if skip:
                    continue
                echo.append("\r\n")
                self._finish(commands)
                continue
            self._last_cr = False
            if ch in "\x08\x7f":
                if self._current:
                    removed = self._current.pop()
                    if removed == '"':
                        self._quoted = not self._quoted
                    echo.append("\b \b")
                continue
            if ch == "\x03":
                self._current = []
                self._quoted = False
                echo.append("^C\r\n")
                continue
            if ch < " " and ch != "\t":
                continue
            echo.append(ch)
            self._current.append(ch)
            if ch == '"':
                self._quoted = not self._quoted
            elif (ch == ";" and not self._quoted) or len(self._current) > MAX_COMMAND_CHARS:
                self._finish(commands)
        return commands, "".join(echo)

    def _finish(self, commands: list[str]) -> None:
        text = "".join(self._current).strip()
        self._current = []
        self._quoted = False
        if text:
            commands.append(text)


# ---------------------------------------------------------------- one MML connection


class _Conn(Protocol):
    def recv(self, n: int) -> bytes: ...
    def sendall(self, data: bytes) -> None: ...


@dataclass
class _Outcome:
    reports: list[Report]
    close_after: bool = False
    drop_now: bool = False  # close without sending anything


class MmlConnection:
    """The MML dialogue on one connection (TCP socket or SSH shell channel)."""

    def __init__(
        self,
        node: UapNode,
        conn: _Conn,
        *,
        username: str,
        password: Secret,
        stop: threading.Event,
        drop: Callable[[], None],
        close: Callable[[], None],
        echo: bool = False,
        logged_in: bool = False,
    ) -> None:
        self.node = node
        self.conn = conn
        self.username = username
        self.password = password
        self.stop = stop
        self.drop = drop  # abrupt: faults
        self.close = close  # orderly: LGO
        self.echo = echo
        start = node.config.serial_start
        # The first reply carries serial_start; _process increments before each reply.
        self.serial = (start if start is not None else random.randint(1000, 60000)) - 1
        # The running number behind echo_prefix's "{serial}"; _echo_prefix increments first.
        self.echo_serial = random.randint(100000, 999999) - 1
        self.logged_in = logged_in
        self.count = 0
        self.stalled = False
        self.encoding = node.config.encoding
        self.splitter = CommandSplitter(self.encoding)
        lang = node.config.language
        self.codes = RETCODES_ZH if lang == "zh" else RETCODES_EN
        self.labels = _LABELS[lang]

    def serve(self) -> None:
        try:
            while not self.stop.is_set():
                data = self.conn.recv(65536)
                if not data:
                    return
                commands, echo = self.splitter.feed(data)
                if self.stalled:
                    continue
                if self.echo and echo:
                    self.conn.sendall(echo.encode(self.encoding))
                for text in commands:
                    if not self._process(text):
                        return
                    if self.stalled:
                        break
        except (OSError, EOFError, paramiko.SSHException):
            return

    # -- one command

    def _process(self, text: str) -> bool:
        """Answer one command; False when the connection must end."""
        self.count += 1
        faults = self.node.config.faults
        echo = self._echo_prefix() + " ".join(text.split("\n")).replace("\r", " ")
        cmd: _Command | None = None
        try:
            cmd = parse_device_command(text)
        except _BadCommand as exc:
            outcome = _Outcome([self._fail(echo, RC_FORMAT, str(exc))])
        else:
            outcome = self._execute(cmd, echo)
        if outcome.drop_now:
            self.drop()
            return False
        if faults.latency and self.stop.wait(faults.latency):
            return False
        if faults.alarms:
            self._send_alarm()
        self.serial += 1
        payload = "".join(
            render_report(dataclasses.replace(r, serial=self.serial)) for r in outcome.reports
        )
        data = payload.encode(self.encoding)
        key = cmd.key if cmd is not None else ""
        if self._hits(faults.garbage_reply, key):
            self.conn.sendall(_garbage().encode(self.encoding))
        elif self._hits(faults.drop_mid_response, key):
            self.conn.sendall(data[: len(data) // 2])
            self.drop()
            return False
        elif self._hits(faults.never_end, key):
            cut = payload.rfind(END_LINE)
            self.conn.sendall(payload[:cut].encode(self.encoding))
            self.stalled = True
            return True
        else:
            self.conn.sendall(data)
        if outcome.close_after:
            self.close()
            return False
        if faults.drop_after is not None and self.count >= faults.drop_after:
            self.drop()
            return False
        return True

    def _echo_prefix(self) -> str:
        """The node's echo prefix for the next command, ``{serial}`` expanded."""
        prefix = self.node.config.echo_prefix
        if ECHO_SERIAL_TOKEN not in prefix:
            return prefix
        self.echo_serial += 1
        return prefix.replace(ECHO_SERIAL_TOKEN, str(self.echo_serial))

    def _hits(self, prefix: str | None, key: str) -> bool:
        if not prefix or not key:
            return False
        if prefix.strip() == "*":
            match = key not in ("LGI", "LGO")
        else:
            match = key.startswith(" ".join(prefix.upper().split()))
        return match and self.node.take_fault()

    def _send_alarm(self) -> None:
        ne = self.node.config.ne_name
        self.conn.sendall(
            render_alarm(
                ne,
                self.node.next_alarm(),
                severity="Major",
                category="Fault",
                alarm_id=2010,
                name="Link between UAP and CC-Gateway interrupted",
                location=f"NE={ne}, Link No.=1",
            ).encode(self.encoding)
        )

    def _ok(self, echo: str, blocks: Sequence[Block] = (), empty: str = "") -> Report:
        return Report(
            self.node.config.ne_name, 0, echo, RC_OK, self.codes[RC_OK], tuple(blocks), empty
        )

    def _fail(self, echo: str, code: int, detail: str = "") -> Report:
        message = self.codes[code].format(detail).strip()
        return Report(self.node.config.ne_name, 0, echo, code, message)

    def _execute(self, cmd: _Command, echo: str) -> _Outcome:
        if cmd.key == "LGI":
            return _Outcome([self._login(cmd, echo)])
        if cmd.key == "LGO":  # always accepted, even before LGI: clients log out after errors
            self.logged_in = False
            return _Outcome([self._ok(echo)], close_after=True)
        if not self.logged_in:
            return _Outcome([self._fail(echo, RC_NOT_LOGGED_IN)])
        handler = {
            "REG NE": self._reg_ne,
            "UNREG NE": self._unreg_ne,
            "USE ME": self._use_me,
            "LST SFP": self._lst_sfp,
            "MOD SFP": self._mod_sfp,
        }.get(cmd.key)
        if handler is None:
            return _Outcome([self._fail(echo, RC_UNSUPPORTED, cmd.key)])
        return handler(cmd, echo)

    def _check_names(self, cmd: _Command, allowed: Iterable[str]) -> str | None:
        allowed = set(allowed)
        for name in cmd.params:
            if name not in allowed:
                return name
        return None

    def _login(self, cmd: _Command, echo: str) -> Report:
        bad = self._check_names(cmd, ("OP", "PWD", "DN"))
        if bad:
            return self._fail(echo, RC_UNKNOWN_NAME, bad)
        for name in ("OP", "PWD"):
            if name not in cmd.params:
                return self._fail(echo, RC_MISSING, name)
        if self.node.config.faults.login_refused:
            self.logged_in = False
            return self._fail(echo, RC_USER_LOCKED)
        user_ok = hmac.compare_digest(cmd.params["OP"].encode(), self.username.encode())
        pwd_ok = hmac.compare_digest(cmd.params["PWD"].encode(), self.password.reveal().encode())
        if not (user_ok and pwd_ok):
            self.logged_in = False
            return self._fail(echo, RC_BAD_LOGIN)
        self.logged_in = True
        return self._ok(echo)

    def _reg_ne(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("NAME",))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        name = cmd.params.get("NAME")
        if name is None:
            return _Outcome([self._fail(echo, RC_MISSING, "NAME")])
        if name.upper() != self.node.config.ne_name.upper():
            return _Outcome([self._fail(echo, RC_NO_SUCH_NE, name)])
        return _Outcome([self._ok(echo)])

    def _unreg_ne(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("NAME",))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        return _Outcome([self._ok(echo)])

    def _use_me(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("MEID",))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        meid = cmd.params.get("MEID")
        if meid is None:
            return _Outcome([self._fail(echo, RC_MISSING, "MEID")])
        if not (meid.isascii() and meid.isdigit()):
            return _Outcome([self._fail(echo, RC_BAD_VALUE, "MEID: a number is expected")])
        if int(meid) != self.node.config.meid:
            return _Outcome([self._fail(echo, RC_NO_SUCH_NE, f"MEID={meid}")])
        return _Outcome([self._ok(echo)])

    def _bit_param(self, cmd: _Command, name: str) -> int | str:
        """The integer value of a bit-like parameter, or the error detail."""
        raw = cmd.params[name]
        if not (raw.isascii() and raw.isdigit()):  # int() would crash on '²', read '٠' as 0
            return f"{name}: a number is expected"
        value = int(raw)
        limit = PARAM_BITS - 1 if name == "BIT" else 1
        if value > limit:
            return f"{name}: must be 0..{limit}"
        return value

    def _lst_sfp(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("ID", "BIT"))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        bit: int | None = None
        if "BIT" in cmd.params:
            parsed = self._bit_param(cmd, "BIT")
            if isinstance(parsed, str):
                return _Outcome([self._fail(echo, RC_BAD_VALUE, parsed)])
            bit = parsed
        store = self.node.store
        if "ID" in cmd.params:
            pid = cmd.params["ID"].upper()
            if not PID_RE.fullmatch(pid):
                return _Outcome([self._fail(echo, RC_BAD_VALUE, "ID: expected Pnnn, e.g. P978")])
            value = store.get(pid)
            if value is None:
                if self.node.config.unknown_param == "empty":
                    return _Outcome([self._ok(echo, empty=self.labels["empty"])])
                return _Outcome([self._fail(echo, RC_NO_SUCH_SFP, pid)])
            return _Outcome([self._ok(echo, self._sfp_blocks([(pid, value)], bit))])
        snapshot = store.snapshot()
        items = [(pid, snapshot[pid]) for pid in sorted(snapshot, key=_pid_key)]
        if not items:
            return _Outcome([self._ok(echo, empty=self.labels["empty"])])
        size = self.node.config.page_size
        pages = [items[i : i + size] for i in range(0, len(items), size)]
        reports = []
        for i, page in enumerate(pages):
            report = self._ok(echo, self._sfp_blocks(page, bit))
            reports.append(dataclasses.replace(report, continued=i < len(pages) - 1))
        if self.node.config.paging != "en":
            reports = _chinese_paging(reports, bare=self.node.config.paging == "zh-bare")
        return _Outcome(reports)

    def _sfp_blocks(self, items: Sequence[tuple[str, int]], bit: int | None) -> list[Block]:
        lab = self.labels
        layout = self.node.config.layout
        bits = [bit] if bit is not None else list(range(PARAM_BITS))

        def block(records: list[list[tuple[str, str]]], how: str) -> Block:
            return Block(lab["title"], records, how, lab["count"])

        if layout == "value":
            out = []
            for pid, value in items:
                record = [(lab["id"], pid), (lab["value"], str(value))]
                if self.node.config.hex_line:
                    record.append((lab["hex"], f"0x{value:04X}"))
                out.append(block([record], "vertical"))
            return out
        per_bit = [
            [(lab["id"], pid), (lab["bit"], str(b)), (lab["bitval"], str((value >> b) & 1))]
            for pid, value in items
            for b in bits
        ]
        if layout == "table":
            return [block(per_bit, "table")]
        return [block([record], "vertical") for record in per_bit]

    def _mod_sfp(self, cmd: _Command, echo: str) -> _Outcome:
        bad = self._check_names(cmd, ("ID", "MODTYPE", "BIT", "BITVAL"))
        if bad:
            return _Outcome([self._fail(echo, RC_UNKNOWN_NAME, bad)])
        if "ID" not in cmd.params:
            return _Outcome([self._fail(echo, RC_MISSING, "ID")])
        pid = cmd.params["ID"].upper()
        if not PID_RE.fullmatch(pid):
            return _Outcome([self._fail(echo, RC_BAD_VALUE, "ID: expected Pnnn, e.g. P978")])
        if self.node.store.get(pid) is None:
            return _Outcome([self._fail(echo, RC_NO_SUCH_SFP, pid)])
        if "MODTYPE" not in cmd.params:
            return _Outcome([self._fail(echo, RC_MISSING, "MODTYPE")])
        if cmd.params["MODTYPE"].upper() != "P1":
            return _Outcome([self._fail(echo, RC_BAD_VALUE, "MODTYPE: only P1 is supported")])
        values: dict[str, int] = {}
        for name in ("BIT", "BITVAL"):
            if name not in cmd.params:
                return _Outcome([self._fail(echo, RC_MISSING, name)])
            parsed = self._bit_param(cmd, name)
            if isinstance(parsed, str):
                return _Outcome([self._fail(echo, RC_BAD_VALUE, parsed)])
            values[name] = parsed
        self.node.store.set_bit(pid, values["BIT"], values["BITVAL"])
        if self.node.config.faults.drop_after_mod and self.node.take_fault():
            return _Outcome([], drop_now=True)
        return _Outcome([self._ok(echo)])


def _chinese_paging(reports: list[Report], *, bare: bool) -> list[Report]:
    """Pages as Chinese-language elements print them (module docstring of ``frames``)."""
    total = sum(len(b.records) for r in reports for b in r.blocks)
    out = []
    for i, report in enumerate(reports):
        last = i == len(reports) - 1
        blocks = [
            dataclasses.replace(b, show_count=last and j == len(report.blocks) - 1, count=total)
            for j, b in enumerate(report.blocks)
        ]
        out.append(
            dataclasses.replace(
                report,
                blocks=tuple(blocks),
                more_text=ZH_MORE_LINE,
                total=len(reports) if last else None,
                bare=bare and i > 0,
            )
        )
    return out


def _garbage() -> str:
    return (
        "MML agent: output buffer corrupted, dumping\r\n"
        "@@ 0x7f3a 00 12 ff ?? RETCODE ?? \x1b[0m#\r\n"
        f"{END_LINE}\r\n"
    )


# ---------------------------------------------------------------- SSH


def generate_host_key() -> tuple[paramiko.PKey, str]:
    """A fresh Ed25519 host key (generated with ``cryptography``) and its OpenSSH PEM text."""
    pem = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )
    return paramiko.Ed25519Key(file_obj=io.StringIO(pem)), pem


def load_or_create_host_key(path: Path | None) -> paramiko.PKey:
    """Load the key at ``path``; generate one (and save it there, mode 0600) when missing."""
    if path is not None and path.exists():
        try:
            return paramiko.PKey.from_path(path)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the SSH host key ({exc})") from exc
    key, pem = generate_host_key()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pem)
    return key


class _SshInterface(paramiko.ServerInterface):
    def __init__(self, server: UapServer, node: UapNode) -> None:
        self.server = server
        self.lock = threading.Lock()
        self.shells: dict[int, threading.Event] = {}
        self.ptys: set[int] = set()
        self.direct: dict[int, int] = {}
        self.keys = {(k.get_name(), k.asbytes()) for k in node.config.public_keys()}
        self.by_key = False  # authenticated with a public key: MML is logged in already

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey" if self.keys else "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if self.server.credentials_ok(username, password):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        # paramiko verifies the client's signature itself before the session is granted.
        if username == self.server.username and (key.get_name(), key.asbytes()) in self.keys:
            self.by_key = True
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            with self.lock:
                self.shells[chanid] = threading.Event()
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(
        self,
        channel: paramiko.Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        with self.lock:
            self.ptys.add(channel.get_id())
        return True

    def check_channel_window_change_request(
        self,
        channel: paramiko.Channel,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
    ) -> bool:
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        with self.lock:
            event = self.shells.get(channel.get_id())
        if event is None:
            return False
        event.set()
        return True

    def check_channel_direct_tcpip_request(
        self, chanid: int, origin: tuple[str, int], destination: tuple[str, int]
    ) -> int:
        host, port = destination
        if host in ("127.0.0.1", "localhost", self.server.host) and port in self.server.tcp_ports():
            with self.lock:
                self.direct[chanid] = port
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _SockConn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, n: int) -> bytes:
        return self.sock.recv(n)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)


def _close_channel(chan: paramiko.Channel) -> None:
    # The transport may already be gone (client vanished, drop fault): nothing left to tell.
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        chan.close()


def _close_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# ---------------------------------------------------------------- the server


class UapServer:
    """Serves every node over SSH and plain TCP, each on its own port."""

    def __init__(self, *, host_key_file: Path | None = None) -> None:
        self.host_key = load_or_create_host_key(host_key_file)
        self.nodes: list[UapNode] = []
        self.host = "127.0.0.1"
        self.username = "admin"
        self._password = Secret("")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[object] = set()  # sockets and transports to close on stop()
        self._listeners: dict[int, tuple[socket.socket, UapNode, str]] = {}
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._tcp_ports: frozenset[int] = frozenset()

    # -- lifecycle

    def start(
        self,
        nodes: Sequence[NodeConfig],
        host: str = "127.0.0.1",
        base_port: int = 0,
        username: str = "admin",
        password: Secret | str = "",
    ) -> list[UapNode]:
        """Bind every port and start serving. ``base_port`` 0: ephemeral ports; otherwise
        node i (0-based) gets SSH ``base_port + i`` and TCP ``base_port + 1000 + i``."""
        if self._thread is not None:
            raise RuntimeError("UapServer already started")
        secret = password if isinstance(password, Secret) else Secret(password)
        if not secret:
            raise ConfigError("the lab needs a password: pass password=...")
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ConfigError("lab node names must be unique")
        if base_port and (len(nodes) > 1000 or base_port + 1000 + len(nodes) > 65535):
            raise ConfigError("base_port too high for this many nodes (TCP = base + 1000 + i)")
        self.host, self.username, self._password = host, username, secret
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            for i, config in enumerate(nodes):
                node = UapNode(config)
                node.ssh_port = self._listen(node, "ssh", base_port + i if base_port else 0)
                node.tcp_port = self._listen(node, "tcp", base_port + 1000 + i if base_port else 0)
                self.nodes.append(node)
        except OSError as exc:
            self.stop()
            raise ConfigError(f"cannot bind the lab ports on {host}: {exc}") from exc
        self._tcp_ports = frozenset(n.tcp_port for n in self.nodes)
        self._thread = threading.Thread(target=self._accept_loop, name="uap-accept", daemon=True)
        self._thread.start()
        return self.nodes

    def _listen(self, node: UapNode, kind: str, port: int) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ)
        self._listeners[sock.fileno()] = (sock, node, kind)
        port_no: int = sock.getsockname()[1]
        return port_no

    def stop(self) -> None:
        """Close every listener and connection; idempotent."""
        self._stop.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock, _, _ in self._listeners.values():
            sock.close()
        self._listeners.clear()
        with self._lock:
            items = list(self._open)
            self._open.clear()
        for item in items:
            if isinstance(item, socket.socket):
                _close_socket(item)
            elif isinstance(item, paramiko.Transport):
                item.close()
        for wake in (self._wake_r, self._wake_w):
            if wake is not None:
                wake.close()
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    def __enter__(self) -> UapServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries

    def node(self, name: str) -> UapNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def tcp_ports(self) -> frozenset[int]:
        return self._tcp_ports

    def credentials_ok(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        pwd_ok = hmac.compare_digest(password.encode(), self._password.reveal().encode())
        return user_ok and pwd_ok

    def known_hosts_line(self, port: int) -> str:
        """The OpenSSH known_hosts line for this server's key on ``port``."""
        where = self.host if port == 22 else f"[{self.host}]:{port}"
        return f"{where} {self.host_key.get_name()} {self.host_key.get_base64()}"

    # -- accepting

    def _track(self, item: object) -> None:
        with self._lock:
            if self._stop.is_set():
                raise OSError("lab stopping")
            self._open.add(item)

    def _untrack(self, item: object) -> None:
        with self._lock:
            self._open.discard(item)

    def _accept_loop(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stop.is_set():
            for key, _ in selector.select():
                entry = self._listeners.get(key.fd)
                if entry is None:  # the wake-up socket
                    continue
                sock, node, kind = entry
                try:
                    client, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    if self._stop.is_set():
                        return
                    continue
                client.setblocking(True)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                target = self._serve_tcp if kind == "tcp" else self._serve_ssh
                threading.Thread(
                    target=target, args=(node, client), name=f"uap-{kind}-{node.name}", daemon=True
                ).start()

    def _serve_tcp(self, node: UapNode, sock: socket.socket) -> None:
        try:
            self._track(sock)
        except OSError:
            sock.close()
            return

        def close() -> None:
            _close_socket(sock)

        try:
            MmlConnection(
                node,
                _SockConn(sock),
                username=self.username,
                password=self._password,
                stop=self._stop,
                drop=close,
                close=close,
            ).serve()
        finally:
            self._untrack(sock)
            close()

    def _serve_ssh(self, node: UapNode, sock: socket.socket) -> None:
        transport = paramiko.Transport(sock)
        transport.set_log_channel(SSH_LOG_NAME)
        try:
            self._track(transport)
        except OSError:
            sock.close()
            return
        transport.add_server_key(self.host_key)
        iface = _SshInterface(self, node)
        try:
            transport.start_server(server=iface)
            while transport.is_active() and not self._stop.is_set():
                chan = transport.accept(timeout=0.5)
                if chan is None:
                    continue
                with iface.lock:
                    port = iface.direct.pop(chan.get_id(), None)
                thread = (
                    threading.Thread(target=self._forward, args=(chan, port), daemon=True)
                    if port is not None
                    else threading.Thread(
                        target=self._serve_shell, args=(node, transport, iface, chan), daemon=True
                    )
                )
                thread.start()
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            self._untrack(transport)
            transport.close()

    def _serve_shell(
        self,
        node: UapNode,
        transport: paramiko.Transport,
        iface: _SshInterface,
        chan: paramiko.Channel,
    ) -> None:
        with iface.lock:
            event = iface.shells.get(chan.get_id())
        if event is None or not event.wait(15):
            _close_channel(chan)
            return
        with iface.lock:
            pty = chan.get_id() in iface.ptys

        def close() -> None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                chan.send_exit_status(0)
            _close_channel(chan)

        try:
            MmlConnection(
                node,
                chan,
                username=self.username,
                password=self._password,
                stop=self._stop,
                drop=transport.close,
                close=close,
                echo=node.config.ssh_echo and pty,
                logged_in=iface.by_key,
            ).serve()
        finally:
            _close_channel(chan)

    def _forward(self, chan: paramiko.Channel, port: int) -> None:
        try:
            sock = socket.create_connection((self.host, port), timeout=10)  # where it listens
        except OSError:
            _close_channel(chan)
            return
        sock.settimeout(None)
        try:
            self._track(sock)
        except OSError:
            sock.close()
            _close_channel(chan)
            return
        sel = selectors.DefaultSelector()
        try:
            sel.register(chan, selectors.EVENT_READ)
            sel.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=1.0):
                    if key.fileobj is chan:
                        data = chan.recv(65536)
                        if not data:
                            return
                        sock.sendall(data)
                    else:
                        data = sock.recv(65536)
                        if not data:
                            return
                        chan.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass
        finally:
            sel.close()
            self._untrack(sock)
            _close_socket(sock)
            _close_channel(chan)
