"""An MML session: log in, select the element, run commands, log out.

``MmlSession`` frames the byte stream on ``---    END`` lines, decodes each frame (the host's
``encoding``: UTF-8, GB18030, or ``auto``), parses each report, matches the O&M answer to the
command by its echo, follows pages (``To be continued...``, ``仍有后续报告输出``, later pages
without header or echo) and progress reports (RETCODE 99999) to the final report, and sets
autonomous reports (alarms) and stale answers aside. Every deadline is a read deadline: nothing
sleeps. After a timeout, a lost connection or an unreadable reply the stream can no longer be
trusted, so the session closes itself and refuses further commands.

Everything that leaves this module (logs, transcript, responses, errors) is masked with
``mask_text`` and scrubbed of the connection's secret values (``ConnectionParams.secrets``): a
password never appears in them, even where an element repeats it outside ``PWD=``.

Answers no honest element gives are refused with ``AnswerError`` (the session closes): after
``REG NE``/``USE ME``, an answer whose element header (the last ``+++`` line before the echo,
so an NMS's own header before it does not count) names another NE; a second answer to a
command already answered; an ``O&M`` serial lower than one received before on the connection
(numeric serials only: ``#HWHandle=174`` is not ordered). A second answer is seen when it
arrives before the session ends: after each answer, whatever has already arrived is read
without waiting; what comes later is caught by the next command or the logout.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from types import TracebackType

from mml_tool.errors import (
    AnswerError,
    CommandError,
    LoginError,
    MmlTimeout,
    MmlToolError,
    ParseError,
    TransportError,
)
from mml_tool.mml.answers import AnswerGuard
from mml_tool.mml.command import MmlCommand, mask_text, quoted
from mml_tool.mml.encoding import decode, encode
from mml_tool.mml.framing import _END_BYTES, _verb, skip_noise
from mml_tool.mml.framing import Transcript as Transcript
from mml_tool.mml.framing import TranscriptEntry as TranscriptEntry
from mml_tool.mml.framing import element_head as element_head
from mml_tool.mml.lineends import LineEnds
from mml_tool.mml.params import ConnectionParams, HasConnectionParams, as_params
from mml_tool.mml.response import (
    MmlReport,
    MmlResponse,
    ResponseParser,
    echo_matches,
    parse_report,
)
from mml_tool.mml.transport import Transport, make_transport
from mml_tool.secret import Scrubber

log = logging.getLogger("mml_tool.session")
LOGOUT_TIMEOUT = 2.0
TAIL_BYTES = 300
# One report without its "---    END" line: far above any real page (long replies are paged), low
# enough that a peer streaming endless bytes cannot exhaust memory before the deadline.
MAX_FRAME_CHARS = 8 * 1024 * 1024  # bytes, in fact
MAX_SET_ASIDE = 1000  # autonomous and stale reports kept per session (the newest)
SESSION_VERBS = frozenset({"LGI", "LGO", "REG", "UNREG", "USE"})
_LGO = MmlCommand.create("LGO")


class MmlSession:
    """One logged-in MML dialogue with one element; use as a context manager."""

    def __init__(
        self,
        params: ConnectionParams | HasConnectionParams,
        transport: Transport | None = None,
        transcript: Transcript | None = None,
        parser: ResponseParser | None = None,
    ) -> None:
        self.params = as_params(params)
        self.transport = transport if transport is not None else make_transport(self.params)
        self.parser = parser
        self.transcript = transcript
        self.autonomous: list[MmlReport] = []  # alarms and events received meanwhile
        self.stale: list[MmlReport] = []  # O&M answers to some other command
        self._buffer = b""
        # "auto" becomes "gb18030" for good once a frame is not valid UTF-8 (sending too).
        self._encoding = self.params.encoding
        self._line_ends = LineEnds()  # a cooked pty's CR CR LF -> CR LF
        self._sent: deque[str] = deque(maxlen=4)  # masked commands, to skip a terminal's echo
        self._opened = False
        self._logged_in = False
        self._closed = False
        self._broken: str | None = None
        self._scrub = Scrubber(self.params.secrets())  # by value, longest first
        self._guard = AnswerGuard(self.params)  # second answers, serials, the element
        # An AnswerError seen while logging out (a late second answer): the session's earlier
        # answers cannot be trusted; callers that keep values check this after closing.
        self.refused: AnswerError | None = None

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
        h = self.params
        try:
            self.transport.open()
            self._login()
            if h.ne_name is not None:
                self.run(MmlCommand.create("REG", "NE", NAME=quoted(h.ne_name))).raise_for_retcode()
            if h.meid is not None:
                self.run(MmlCommand.create("USE", "ME", MEID=h.meid)).raise_for_retcode()
            self._guard.selected = h.ne_name is not None or h.meid is not None
        except BaseException as exc:
            self.close()
            if isinstance(exc, MmlToolError):
                self._scrub_error(exc)
                exc.with_context(self.params.name)
            raise

    def _login(self) -> None:
        h = self.params
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
                self._clean(
                    f"{h.name} ({h.address}): login as user {h.username!r} refused: RETCODE = "
                    f"{response.retcode}  {response.message}: check the username and "
                    "password in the inventory, or whether the account is locked"
                )
            )
        self._logged_in = True

    def close(self) -> None:
        """Log out (best effort, if healthy) and close the transport; idempotent."""
        if self._closed:
            return
        if self._logged_in and self._broken is None:
            try:
                self._exchange(_LGO, min(LOGOUT_TIMEOUT, self.params.timeout))
            except AnswerError as exc:
                self.refused = exc
                log.warning("%s: while logging out: %s", self.params.name, exc)
            except MmlToolError as exc:
                log.debug("%s: logout failed (ignored): %s", self.params.name, exc)
        self._closed = True
        self._logged_in = False
        try:
            self.transport.close()
        except Exception as exc:  # closing must never raise on top of the real error
            log.debug("%s: closing the transport: %s", self.params.name, exc)

    @property
    def encoding(self) -> str:
        """The encoding replies are read in: the host's, or GB18030 once ``auto`` met it."""
        return self._encoding

    @property
    def healthy(self) -> bool:
        return self._opened and not self._closed and self._broken is None

    # -- commands

    def run(self, command: MmlCommand | str, timeout: float | None = None) -> MmlResponse:
        """Send one command and return its (possibly paged) answer; RETCODE is not raised."""
        cmd = command if isinstance(command, MmlCommand) else MmlCommand.parse(command)
        if self._broken is not None:
            raise TransportError(
                f"{self.params.name}: session closed after an earlier error ({self._broken}): "
                "open a new session"
            )
        if self._closed:
            raise TransportError(f"{self.params.name}: the session is closed: open a new session")
        if not self._opened:
            raise TransportError(f"{self.params.name}: the session is not open: call open() first")
        try:
            return self._exchange(cmd, self.params.timeout if timeout is None else timeout)
        except (TransportError, ParseError, AnswerError) as exc:  # the stream is not trusted
            self._broken = type(exc).__name__
            log.debug("%s: closing the session after %s", self.params.name, self._broken)
            self.close()
            self._scrub_error(exc)
            exc.with_context(self.params.name, self._clean(cmd.masked()))
            raise
        except MmlToolError as exc:
            self._scrub_error(exc)
            exc.with_context(self.params.name, self._clean(cmd.masked()))
            raise

    # -- secrets

    def _clean(self, text: str) -> str:
        """``text`` masked by parameter name and scrubbed of this host's secret values."""
        return self._scrub(mask_text(text))

    def _scrub_error(self, exc: MmlToolError) -> None:
        """Scrub an error's text in place (its message and the attributes it shows)."""
        exc.args = tuple(self._clean(a) if isinstance(a, str) else a for a in exc.args)
        for name in ("message", "command"):
            value = getattr(exc, name, None)
            if isinstance(value, str):
                setattr(exc, name, self._clean(value))

    def _exchange(self, cmd: MmlCommand, timeout: float) -> MmlResponse:
        masked = self._clean(cmd.masked())
        log.debug("%s >>> %s", self.params.name, masked)
        if self.transcript is not None:
            self.transcript.add(">>>", masked)
        start = time.monotonic()
        deadline = start + timeout
        self._sent.append(masked)
        try:
            self.transport.write(encode(cmd.render() + "\r\n", self._encoding))
        except TransportError as exc:
            raise TransportError(f"{self.params.name}: sending {masked}: {exc}") from None
        self._guard.sent(masked)
        reports: list[MmlReport] = []
        frames: list[str] = []
        while True:
            frame = skip_noise(self._sent, self._read_frame(masked, deadline, timeout))
            previous = reports[-1] if reports and reports[-1].continued else None
            report = self._take(frame, masked, masked, previous)
            if report is None:
                continue
            reports.append(report)
            frames.append(frame)
            if not report.pending:  # the last page, and not a progress report
                break
        self._guard.answered(masked)
        self._drain()
        elapsed = time.monotonic() - start
        log.debug("%s <<< RETCODE = %s (%.3f s)", self.params.name, reports[-1].retcode, elapsed)
        return MmlResponse(
            reports, "".join(frames), masked, self.params.name, elapsed,
            self.params.platform, self.parser,
        )  # fmt: skip

    def _take(
        self, frame: str, current: str | None, masked: str, previous: MmlReport | None = None
    ) -> MmlReport | None:
        """Parse one frame and vet it: the report if it answers ``current``; None if it was
        set aside (autonomous, or stale); AnswerError if no honest element would send it.
        ``previous``: the page before, when it said another follows (this one may be bare)."""
        try:
            report = parse_report(frame, continuation_of=previous)
        except ParseError as exc:
            raise ParseError(f"{self.params.name}: reply to {masked}: {exc}") from None
        if report.autonomous:
            log.debug("%s: autonomous %s report set aside", self.params.name, report.kind)
            _set_aside(self.autonomous, report)
            return None
        element, serial = element_head(frame)
        self._guard.check_serial(element, serial, masked)
        if current is not None and echo_matches(report.echo, current):
            # Session commands may be answered by an NMS in front of the element: not checked.
            if self._guard.selected and element is not None and _verb(current) not in SESSION_VERBS:
                self._guard.check_element(element, masked)
            return report
        self._guard.refuse_second_answer(report, serial)
        log.warning(
            "%s: set aside an O&M report #%s for %r while waiting for %s",
            self.params.name,
            serial or "?",
            report.echo,
            masked,
        )
        _set_aside(self.stale, report)
        return None

    def _drain(self) -> None:
        """Look at what has already arrived after an answer, without waiting: a second answer
        to a command is refused before the first is handed on. Anything else stays in the
        buffer for the next command to take as usual."""
        try:
            data = self.transport.read(time.monotonic())
        except TransportError:
            data = b""  # a closed connection shows at the next command
        self._buffer += self._line_ends.feed(data)
        start = 0
        while (m := _END_BYTES.search(self._buffer, start)) is not None:
            frame = self._clean(decode(self._buffer[start : m.end()], self._encoding)[0])
            start = m.end()
            try:
                report = parse_report(skip_noise(self._sent, frame))
            except ParseError:
                continue  # the next command reports it, in its own words
            if not report.autonomous:
                try:
                    self._guard.refuse_second_answer(report, element_head(frame)[1])
                except AnswerError:
                    if self.transcript is not None:
                        self.transcript.add("<<<", frame)
                    raise

    def _read_frame(self, masked: str, deadline: float, timeout: float) -> str:
        """The next text up to and including a ``---    END`` line, masked."""
        while True:
            m = _END_BYTES.search(self._buffer)
            if m is not None:
                end = m.end() + (self._buffer[m.end() : m.end() + 1] == b"\n")  # the line's LF
                data, self._buffer = self._buffer[:end], self._buffer[end:]
                text, used = decode(data, self._encoding)
                if used != self._encoding:
                    log.debug("%s: not UTF-8, reading GB18030 from now on", self.params.name)
                    self._encoding = used
                frame = self._clean(text)
                if self.transcript is not None:
                    self.transcript.add("<<<", frame)
                return frame
            if time.monotonic() >= deadline:
                tail = self._clean(self._pending())[-TAIL_BYTES:]
                if self.transcript is not None and self._buffer:
                    self.transcript.add("<<<", self._clean(self._pending()))
                raise MmlTimeout(
                    f"{self.params.name} ({self.params.address}): no complete reply to {masked} "
                    f"within {timeout:g} s; last bytes received: {tail!r}: check the element's "
                    "load, or raise timeout for this host"
                )
            try:
                data = self.transport.read(deadline)
            except TransportError as exc:
                if self.transcript is not None and self._buffer:
                    self.transcript.add("<<<", self._clean(self._pending()))
                raise TransportError(
                    f"{self.params.name}: connection lost while waiting for the reply to "
                    f"{masked}: {exc}"
                ) from None
            self._buffer += self._line_ends.feed(data)
            if len(self._buffer) > MAX_FRAME_CHARS:
                tail = self._clean(self._pending())[-TAIL_BYTES:]  # clean first: a cut splits names
                raise ParseError(
                    f"{self.params.name} ({self.params.address}): more than {MAX_FRAME_CHARS} "
                    f"characters in reply to {masked} without a '---    END' line; last bytes "
                    f"received: {tail!r}: check that the port speaks MML"
                )

    def _pending(self) -> str:
        """The bytes received after the last frame, as text (for messages and transcripts)."""
        partial = "utf-8" if self._encoding == "auto" else self._encoding  # may end mid-character
        return decode(self._buffer, partial)[0]


def _set_aside(reports: list[MmlReport], report: MmlReport) -> None:
    reports.append(report)
    del reports[:-MAX_SET_ASIDE]
