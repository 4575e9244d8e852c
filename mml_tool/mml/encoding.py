"""Text encodings of MML elements: UTF-8, or GB18030 on Chinese-language elements.

Chinese-language elements (and the M2000 alarm stream) send GBK/GB18030 bytes, not UTF-8
(reference/mml-protocol.md); GB18030 is a superset of GBK and of GB2312. ``auto`` reads UTF-8
and falls back to GB18030 when the bytes are not valid UTF-8: Chinese text in GB18030 is
practically never valid UTF-8, and ASCII is the same in both.
"""

from __future__ import annotations

ENCODINGS = ("auto", "utf-8", "gb18030")
DEFAULT_ENCODING = "auto"


def check_encoding(name: str) -> str:
    """The canonical name of a supported encoding; ValueError naming the choices otherwise."""
    canonical = name.strip().lower().replace("_", "-")
    canonical = {"utf8": "utf-8", "gbk": "gb18030", "gb2312": "gb18030"}.get(canonical, canonical)
    if canonical not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}: use one of {', '.join(ENCODINGS)}")
    return canonical


def decode(data: bytes, encoding: str = DEFAULT_ENCODING) -> tuple[str, str]:
    """``data`` as text and the encoding used (``utf-8`` or ``gb18030``).

    Undecodable bytes become U+FFFD (visible, never a guessed character); with ``auto`` that
    only happens when the bytes are neither valid UTF-8 nor valid GB18030.
    """
    if encoding == "auto":
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            encoding = "gb18030"
    return data.decode(encoding, errors="replace"), encoding


def encode(text: str, encoding: str = DEFAULT_ENCODING) -> bytes:
    """``text`` as bytes for the element: ``auto`` sends UTF-8 (ASCII commands are the same in
    both)."""
    return text.encode("utf-8" if encoding == "auto" else encoding)
