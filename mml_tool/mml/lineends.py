"""Line ends as a terminal delivers them, made plain before the session frames a reply.

An element behind a normal (cooked) pty, e.g. an OpenSSH ``ForceCommand`` without
``stty raw``, has every LF it writes turned into CR LF by the pty's output processing
(``ONLCR``): its CRLF lines arrive as CR CR LF. Read as they are, each line would end twice.
"""

from __future__ import annotations

import re

_CRS_LF = re.compile(rb"\r+\n")


class LineEnds:
    """Turns any run of CRs before an LF into one CR LF, also across reads.

    Works on bytes before decoding: a CR byte (0x0D) is never part of a multi-byte character
    in UTF-8 or GB18030, so no character can be cut.
    """

    def __init__(self) -> None:
        self._held = b""  # trailing CRs whose LF may come with the next read

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        body = data.rstrip(b"\r")
        self._held = data[len(body) :]
        return _CRS_LF.sub(b"\r\n", body)
