"""Rule kinds beyond one SFP bit: a mask of bits, a whole value, any read-only command.

Every rule judges the parsed records of its check command into a ``Judgement`` (an integer the
change path compares: the bit, the masked bits, the whole value, or 1/0 for a command rule
that holds or not) and derives its remediation and rollback commands from the rule and what
was read, never from anything else. A value that cannot be read raises ``ParseError``: an
error, never a pass. Bit and mask rules change one bit a command (``MOD SFP ... MODTYPE=P1``);
whole-value and command rules are check-only unless the policy names command templates.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mml_tool.errors import CommandError, ParseError
from mml_tool.mml.command import MmlCommand, Quoted

MAX_VALUE = 0xFFFF  # 16-bit fields, as MAX_BIT says


@dataclass(frozen=True)
class Judgement:
    """What a rule read: ``value`` to compare with ``target``, ``state`` (drift detection),
    ``actual`` (for people), the records a remediation is filled from."""

    value: int
    target: int
    state: str
    actual: str
    failing: tuple[dict[str, str], ...] = ()

    @property
    def passed(self) -> bool:
        return self.value == self.target


@functools.lru_cache(maxsize=1024)  # a fleet's plan asks for the same few commands per host
def _sfp_bit(parameter: str, bit: int, value: int) -> str:
    # MODTYPE=P1 modifies one bit (the vendor's documented form for P978).
    return MmlCommand.create(
        "MOD", "SFP", ID=parameter, MODTYPE="P1", BIT=bit, BITVAL=value
    ).render()


# --- command templates ----------------------------------------------------------------------


def template_fields(template: str) -> list[str]:
    """The ``{NAME}`` placeholders of a command template (ValueError when malformed, or
    when one has a format spec or conversion: a value is inserted as it was read)."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} has a format; write {{NAME}} only")
        names.append(name)
    return names


def _shape(command: MmlCommand) -> tuple[str, str, tuple[str, ...], tuple[bool, ...]]:
    return (
        command.verb,
        command.obj,
        tuple(n for n, _ in command.params),
        tuple(isinstance(v, Quoted) for _, v in command.params),
    )


def check_template(template: str, allowed: Sequence[str] | None) -> str | None:
    """Why ``template`` is not a usable write command template (None: it is)."""
    try:
        names = template_fields(template)
    except ValueError as exc:
        return f"is not a command template ({exc})"
    for name in names:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            return f"placeholder {{{name}}} is not a field name"
        if allowed is not None and name not in allowed:
            return f"placeholder {{{name}}} is not one of {', '.join(allowed)}"
    try:
        command = MmlCommand.parse(template.format_map({n: "X" for n in names}))
    except CommandError as exc:
        return f"is not a valid MML command ({exc})"
    if command.is_read_only:
        return f"is a read-only command ({command.verb}), not a change"
    return None


def fill(template: str, values: Mapping[str, str | int]) -> str:
    """The command ``template`` names, filled from ``values``; refuses (``ParseError``) a
    value that would change the command's shape (another parameter, a closed quote)."""
    names = template_fields(template)
    missing = [n for n in names if n not in values]
    if missing:
        raise ParseError(f"the reply has no field {missing[0]} for the command {template!r}")
    try:
        command = MmlCommand.parse(template.format_map({n: values[n] for n in names}))
        dummy = MmlCommand.parse(template.format_map({n: "X" for n in names}))
    except CommandError as exc:
        raise ParseError(f"a value read does not fit the command {template!r}: {exc}") from None
    if _shape(command) != _shape(dummy):
        raise ParseError(f"a value read would change the shape of the command {template!r}")
    return command.render()


# --- software parameter: mask and whole value -----------------------------------------------


def whole_value(records: Sequence[dict[str, str]], parameter: str, bits: Sequence[int]) -> int:
    """``parameter``'s bits ``bits`` as an integer (bit i at 1 << i), each read as
    ``bit_from_records`` reads one; ParseError when one is absent or unreadable."""
    from mml_tool.policy.evaluate import bit_from_records

    return sum(bit_from_records(records, parameter, b) << b for b in bits)


@dataclass(frozen=True)
class SfpMaskRule:
    """Software parameter ``parameter`` must have ``value & mask`` in the bits of ``mask``."""

    parameter: str
    mask: int
    value: int
    kind = "mask"

    @property
    def target(self) -> int:
        return self.value

    @property
    def bits(self) -> list[int]:
        return [b for b in range(16) if self.mask >> b & 1]

    def describe(self, value: int | None = None) -> str:
        shown = self.value if value is None else value
        return f"{self.parameter} & 0x{self.mask:04X} = 0x{shown:04X}"

    @functools.cached_property  # the rule is immutable; asked for per host
    def check_command(self) -> MmlCommand:
        return MmlCommand.create("LST", "SFP", ID=self.parameter)

    def judge(self, records: Sequence[dict[str, str]]) -> Judgement:
        from mml_tool.policy.evaluate import parameter_state

        value = whole_value(records, self.parameter, self.bits)
        state = parameter_state(records, self.parameter)
        return Judgement(value, self.value, state, self.describe(value))

    def derive(
        self, start: int, records: Sequence[dict[str, str]] = ()
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """One ``MOD SFP`` a bit that differs, and the one putting back its value read."""
        moved = [b for b in self.bits if (start >> b & 1) != (self.value >> b & 1)]
        do = tuple(_sfp_bit(self.parameter, b, self.value >> b & 1) for b in moved)
        undo = tuple(_sfp_bit(self.parameter, b, start >> b & 1) for b in moved)
        return do, undo


@dataclass(frozen=True)
class SfpValueRule:
    """Software parameter ``parameter`` must equal ``value`` as a whole. Check-only unless
    the policy names ``remediation`` and ``rollback`` templates (placeholders ``{ID}``,
    ``{expected}``, ``{before}``): the MODTYPE that writes a whole value is not public."""

    parameter: str
    value: int
    remediation: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ()
    kind = "value"
    PLACEHOLDERS = ("ID", "expected", "before")

    @property
    def target(self) -> int:
        return self.value

    def describe(self, value: int | None = None) -> str:
        return f"{self.parameter} = {self.value if value is None else value}"

    @functools.cached_property  # the rule is immutable; asked for per host
    def check_command(self) -> MmlCommand:
        return MmlCommand.create("LST", "SFP", ID=self.parameter)

    def judge(self, records: Sequence[dict[str, str]]) -> Judgement:
        from mml_tool.policy.evaluate import _whole_value, parameter_state

        wholes = {
            w
            for r in records
            if r.get("ID", "").strip().upper() == self.parameter.upper()
            and (w := _whole_value(r, self.parameter)) is not None
        }
        if len(wholes) > 1:
            raise ParseError(f"the reply gives {self.parameter} two values: {sorted(wholes)}")
        # Per-bit replies: every bit must be listed, or the value is not known.
        value = wholes.pop() if wholes else whole_value(records, self.parameter, range(16))
        state = parameter_state(records, self.parameter)
        return Judgement(value, self.value, state, self.describe(value))

    def derive(
        self, start: int, records: Sequence[dict[str, str]] = ()
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        values: dict[str, str | int] = {
            "ID": self.parameter,
            "expected": self.value,
            "before": start,
        }
        return (
            tuple(fill(t, values) for t in self.remediation),
            tuple(fill(t, values) for t in self.rollback),
        )


# --- any read-only command -------------------------------------------------------------------

OPERATORS = ("equals", "in", "regex", "range")


@dataclass(frozen=True)
class Expect:
    """One field's expectation: ``op`` is one of OPERATORS, ``arg`` its argument."""

    field: str
    op: str
    text: str = ""  # equals, regex
    options: tuple[str, ...] = ()  # in
    low: float | None = None  # range
    high: float | None = None

    def describe(self) -> str:
        if self.op == "equals":
            return f"{self.field} = {self.text}"
        if self.op == "in":
            return f"{self.field} in {{{', '.join(self.options)}}}"
        if self.op == "regex":
            return f"{self.field} ~ /{self.text}/"
        low, high = ("" if b is None else f"{b:g}" for b in (self.low, self.high))
        return f"{self.field} in [{low}..{high}]"

    def holds(self, text: str) -> bool:
        if self.op == "equals":
            return text == self.text
        if self.op == "in":
            return text in self.options
        if self.op == "regex":
            return re.fullmatch(self.text, text) is not None
        if not re.fullmatch(r"-?[0-9]{1,20}(\.[0-9]{1,20})?", text):
            raise ParseError(f"{self.field} is {text[:40]!r}, not a number: cannot judge a range")
        number = float(text)
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high
        )


@dataclass(frozen=True)
class Count:
    """How many records ``match`` must select: ``low``..``high`` (None: unbounded)."""

    low: int
    high: int | None

    def describe(self) -> str:
        if self.high == self.low:
            return "no record" if self.low == 0 else f"exactly {self.low}"
        return f"at least {self.low}" if self.high is None else f"{self.low}..{self.high}"

    def holds(self, n: int) -> bool:
        return n >= self.low and (self.high is None or n <= self.high)


def _canonical(records: Sequence[Mapping[str, str]]) -> str:
    return json.dumps(list(records), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class CommandRule:
    """Records of a read-only command (LST/DSP) that ``match`` selects must satisfy every
    ``expect``, and be ``count`` many. Judged 1 when they do, 0 when not. Check-only unless
    ``remediation`` and ``rollback`` templates are named: filled from each failing record
    (``{FIELD}``), ``{expected}`` being the one ``equals`` value."""

    command: MmlCommand
    match: tuple[tuple[str, str], ...] = ()
    expect: tuple[Expect, ...] = ()
    count: Count | None = None
    remediation: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ()
    kind = "command"
    parameter = ""  # a plan step's parameter ("" for a command rule)
    target = 1  # judged 1 when the records are as expected

    @property
    def check_command(self) -> MmlCommand:
        return self.command

    def describe(self, value: int | None = None) -> str:
        parts = [", ".join(e.describe() for e in self.expect)] if self.expect else []
        if self.count is not None:
            parts.append(f"count {self.count.describe()}")
        where = ", ".join(f"{k}={v}" for k, v in self.match)
        head = self.command.render() + (f" where {where}" if where else "")
        return f"{head}: {'; '.join(parts)}"

    @property
    def expected_value(self) -> str | None:
        equals = [e for e in self.expect if e.op == "equals"]
        return equals[0].text if len(equals) == 1 else None

    def _field(self, record: Mapping[str, str], name: str) -> str:
        if name not in record:
            raise ParseError(
                f"the template for {self.command.render()} has no field {name}: "
                f"it gives {', '.join(sorted(record))}"
            )
        return record[name].strip()

    def selected(self, records: Sequence[dict[str, str]]) -> list[dict[str, str]]:
        return [r for r in records if all(self._field(r, k) == v for k, v in self.match)]

    def _unmet(self, record: Mapping[str, str]) -> list[str]:
        """``FIELD=value`` for each expectation ``record`` does not meet."""
        bad = []
        for expect in self.expect:
            text = self._field(record, expect.field)
            if not text:
                raise ParseError(f"{expect.field} is empty in a record: cannot judge it")
            if not expect.holds(text):
                bad.append(f"{expect.field}={text}")
        return bad

    def _count_problem(self, chosen: int) -> str | None:
        if self.count is not None and not self.count.holds(chosen):
            return f"{chosen} record(s), expected {self.count.describe()}"
        if self.count is None and not chosen and self.expect:
            return "no record matches"
        return None

    def judge(self, records: Sequence[dict[str, str]]) -> Judgement:
        chosen = self.selected(records)
        problems: list[str] = []
        failing: list[dict[str, str]] = []
        for record in chosen:
            bad = self._unmet(record)
            if bad:
                failing.append(record)
                # Name the record by what selected it, and its NAME or ID when it has one.
                named = {*dict(self.match), "NAME", "ID"}
                key = ", ".join(f"{k}={v}" for k, v in sorted(record.items()) if k in named)
                problems.append(f"{key or 'a record'}: {', '.join(bad)}")
        if (count_problem := self._count_problem(len(chosen))) is not None:
            problems.insert(0, count_problem)
        actual = "; ".join(problems) if problems else f"{len(chosen)} record(s), all as expected"
        return Judgement(0 if problems else 1, 1, _canonical(chosen), actual, tuple(failing))

    def derive(
        self, start: int, records: Sequence[dict[str, str]] = ()
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Commands filled from each failing record of ``records`` (the reply read before the
        change). None when the count is off or a record is missing: nothing to fill from."""
        if not self.remediation:
            return (), ()
        judgement = self.judge(records)
        chosen = self.selected(records)
        if judgement.passed or (self.count is not None and not self.count.holds(len(chosen))):
            return (), ()
        if not judgement.failing:
            return (), ()
        do: list[str] = []
        undo: list[str] = []
        for record in judgement.failing:
            values: dict[str, str | int] = {k: v.strip() for k, v in record.items()}
            if self.expected_value is not None:
                values["expected"] = self.expected_value
            do += [fill(t, values) for t in self.remediation]
            undo += [fill(t, values) for t in self.rollback]
        return tuple(do), tuple(undo)
