"""LineEnds: a cooked pty's CR CR LF made CR LF, wherever the reads split it."""

from __future__ import annotations

import pytest

from mml_tool.mml.lineends import LineEnds

COOKED = b"+++    UAP-1        2026-01-01 00:00:00\r\r\nO&M    #1\r\r\n---    END\r\r\n"
PLAIN = b"+++    UAP-1        2026-01-01 00:00:00\r\nO&M    #1\r\n---    END\r\n"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64])
def test_cr_cr_lf_split_anywhere(size: int) -> None:
    ends = LineEnds()
    out = b"".join(ends.feed(COOKED[i : i + size]) for i in range(0, len(COOKED), size))
    assert out == PLAIN


def test_plain_line_ends_pass_unchanged() -> None:
    data = b"a\r\nb\nc\rd\r\n"
    assert LineEnds().feed(data) == data


def test_trailing_crs_wait_for_the_next_read() -> None:
    ends = LineEnds()
    assert ends.feed(b"x\r\r") == b"x"
    assert ends.feed(b"\ny") == b"\r\ny"
    assert ends.feed(b"\r") == b""
    assert ends.feed(b"z") == b"\rz"  # a lone CR is kept: not a line end this module makes


def test_multibyte_text_is_not_cut() -> None:
    text = "操作成功\r\r\n".encode("gb18030") + "操作成功\r\r\n".encode()
    ends = LineEnds()
    out = b"".join(ends.feed(text[i : i + 1]) for i in range(len(text)))
    assert out == "操作成功\r\n".encode("gb18030") + "操作成功\r\n".encode()
