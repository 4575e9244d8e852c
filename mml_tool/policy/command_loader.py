"""Reading the parts of a policy file that hold MML text or values compared as text: a
command rule (its command, `match`, `expect`, `count`) and remediation templates, and numbers
written as the reader means them. Every message names file, control and field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mml_tool.errors import CommandError
from mml_tool.mml.command import MmlCommand
from mml_tool.policy.checker import _Checker, _show
from mml_tool.policy.rules import (
    OPERATORS,
    CommandRule,
    Count,
    Expect,
    check_template,
    template_fields,
)
from mml_tool.policy.written import number_problem


def _templates(
    check: _Checker, data: dict[str, Any], where: str, f: str, allowed: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The remediation and rollback command templates: both or neither, each a write."""
    out: list[tuple[str, ...]] = []
    for name in ("remediation", "rollback"):
        raw = data.get(name)
        texts = () if raw is None else check.text_list(raw, where, f"{f}.{name}")
        for i, text in enumerate(texts):
            problem = check_template(text, allowed)
            if problem is not None:
                raise check.fail(
                    where, f"{f}.{name}[{i}]", problem, "give a write command, e.g. MOD ..."
                )
        out.append(texts)
    if bool(out[0]) != bool(out[1]):
        missing = "rollback" if out[0] else "remediation"
        raise check.fail(
            where, f"{f}.{missing}", "is missing", "remediation and rollback come together"
        )
    return out[0], out[1]


def _number(check: _Checker, container: dict[str, Any], key: str, where: str, fld: str) -> None:
    """Refuse a number YAML 1.1 reads as another (010 as 8, 12:30 as 750) or as text (1e3).
    Numbers by design: 0x10, 0b101 and 1_000 are the numbers they look like."""
    node = check.written.scalar(container, key) if check.written is not None else None
    problem = number_problem(container.get(key), node)
    if problem is not None:
        raise check.fail(where, fld, *problem)


def _scalar(check: _Checker, container: Any, key: str | int, where: str, fld: str) -> str:
    """``container[key]``, a value compared as text with what a device prints."""
    value = container[key]
    check.misread(container, key, where, fld)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise check.fail(where, fld, f"is {_show(value)}", "expected text or a whole number")
    return str(value).strip()


def _field_name(check: _Checker, name: object, where: str, fld: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
        raise check.fail(
            where, fld, f"names field {_show(name)}", "template fields are UPPERCASE words"
        )
    return name


def _expect_equals(check: _Checker, name: str, data: dict[str, Any], where: str, at: str) -> Expect:
    return Expect(name, "equals", text=_scalar(check, data, "equals", where, at))


def _expect_in(check: _Checker, name: str, data: dict[str, Any], where: str, at: str) -> Expect:
    arg = data["in"]
    if not isinstance(arg, list) or not arg:
        raise check.fail(where, at, f"is {_show(arg)}", "expected a non-empty list")
    options = tuple(_scalar(check, arg, i, where, f"{at}[{i}]") for i in range(len(arg)))
    return Expect(name, "in", options=options)


def _expect_regex(check: _Checker, name: str, data: dict[str, Any], where: str, at: str) -> Expect:
    arg = data["regex"]
    check.misread(data, "regex", where, at)
    if not isinstance(arg, str):
        raise check.fail(where, at, f"is {_show(arg)}", "expected a regular expression")
    try:
        re.compile(arg)
    except re.error as exc:
        raise check.fail(where, at, f"is not a regular expression ({exc})", "fix it") from None
    return Expect(name, "regex", text=arg)


def _expect_range(check: _Checker, name: str, data: dict[str, Any], where: str, at: str) -> Expect:
    bounds = check.mapping(data["range"], where, at)
    low, high = bounds.get("min"), bounds.get("max")
    for key, bound in (("min", low), ("max", high)):
        _number(check, bounds, key, where, f"{at}.{key}")
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            raise check.fail(where, f"{at}.{key}", f"is {_show(bound)}", "expected a number")
    if low is None and high is None:
        raise check.fail(where, at, "has neither min nor max", "give min, max or both")
    if low is not None and high is not None and low > high:
        raise check.fail(where, at, f"has min {low} > max {high}", "give min <= max")
    return Expect(name, "range", low=low, high=high)


_EXPECT_PARSERS = {  # one per rules.OPERATORS
    "equals": _expect_equals,
    "in": _expect_in,
    "regex": _expect_regex,
    "range": _expect_range,
}


def _expect(check: _Checker, name: str, raw: object, where: str, fld: str) -> Expect:
    data = check.mapping(raw, where, fld)
    ops = [op for op in OPERATORS if data.get(op) is not None]
    if len(ops) != 1:
        raise check.fail(
            where,
            fld,
            f"names {', '.join(ops) or 'no operator'}",
            f"give exactly one of {', '.join(OPERATORS)}",
        )
    op = ops[0]
    return _EXPECT_PARSERS[op](check, name, data, where, f"{fld}.{op}")


def _count(check: _Checker, raw: object, where: str, fld: str) -> Count:
    data = check.mapping(raw, where, fld)
    values = {}
    for key in ("equals", "min", "max"):
        _number(check, data, key, where, f"{fld}.{key}")
        if data.get(key) is not None:
            values[key] = check.integer(data[key], where, f"{fld}.{key}", range(0, 1_000_001))
    if "equals" in values and len(values) > 1:
        raise check.fail(where, fld, "gives equals with min/max", "give equals, or min/max")
    if not values:
        raise check.fail(where, fld, "is empty", "give equals, min or max")
    if "equals" in values:
        return Count(values["equals"], values["equals"])
    low, high = values.get("min", 0), values.get("max")
    if high is not None and low > high:
        raise check.fail(where, fld, f"has min {low} > max {high}", "give min <= max")
    return Count(low, high)


def _command_rule(check: _Checker, data: dict[str, Any], where: str) -> CommandRule:
    f = "rule.command"
    command = _read_command(check, data["run"], where)
    match_raw = check.mapping(data.get("match") or {}, where, f"{f}.match")
    match = tuple(
        (
            _field_name(check, k, where, f"{f}.match"),
            _scalar(check, match_raw, k, where, f"{f}.match.{k}"),
        )
        for k in match_raw
    )
    expect_raw = check.mapping(data.get("expect") or {}, where, f"{f}.expect")
    expect = tuple(
        _expect(check, _field_name(check, k, where, f"{f}.expect"), v, where, f"{f}.expect.{k}")
        for k, v in expect_raw.items()
    )
    count = None if data.get("count") is None else _count(check, data["count"], where, f"{f}.count")
    if not expect and count is None:
        raise check.fail(where, f"{f}.expect", "is empty and no count is given", "give either")
    remediation, rollback = _templates(check, data, where, f, None)
    _check_expected_field(check, expect, remediation, rollback, where)
    return CommandRule(command, match, expect, count, remediation, rollback)


def _read_command(check: _Checker, raw: object, where: str) -> MmlCommand:
    """The rule's ``run``: a valid MML command that reads (LST or DSP)."""
    f = "rule.command"
    text = check.text(raw, where, f"{f}.run")
    try:
        command = MmlCommand.parse(text)
    except CommandError as exc:
        raise check.fail(
            where, f"{f}.run", f"is not a valid MML command ({exc})", "fix it"
        ) from None
    if command.verb not in ("LST", "DSP"):
        raise check.fail(
            where, f"{f}.run", f"is a {command.verb} command", "a rule reads: LST or DSP only"
        )
    return command


def _check_expected_field(
    check: _Checker,
    expect: tuple[Expect, ...],
    remediation: tuple[str, ...],
    rollback: tuple[str, ...],
    where: str,
) -> None:
    """A template may use ``{expected}`` only when the rule has exactly one equals."""
    equals = [e for e in expect if e.op == "equals"]
    for name, texts in (("remediation", remediation), ("rollback", rollback)):
        for i, t in enumerate(texts):
            if "expected" in template_fields(t) and len(equals) != 1:
                raise check.fail(
                    where,
                    f"rule.command.{name}[{i}]",
                    f"uses {{expected}}, but the rule has {len(equals)} equals expectations",
                    "use {expected} with exactly one equals, or name the value",
                )
