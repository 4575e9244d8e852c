"""The policy loader's value checks: every message names file, control and field."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from mml_tool.errors import PolicyError
from mml_tool.policy.written import Written, misread, reads_as_written
from mml_tool.yamlload import show


class _Checker:
    """Validates one policy document; every message names file, control and field."""

    def __init__(self, source: str, written: Written | None = None) -> None:
        self.source = source
        self.written = written  # how each value was written (None: not known)

    def misread(self, container: Any, key: str | int, where: str, fld: str) -> None:
        """Refuse ``container[key]`` when YAML read it as a value that is not its text as
        written (``0x10`` as 16, ``on`` as true): it is compared with what a device prints."""
        if isinstance(container, dict) and key not in container:
            return  # a missing field has its own message
        value = container[key]
        node = self.written.scalar(container, key) if self.written is not None else None
        # Nothing written (``key:`` alone): the caller's own message says what is expected.
        if node is not None and node.value and not reads_as_written(value, node):
            raise self.fail(
                where, fld, *misread(value, node, key if isinstance(key, str) else None)
            )

    def fail(self, where: str, fld: str, problem: str, allowed: str) -> PolicyError:
        place = f"{where}, " if where else ""
        return PolicyError(f"{self.source}: {place}field {fld!r}: {problem}; {allowed}")

    def mapping(self, value: object, where: str, fld: str) -> dict[str, Any]:
        # Keys were checked against the models (schema.shape_error) before any value.
        if not isinstance(value, dict):
            raise self.fail(where, fld, f"is a {_kind(value)}", "expected a mapping")
        return value

    def text(self, value: object, where: str, fld: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, fld, f"is {_show(value)}", "expected non-empty text")
        return value.strip()

    def text_list(self, value: object, where: str, fld: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, fld, f"is a {_kind(value)}", "expected a list of names")
        for i in range(len(value)):
            self.misread(value, i, where, f"{fld}[{i}]")
        return tuple(self.text(v, where, f"{fld}[{i}]") for i, v in enumerate(value))

    def integer(self, value: object, where: str, fld: str, allowed: Sequence[int]) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(
                where,
                fld,
                f"is {_show(value)} ({_kind(value)})",
                f"expected an integer in {_span(allowed)}",
            )
        if value not in allowed:
            raise self.fail(where, fld, f"is {value}", f"allowed: {_span(allowed)}")
        return value

    def day(self, value: object, where: str, fld: str) -> date:
        if isinstance(value, datetime):  # YAML reads "2026-12-31 10:00" as a datetime
            return value.date()
        if isinstance(value, date):
            return value
        try:
            if not isinstance(value, str):  # str() of a list may expand an alias bomb
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(
                where, fld, f"is {_show(value)}", "expected a date as YYYY-MM-DD"
            ) from None


_KINDS = {
    dict: "mapping",
    list: "list",
    str: "text",
    type(None): "null",
    bool: "boolean",
    int: "whole number",
    float: "number",
    bytes: "binary value",
}


def _kind(value: object) -> str:
    """What ``value`` is, in the words of a file's author (not a Python type name)."""
    return _KINDS.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    return show(value)  # never repr(): the value may be an alias bomb (see yamlload)


def _span(allowed: Sequence[int]) -> str:
    return f"{allowed[0]}..{allowed[-1]}" if len(allowed) > 2 else " or ".join(map(str, allowed))
