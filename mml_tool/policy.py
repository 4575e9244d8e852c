"""Compliance controls from YAML, and their evaluation against parsed replies.

A policy file (InSpec-like) holds controls and waivers::

    policy: {name: uap9600-one-way-video, version: 1}
    controls:
      - id: UAP-SFP-P978-B0
        title: ...
        severity: high                     # low | medium | high | critical
        description: ...                   # optional
        refs: [{title: ..., url_or_doc: ...}]        # optional
        targets: {hosts: [uap-*], groups: [video-cc]}  # optional; default: every host
        rule: {software_parameter: {id: P978, bit: 0, value: 0}}
    waivers:                               # optional
      - {host: uap-3, control: UAP-SFP-P978-B0, reason: "...", expires: 2026-12-31}

Everything is validated when the file is loaded, before any connection. Evaluation turns the
records of ``LST SFP`` into a ``Finding``; a bit that cannot be read is an error, never a pass.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from mml_tool.errors import ParseError, PolicyError
from mml_tool.mml.command import MmlCommand, mask_text
from mml_tool.yamlload import load_yaml, show

SEVERITIES = ("low", "medium", "high", "critical")
STATUSES = ("pass", "fail", "error", "waived")
BUILTIN_POLICY = "p978_one_way_video.yaml"
MAX_BIT = 15  # software parameters are 16-bit fields as far as public sources show
_PARAMETER_RE = re.compile(r"P[0-9]+")
_CONTROL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class HostLike(Protocol):
    """What a control needs to know of a host (inventory.HostConfig fits)."""

    @property
    def name(self) -> str: ...

    @property
    def groups(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Ref:
    title: str
    url_or_doc: str


@dataclass(frozen=True)
class SfpBitRule:
    """Software parameter ``parameter`` must have bit ``bit`` equal to ``value``."""

    parameter: str
    bit: int
    value: int

    def describe(self, value: int | None = None) -> str:
        return f"{self.parameter} bit {self.bit} = {self.value if value is None else value}"


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str
    description: str
    refs: tuple[Ref, ...]
    rule: SfpBitRule
    hosts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def applies_to(self, host: HostLike) -> bool:
        """No targets: every host. Otherwise a host name pattern or a group must match."""
        if not self.hosts and not self.groups:
            return True
        if any(fnmatchcase(host.name, pattern) for pattern in self.hosts):
            return True
        return any(group in self.groups for group in host.groups)

    @property
    def check_command(self) -> MmlCommand:
        return MmlCommand.create("LST", "SFP", ID=self.rule.parameter)

    def remediation(self) -> MmlCommand:
        return self._set_bit(self.rule.value)

    def rollback(self, before_value: int) -> MmlCommand:
        """The command that puts back the bit value read before the change."""
        if before_value not in (0, 1):
            raise ValueError(f"a bit value is 0 or 1, not {before_value!r}")
        return self._set_bit(before_value)

    def _set_bit(self, value: int) -> MmlCommand:
        # MODTYPE=P1 modifies one bit (the vendor's documented form for P978).
        rule = self.rule
        return MmlCommand.create(
            "MOD", "SFP", ID=rule.parameter, MODTYPE="P1", BIT=rule.bit, BITVAL=value
        )


@dataclass(frozen=True)
class Waiver:
    host: str
    control: str
    reason: str
    expires: date

    def active(self, today: date) -> bool:
        """A waiver holds up to and including its expiry date."""
        return today <= self.expires


@dataclass(frozen=True)
class Policy:
    name: str
    version: str
    path: Path
    sha256: str
    controls: tuple[Control, ...]
    waivers: tuple[Waiver, ...] = ()

    def controls_for(self, host: HostLike) -> list[Control]:
        return [c for c in self.controls if c.applies_to(host)]

    def control(self, control_id: str) -> Control:
        for c in self.controls:
            if c.id == control_id:
                return c
        known = ", ".join(c.id for c in self.controls)
        raise PolicyError(f"{self.path}: no control {control_id!r}; known controls: {known}")

    def waiver_for(self, host_name: str, control_id: str) -> Waiver | None:
        """The waiver for this host and control, active or expired (evaluate tells which)."""
        return next(
            (w for w in self.waivers if w.host == host_name and w.control == control_id), None
        )


@dataclass(frozen=True)
class Finding:
    """The verdict of one control on one host; ``to_dict()`` is JSON-ready."""

    host: str
    control_id: str
    status: str  # pass | fail | error | waived
    expected: str
    actual: str | None
    evidence: str
    remediation: list[str]
    rollback: list[str]
    error: str | None
    waiver_reason: str | None
    before_bit_value: int | None
    title: str
    severity: str
    notes: list[str] = field(default_factory=list)
    parameter_state: str | None = None  # the whole parameter as read (drift detection)
    records: list[dict[str, str]] = field(default_factory=list)  # the parsed reply

    @property
    def compliant(self) -> bool:
        return self.status in ("pass", "waived")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- loading and validation ------------------------------------------------------------------


class _Checker:
    """Validates one policy document; every message names file, control and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, fld: str, problem: str, allowed: str) -> PolicyError:
        place = f"{where}, " if where else ""
        return PolicyError(f"{self.source}: {place}field {fld!r}: {problem}; {allowed}")

    def mapping(
        self, value: object, where: str, fld: str, required: set[str], optional: set[str]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, fld, f"is a {_kind(value)}", "expected a mapping")
        allowed = sorted(required | optional)
        for key in value:
            if key not in required and key not in optional:
                name = f"{fld}.{key}" if fld else str(key)
                raise self.fail(where, name, "is not a known field", f"allowed: {allowed}")
        for key in sorted(required):
            if key not in value:
                name = f"{fld}.{key}" if fld else key
                raise self.fail(where, name, "is missing", "it is required")
        return value

    def text(self, value: object, where: str, fld: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, fld, f"is {_show(value)}", "expected non-empty text")
        return value.strip()

    def text_list(self, value: object, where: str, fld: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, fld, f"is a {_kind(value)}", "expected a list of names")
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


def _kind(value: object) -> str:
    return {dict: "mapping", list: "list", str: "text", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _show(value: object) -> str:
    return show(value)  # never repr(): the value may be an alias bomb (see yamlload)


def _span(allowed: Sequence[int]) -> str:
    return f"{allowed[0]}..{allowed[-1]}" if len(allowed) > 2 else " or ".join(map(str, allowed))


def _control(check: _Checker, raw: object, index: int) -> Control:
    where = f"control #{index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        where = f"control {raw['id']}"
    data = check.mapping(
        raw, where, "", {"id", "title", "severity", "rule"}, {"description", "refs", "targets"}
    )
    cid = check.text(data["id"], where, "id")
    if not _CONTROL_ID_RE.fullmatch(cid):
        raise check.fail(where, "id", f"is {cid!r}", "use letters, digits, '_', '.', '-'")
    severity = data["severity"]
    if severity not in SEVERITIES:
        raise check.fail(
            where, "severity", f"is {_show(severity)}", f"allowed: {', '.join(SEVERITIES)}"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise check.fail(where, "description", f"is a {_kind(description)}", "expected text")
    refs_raw = data.get("refs", [])
    if not isinstance(refs_raw, list):
        raise check.fail(where, "refs", f"is a {_kind(refs_raw)}", "expected a list")
    refs = []
    for i, ref in enumerate(refs_raw):
        r = check.mapping(ref, where, f"refs[{i}]", {"title", "url_or_doc"}, set())
        refs.append(
            Ref(
                check.text(r["title"], where, f"refs[{i}].title"),
                check.text(r["url_or_doc"], where, f"refs[{i}].url_or_doc"),
            )
        )
    targets = check.mapping(data.get("targets", {}), where, "targets", set(), {"hosts", "groups"})
    rule = check.mapping(data["rule"], where, "rule", {"software_parameter"}, set())
    sfp = check.mapping(
        rule["software_parameter"],
        where,
        "rule.software_parameter",
        {"id", "bit", "value"},
        set(),
    )
    parameter = sfp["id"]
    if not isinstance(parameter, str) or not _PARAMETER_RE.fullmatch(parameter):
        raise check.fail(
            where, "rule.software_parameter.id", f"is {_show(parameter)}", "expected P + digits"
        )
    return Control(
        id=cid,
        title=check.text(data["title"], where, "title"),
        severity=severity,
        description=description.strip(),
        refs=tuple(refs),
        rule=SfpBitRule(
            parameter=parameter,
            bit=check.integer(sfp["bit"], where, "rule.software_parameter.bit", range(MAX_BIT + 1)),
            value=check.integer(sfp["value"], where, "rule.software_parameter.value", (0, 1)),
        ),
        hosts=check.text_list(targets.get("hosts", []), where, "targets.hosts"),
        groups=check.text_list(targets.get("groups", []), where, "targets.groups"),
    )


def _waiver(check: _Checker, raw: object, index: int, control_ids: set[str]) -> Waiver:
    where = f"waiver #{index + 1}"
    data = check.mapping(raw, where, "", {"host", "control", "reason", "expires"}, set())
    control = check.text(data["control"], where, "control")
    where = f"waiver #{index + 1} (control {control})"
    if control not in control_ids:
        raise check.fail(
            where, "control", f"names unknown control {control!r}", f"known: {sorted(control_ids)}"
        )
    return Waiver(
        host=check.text(data["host"], where, "host"),
        control=control,
        reason=check.text(data["reason"], where, "reason"),
        expires=check.day(data["expires"], where, "expires"),
    )


def parse_policy(content: bytes, source: str, path: Path) -> Policy:
    """Validate a policy document (``source`` names it in messages)."""
    check = _Checker(source)
    try:
        doc = load_yaml(content, source, PolicyError)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    top = check.mapping(doc, "", "", {"policy", "controls"}, {"waivers"})
    meta = check.mapping(top["policy"], "", "policy", {"name"}, {"version", "description"})
    version = meta.get("version", "1")
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise check.fail("", "policy.version", f"is {_show(version)}", "expected text or number")
    raw_controls = top["controls"]
    if not isinstance(raw_controls, list) or not raw_controls:
        raise check.fail("", "controls", f"is {_show(raw_controls)}", "expected a non-empty list")
    controls: list[Control] = []
    for i, raw in enumerate(raw_controls):
        control = _control(check, raw, i)
        if any(c.id == control.id for c in controls):
            raise check.fail(
                f"control #{i + 1}", "id", f"repeats {control.id!r}", "control ids are unique"
            )
        controls.append(control)
    raw_waivers = top.get("waivers") or []
    if not isinstance(raw_waivers, list):
        raise check.fail("", "waivers", f"is a {_kind(raw_waivers)}", "expected a list")
    ids = {c.id for c in controls}
    waivers: list[Waiver] = []
    for i, raw in enumerate(raw_waivers):
        waiver = _waiver(check, raw, i, ids)
        if any((w.host, w.control) == (waiver.host, waiver.control) for w in waivers):
            raise check.fail(
                f"waiver #{i + 1}",
                "host",
                f"repeats {waiver.host}/{waiver.control}",
                "give one waiver per host and control",
            )
        waivers.append(waiver)
    return Policy(
        name=check.text(meta["name"], "", "policy.name"),
        version=str(version),
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        controls=tuple(controls),
        waivers=tuple(waivers),
    )


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the built-in P978 policy."""
    if path is None:
        resource = resources.files("mml_tool").joinpath("policies").joinpath(BUILTIN_POLICY)
        content = resource.read_bytes()
        return parse_policy(content, f"built-in policy {BUILTIN_POLICY}", Path(str(resource)))
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(content, str(path), Path(path))


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
    actual_bit: int | None = None
    state: str | None = None
    if error is None and records is None:
        error = "no reply was parsed"
    if error is None and records is not None:
        try:
            actual_bit = bit_from_records(records, rule.parameter, rule.bit)
            state = parameter_state(records, rule.parameter)
        except ParseError as exc:
            error = f"cannot decide: {exc}"
    active = waiver is not None and waiver.active(today)
    if waiver is not None and not active:
        notes.append(f"waiver expired on {waiver.expires.isoformat()}: {waiver.reason}")
    remediation: list[str] = []
    rollback: list[str] = []
    if actual_bit is None:
        status = "error"
        if active:
            notes.append("a waiver applies, but it accepts a known state, not an unread one")
    elif active:
        status = "waived"
    elif actual_bit == rule.value:
        status = "pass"
    else:
        status = "fail"
        remediation = [control.remediation().render()]
        rollback = [control.rollback(actual_bit).render()]
    return Finding(
        host=host_name,
        control_id=control.id,
        status=status,
        expected=rule.describe(),
        actual=None if actual_bit is None else rule.describe(actual_bit),
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
