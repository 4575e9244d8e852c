"""An MML session: log in, select the element, run commands, log out.

``MmlSession`` frames the byte stream on ``---    END`` lines, parses each report, matches the
O&M answer to the command by its echo, follows ``To be continued...`` pages, and sets
autonomous reports (alarms) and stale answers aside. Every deadline is a read deadline: nothing
sleeps. After a timeout, a lost connection or an unreadable reply the stream can no longer be
trusted, so the session closes itself and refuses further commands.

Everything that leaves this module (logs, transcript, responses, errors) is masked with
``mask_text``: a password sent in ``LGI`` never appears in them.
"""

from __future__ import annotations

import codecs
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

from mml_tool.errors import (
    CommandError,
    LoginError,
    MmlTimeout,
    MmlToolError,
    ParseError,
    TransportError,
)
from mml_tool.inventory import HostConfig
from mml_tool.mml.command import MmlCommand, mask_text, quoted
from mml_tool.mml.lineends import LineEnds
from mml_tool.mml.response import END_RE, MmlReport, MmlResponse, echo_matches, parse_report
from mml_tool.mml.transport import Transport, make_transport

log = logging.getLogger("mml_tool.session")
LOGOUT_TIMEOUT = 2.0
TAIL_BYTES = 300
# One report without its "---    END" line: far above any real page (long replies are paged), low
# enough that a peer streaming endless bytes cannot exhaust memory before the deadline.
MAX_FRAME_CHARS = 8 * 1024 * 1024
MAX_SET_ASIDE = 1000  # autonomous and stale reports kept per session (the newest)
_ERASE_RE = re.compile(r".?\x08 \x08")  # a terminal's echo of backspace erases one character


@dataclass(frozen=True)
class TranscriptEntry:
    time: float  # time.time()
    direction: str  # ">>>" sent, "<<<" received, "---" a note
    text: str


@dataclass
class Transcript:
    """A masked record of what was exchanged, for evidence and debugging."""

    entries: list[TranscriptEntry] = field(default_factory=list)

    def add(self, direction: str, text: str) -> None:
        self.entries.append(TranscriptEntry(time.time(), direction, mask_text(text)))

    def text(self) -> str:
        out = []
        for e in self.entries:
            stamp = datetime.fromtimestamp(e.time).isoformat(timespec="milliseconds")
            for line in e.text.replace("\r\n", "\n").rstrip("\n").split("\n"):
                out.append(f"{stamp} {e.direction} {line}")
        return "\n".join(out) + ("\n" if out else "")

    def write(self, path: Path) -> None:
        path.write_text(self.text(), encoding="utf-8")


class MmlSession:
    """One logged-in MML dialogue with one element; use as a context manager."""

    def __init__(
        self,
        host: HostConfig,
        transport: Transport | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.host = host
        self.transport = transport if transport is not None else make_transport(host)
        self.transcript = transcript
        self.autonomous: list[MmlReport] = []  # alarms and events received meanwhile
        self.stale: list[MmlReport] = []  # O&M answers to some other command
        self._buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line_ends = LineEnds()  # a cooked pty's CR CR LF -> CR LF
        self._sent: deque[str] = deque(maxlen=4)  # masked commands, to skip a terminal's echo
        self._opened = False
        self._logged_in = False
        self._closed = False
        self._broken: str | None = None

    # -- lifecycle

    def __enter__(self) -> MmlSession:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Connect, log in, then select the element (``REG NE`` / ``USE ME``) if configured."""
        if self._opened:
            return
        self._opened = True
        h = self.host
        try:
            self.transport.open()
            self._login()
            if h.ne_name is not None:
                self.run(MmlCommand.create("REG", "NE", NAME=quoted(h.ne_name))).raise_for_retcode()
            if h.meid is not None:
                self.run(MmlCommand.create("USE", "ME", MEID=h.meid)).raise_for_retcode()
        except BaseException:
            self.close()
            raise

    def _login(self) -> None:
        h = self.host
        if h.password is None:  # SSH key authentication without an MML password: no LGI
            self._logged_in = True
            return
        try:
            cmd = MmlCommand.create("LGI", OP=quoted(h.username), PWD=quoted(h.password.reveal()))
        except CommandError:
            raise LoginError(
                f"{h.name}: cannot log in as {h.username!r}: the password holds a character "
                'MML cannot carry (", ;, %, \\ or a control character): change the password'
            ) from None
        response = self.run(cmd)
        if not response.ok:
            raise LoginError(
                f"{h.name} ({h.address}): login as user {h.username!r} refused: RETCODE = "
                f"{response.retcode}  {mask_text(response.message)}: check the username and "
                "password in the inventory, or whether the account is locked"
            )
        self._logged_in = True

    def close(self) -> None:
        """Log out (best effort, if healthy) and close the transport; idempotent."""
        if self._closed:
            return
        if self._logged_in and self._broken is None:
            try:
                self._exchange(MmlCommand.create("LGO"), min(LOGOUT_TIMEOUT, self.host.timeout))
            except MmlToolError as exc:
                log.debug("%s: logout failed (ignored): %s", self.host.name, exc)
        self._closed = True
        self._logged_in = False
        try:
            self.transport.close()
        except Exception as exc:  # closing must never raise on top of the real error
            log.debug("%s: closing the transport: %s", self.host.name, exc)

    @property
    def healthy(self) -> bool:
        return self._opened and not self._closed and self._broken is None

    # -- commands

    def run(self, command: MmlCommand | str, timeout: float | None = None) -> MmlResponse:
        """Send one command and return its (possibly paged) answer; RETCODE is not raised."""
        cmd = command if isinstance(command, MmlCommand) else MmlCommand.parse(command)
        if self._broken is not None:
            raise TransportError(
                f"{self.host.name}: session closed after an earlier error ({self._broken}): "
                "open a new session"
            )
        if self._closed:
            raise TransportError(f"{self.host.name}: the session is closed: open a new session")
        if not self._opened:
            raise TransportError(f"{self.host.name}: the session is not open: call open() first")
        try:
            return self._exchange(cmd, self.host.timeout if timeout is None else timeout)
        except (MmlTimeout, TransportError, ParseError) as exc:
            self._broken = type(exc).__name__
            log.debug("%s: closing the session after %s", self.host.name, self._broken)
            self.close()
            raise

    def _exchange(self, cmd: MmlCommand, timeout: float) -> MmlResponse:
        masked = cmd.masked()
        log.debug("%s >>> %s", self.host.name, masked)
        if self.transcript is not None:
            self.transcript.add(">>>", masked)
        start = time.monotonic()
        deadline = start + timeout
        self._sent.append(masked)
        try:
            self.transport.write((cmd.render() + "\r\n").encode("utf-8"))
        except TransportError as exc:
            raise TransportError(f"{self.host.name}: sending {masked}: {exc}") from None
        reports: list[MmlReport] = []
        frames: list[str] = []
        while True:
            frame = self._read_frame(masked, deadline, timeout)
            frame = self._skip_noise(frame)
            try:
                report = parse_report(frame)
            except ParseError as exc:
                raise ParseError(f"{self.host.name}: reply to {masked}: {exc}") from None
            if report.autonomous:
                log.debug("%s: autonomous %s report set aside", self.host.name, report.kind)
                _set_aside(self.autonomous, report)
                continue
            if not echo_matches(report.echo, masked):
                log.warning(
                    "%s: set aside an O&M report #%d for %r while waiting for %s",
                    self.host.name,
                    report.serial,
                    report.echo,
                    masked,
                )
                _set_aside(self.stale, report)
                continue
            reports.append(report)
            frames.append(frame)
            if not report.continued:
                break
        elapsed = time.monotonic() - start
        log.debug("%s <<< RETCODE = %s (%.3f s)", self.host.name, reports[0].retcode, elapsed)
        return MmlResponse(reports, "".join(frames), masked, self.host.name, elapsed)

    def _read_frame(self, masked: str, deadline: float, timeout: float) -> str:
        """The next text up to and including a ``---    END`` line, masked."""
        while True:
            m = END_RE.search(self._buffer)
            if m is not None:
                end = m.end() + (self._buffer[m.end() : m.end() + 1] == "\n")  # the line's LF
                frame, self._buffer = self._buffer[:end], self._buffer[end:]
                frame = mask_text(frame)
                if self.transcript is not None:
                    self.transcript.add("<<<", frame)
                return frame
            if time.monotonic() >= deadline:
                tail = mask_text(self._buffer)[-TAIL_BYTES:]
                if self.transcript is not None and self._buffer:
                    self.transcript.add("<<<", mask_text(self._buffer))
                raise MmlTimeout(
                    f"{self.host.name} ({self.host.address}): no complete reply to {masked} "
                    f"within {timeout:g} s; last bytes received: {tail!r}: check the element's "
                    "load, or raise timeout for this host"
                )
            try:
                data = self.transport.read(deadline)
            except TransportError as exc:
                if self.transcript is not None and self._buffer:
                    self.transcript.add("<<<", mask_text(self._buffer))
                raise TransportError(
                    f"{self.host.name}: connection lost while waiting for the reply to "
                    f"{masked}: {exc}"
                ) from None
            self._buffer += self._decoder.decode(self._line_ends.feed(data))
            if len(self._buffer) > MAX_FRAME_CHARS:
                tail = mask_text(self._buffer)[-TAIL_BYTES:]  # mask first: a cut could split a name
                raise ParseError(
                    f"{self.host.name} ({self.host.address}): more than {MAX_FRAME_CHARS} "
                    f"characters in reply to {masked} without a '---    END' line; last bytes "
                    f"received: {tail!r}: check that the port speaks MML"
                )

    def _skip_noise(self, frame: str) -> str:
        """Drop what a terminal prints before a report: blank lines and the echo of a command
        we sent (SSH shells with echo). Anything else is left for the parser to refuse."""
        lines = frame.splitlines(keepends=True)
        i = 0
        while i < len(lines) and not lines[i].startswith("+++"):
            line = lines[i]
            while _ERASE_RE.search(line):
                line = _ERASE_RE.sub("", line, count=1)
            line = line.strip()
            if line and not any(_same(line, sent) for sent in self._sent):
                break
            i += 1
        return "".join(lines[i:])


def _set_aside(reports: list[MmlReport], report: MmlReport) -> None:
    reports.append(report)
    del reports[:-MAX_SET_ASIDE]


def _same(echoed: str, sent: str) -> bool:
    return "".join(echoed.split()) == "".join(sent.split())
