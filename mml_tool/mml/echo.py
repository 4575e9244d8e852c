"""Whether a report's ``%%echo%%`` is the command we sent: the element may prefix it
(``241299``, ``/*1879 MEID=5*/``), change whitespace and case outside quotes, and echo a masked
password bare."""

from __future__ import annotations

import functools
import re

from mml_tool.mml.command import mask_text
from mml_tool.secret import MASK

_ECHO_PREFIX = re.compile(r"^(?:\s*(?:[0-9]+|/\*.*?\*/))*")  # "241299", "/*1879 MEID=5*/"
_QUOTED = re.compile(r'("[^"]*")')
_SPACES = re.compile(r"\s+")


def echo_matches(echo: str, command: str) -> bool:
    """Whether ``echo`` (from ``%%...%%``) is ``command``, allowing leading numbers and
    ``/*...*/`` comments. Outside quotes, whitespace and case do not count; inside, they do."""
    return _echo_norm(_ECHO_PREFIX.sub("", echo, count=1)) == _echo_norm(command)


def _echo_norm(text: str) -> str:
    """``text`` masked (so a masked command matches too), whitespace and case dropped outside
    quotes, without a final ``;``."""
    return _norm_masked(mask_text(text))  # masked first: no secret is kept in the cache


@functools.lru_cache(maxsize=4096)  # the same few commands and echoes, host after host
def _norm_masked(masked: str) -> str:
    # An element may echo a masked password bare (PWD=*****) where we sent it quoted.
    parts = _QUOTED.split(masked.replace(f'"{MASK}"', MASK))  # odd indexes: quoted strings
    joined = "".join(p if i % 2 else _SPACES.sub("", p).upper() for i, p in enumerate(parts))
    return joined.rstrip(";")


def command_from_echo(echo: str) -> str:
    """The command an echo shows, without the element's prefix (``241299``, ``/*...*/``)."""
    return _ECHO_PREFIX.sub("", echo, count=1).strip()
