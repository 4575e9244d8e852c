"""The MML dialogue on one connection (TCP socket or SSH shell channel): commands in, reports
out, with the injected faults; the commands themselves are answered in ``handlers``."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable
from typing import Protocol

import paramiko

from mml_tool.lab.frames import END_LINE, render_alarm, render_report
from mml_tool.lab.uap.commands import (
    CommandSplitter,
    _BadCommand,
    _Command,
    _garbage,
    parse_device_command,
)
from mml_tool.lab.uap.config import (
    _LABELS,
    ECHO_SERIAL_TOKEN,
    RC_FORMAT,
    RETCODES_EN,
    RETCODES_ZH,
)
from mml_tool.lab.uap.handlers import _MmlCommands, _Outcome
from mml_tool.lab.uap.state import UapNode
from mml_tool.secret import Secret


class _Conn(Protocol):
    def recv(self, n: int) -> bytes: ...
    def sendall(self, data: bytes) -> None: ...


class MmlConnection(_MmlCommands):
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
        if not self._send_reply(payload, cmd.key if cmd is not None else ""):
            return False
        if self.stalled:
            return True
        if outcome.close_after:
            self.close()
            return False
        if faults.drop_after is not None and self.count >= faults.drop_after:
            self.drop()
            return False
        return True

    def _send_reply(self, payload: str, key: str) -> bool:
        """Send the reply to command ``key`` as the reply faults say: damaged, cut off (then
        False: the connection is dropped) or never ended (``stalled``)."""
        faults = self.node.config.faults
        data = payload.encode(self.encoding)
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
        else:
            self.conn.sendall(data)
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
