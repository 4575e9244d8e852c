"""Evaluation of a control against the parsed records of its check command."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from mml_tool.errors import ParseError
from mml_tool.mml.command import mask_text
from mml_tool.policy.models import Control, Finding, Rule, Waiver
from mml_tool.policy.rules import Judgement
from mml_tool.results import FindingStatus

# --- evaluation ------------------------------------------------------------------------------


_DECIMAL = re.compile(r"[0-9]{1,20}")  # compiled once: read for every record of every host


def _number(text: str, what: str) -> int:
    # Decimal ASCII only: the reply prints decimal; anything else is a format we do not know.
    # (str.isdigit() and int() also take '²', '٠', '０': a crash or a silent 0; 20 digits
    # bound int().)
    if not _DECIMAL.fullmatch(text):
        raise ParseError(
            f"{what} is {text[:40]!r}, not a decimal number in ASCII digits (0-9): "
            "the reply cannot be judged"
        )
    return int(text)


def _whole_value(record: dict[str, str], parameter: str) -> int | None:
    """The whole value: ``VALUE`` in decimal, or ``HEX`` alone (``0x0005``; when both are
    printed the parser has checked that they agree)."""
    whole, hex_text = record.get("VALUE", "").strip(), record.get("HEX", "").strip()
    if whole:
        return _number(whole, f"{parameter} value")
    if not hex_text:
        return None
    digits = hex_text.removeprefix("0x").removeprefix("0X").removesuffix("h").removesuffix("H")
    try:
        if len(digits) > 16:
            raise ValueError(digits)
        return int(digits, 16)
    except ValueError:
        raise ParseError(f"{parameter} value {hex_text!r} is not a hexadecimal number") from None


def _bit_index(record: dict[str, str], parameter: str) -> int | None:
    """The 0-based bit a per-bit record names: ``BIT`` counts from 0 (as ``MOD SFP``'s BIT
    does); ``BIT_FROM_1`` is a position counted from 1, for templates of elements that print
    it so (UDG's 软参BIT位位置). Which one a template fills is how it states its base."""
    zero = record.get("BIT", "").strip()
    one = record.get("BIT_FROM_1", "").strip()
    if zero and one:
        raise ParseError(f"{parameter}: a record gives both BIT and BIT_FROM_1; fill only one")
    if one:
        position = _number(one, f"{parameter} bit position (from 1)")
        if position < 1:
            raise ParseError(f"{parameter} bit position {position}: positions start at 1")
        return position - 1
    return _number(zero, f"{parameter} bit index") if zero else None


def bit_from_records(records: Sequence[dict[str, str]], parameter: str, bit: int) -> int:
    """The value (0/1) of ``bit`` of ``parameter`` from per-bit or whole-value records.

    Raises ParseError when the parameter or bit is absent, a value is not a number, or the
    records disagree: the caller reports that as an error and changes nothing.
    """
    seen: set[int] = set()
    found_parameter = False
    for record in records:
        if record.get("ID", "").strip().upper() != parameter.upper():
            continue
        found_parameter = True
        index = _bit_index(record, parameter)
        bit_text = "" if index is None else str(index)
        bit_value = record.get("BIT_VALUE", "").strip()
        whole = _whole_value(record, parameter)
        if index is not None and bit_value:
            value = _number(bit_value, f"{parameter} bit {bit_text} value")
            if value not in (0, 1):
                raise ParseError(f"{parameter} bit {bit_text} has value {value}, not 0 or 1")
            if index == bit:
                seen.add(value)
        if whole is not None:
            seen.add((whole >> bit) & 1)
    if not found_parameter:
        raise ParseError(f"{parameter} is not in the reply")
    if not seen:
        raise ParseError(f"{parameter} bit {bit} is not in the reply")
    if len(seen) > 1:
        raise ParseError(f"the reply gives {parameter} bit {bit} as both 0 and 1")
    return seen.pop()


def parameter_state(records: Sequence[dict[str, str]], parameter: str) -> str:
    """The whole parameter as the reply shows it, canonical: ``value=5`` from a whole-value
    reply, else ``0=1,1=0,...`` from per-bit records. Two reads of an unchanged parameter give
    the same text, so a plan can tell whether anything in it moved since it was made."""
    values: set[str] = set()
    bits: dict[int, str] = {}
    for record in records:
        if record.get("ID", "").strip().upper() != parameter.upper():
            continue
        if (whole := _whole_value(record, parameter)) is not None:
            values.add(str(whole))
        index, bit_value = _bit_index(record, parameter), record.get("BIT_VALUE", "").strip()
        if index is not None and bit_value:
            bits[index] = bit_value
    parts = [f"value={v}" for v in sorted(values)]
    parts += [f"{bit}={bits[bit]}" for bit in sorted(bits)]
    return ",".join(parts)


def _judge(
    rule: Rule, records: Sequence[dict[str, str]] | None, error: str | None
) -> tuple[Judgement | None, str | None]:
    """(the rule's judgement of ``records``, or None with the error that prevents one)."""
    if error is not None:
        return None, error
    if records is None:
        return None, "no reply was parsed"
    try:
        return rule.judge(records), None
    except ParseError as exc:
        return None, f"cannot decide: {exc}"


def _status(judgement: Judgement | None, active: bool, notes: list[str]) -> FindingStatus:
    if judgement is None:
        if active:
            notes.append("a waiver applies, but it accepts a known state, not an unread one")
        return FindingStatus.ERROR
    if active:
        return FindingStatus.WAIVED
    return FindingStatus.PASS if judgement.passed else FindingStatus.FAIL


def _remediation(
    rule: Rule, value: int, records: Sequence[dict[str, str]] | None, notes: list[str]
) -> tuple[list[str], list[str]]:
    """(remediation, rollback) commands for a failed check, noting why there are none."""
    try:
        do, undo = rule.derive(value, records or ())
    except ParseError as exc:
        do, undo = (), ()
        notes.append(f"no remediation: {exc}")
    if not do:
        notes.append("check-only: the policy names no remediation for this state")
    return list(do), list(undo)


def evaluate(
    host_name: str,
    control: Control,
    records: Sequence[dict[str, str]] | None,
    *,
    raw: str = "",
    error: str | None = None,
    waiver: Waiver | None = None,
    today: date,
) -> Finding:
    """Judge one control on one host from the parsed reply to its check command.

    ``error`` (connection, RETCODE, parse failure) or unreadable records give status
    ``error`` with no remediation. An active waiver turns pass/fail into ``waived``; it does
    not hide an error. An expired waiver is ignored and noted.
    """
    rule = control.rule
    notes: list[str] = []
    judgement, error = _judge(rule, records, error)
    active = waiver is not None and waiver.active(today)
    if waiver is not None and not active:
        notes.append(f"waiver expired on {waiver.expires.isoformat()}: {waiver.reason}")
    status = _status(judgement, active, notes)
    remediation: list[str] = []
    rollback: list[str] = []
    if status is FindingStatus.FAIL and judgement is not None:
        remediation, rollback = _remediation(rule, judgement.value, records, notes)
    actual_bit = None if judgement is None else judgement.value
    state = None if judgement is None else judgement.state
    return Finding(
        host=host_name,
        control_id=control.id,
        status=status,
        expected=rule.describe(),
        actual=None if judgement is None else judgement.actual,
        evidence=mask_text(raw),
        remediation=remediation,
        rollback=rollback,
        error=None if error is None else mask_text(error),
        waiver_reason=waiver.reason if waiver is not None and active else None,
        before_bit_value=actual_bit,
        title=control.title,
        severity=control.severity,
        notes=notes,
        parameter_state=state,
        records=[dict(r) for r in records or []],
    )
