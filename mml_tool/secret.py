"""A secret value that never prints itself, and scrubbing of secret values from text."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "*****"
MIN_SCRUB = 4


def scrub(text: str, secrets: Iterable[Secret | str]) -> str:
    """``text`` with every occurrence of each secret value replaced by ``*****``.

    By value, not by parameter name: a device may repeat a password anywhere (a login error
    that echoes it, a banner). Longest first, so a secret that contains another goes whole.
    """
    return Scrubber(secrets)(text)


class Scrubber:
    """``scrub`` with its secrets prepared once (a session scrubs every frame it reads)."""

    __slots__ = ("_values",)

    def __init__(self, secrets: Iterable[Secret | str]) -> None:
        values = {s.reveal() if isinstance(s, Secret) else s for s in secrets}
        self._values = sorted((v for v in values if len(v) >= MIN_SCRUB), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        return text

    def __repr__(self) -> str:
        return f"Scrubber({len(self._values)} secret(s))"


class Secret:
    """Wraps a password or token so that repr(), str() and f-strings show only a mask.

    Call ``reveal()`` at the single place the value must go on the wire. Deliberately not a
    dataclass: ``dataclasses.asdict()`` of a ``HostConfig`` (or any record holding a Secret)
    must not turn the value into a plain dict entry that a report or audit record would write.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self._value == other._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "_value"):
            raise AttributeError("Secret is immutable")
        object.__setattr__(self, name, value)
