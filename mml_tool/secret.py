"""A secret value that never prints itself."""

from __future__ import annotations

from dataclasses import dataclass, field

MASK = "*****"


@dataclass(frozen=True)
class Secret:
    """Wraps a password or token so that repr(), str() and f-strings show only a mask.

    Call ``reveal()`` at the single place the value must go on the wire.
    """

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __bool__(self) -> bool:
        return bool(self._value)
