"""Compliance controls (resolved, frozen dataclasses), as the loader builds them from YAML.

A policy file (InSpec-like) holds controls and waivers::

    policy: {name: uap9600-one-way-video, version: 1}
    controls:
      - id: UAP-SFP-P978-B0
        title: ...
        severity: high                     # low | medium | high | critical
        description: ...                   # optional
        refs: [{title: ..., url_or_doc: ...}]        # optional
        targets: {hosts: [uap-*], groups: [video-cc]}  # optional; default: every host
        rule: {software_parameter: {id: P978, bit: 0, value: 0}}   # or one of:
        #   {software_parameter: {id: P917, mask: 0x0005, value: 0x0001}}
        #   {software_parameter: {id: P100, value: 5}}    (+ remediation/rollback templates)
        #   {command: {run: "LST OFI:;", match: {NAME: X}, expect: {STATUS: {equals: Normal}},
        #              count: 1}}                      (+ remediation/rollback templates)
    waivers:                               # optional
      - {host: uap-3, control: UAP-SFP-P978-B0, reason: "...", expires: 2026-12-31}

Everything is validated when the file is loaded, before any connection. Evaluation turns the
records of ``LST SFP`` into a ``Finding``; a bit that cannot be read is an error, never a pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Protocol

from mml_tool.errors import PolicyError
from mml_tool.mml.command import MmlCommand
from mml_tool.policy.rules import CommandRule, Judgement, SfpMaskRule, SfpValueRule, _sfp_bit
from mml_tool.results import FindingStatus

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
    kind = "bit"

    @property
    def target(self) -> int:
        return self.value

    def describe(self, value: int | None = None) -> str:
        return f"{self.parameter} bit {self.bit} = {self.value if value is None else value}"

    @functools.cached_property  # the rule is immutable; asked for per host
    def check_command(self) -> MmlCommand:
        return MmlCommand.create("LST", "SFP", ID=self.parameter)

    def judge(self, records: Sequence[dict[str, str]]) -> Judgement:
        from mml_tool.policy.evaluate import bit_from_records, parameter_state

        value = bit_from_records(records, self.parameter, self.bit)
        state = parameter_state(records, self.parameter)
        return Judgement(value, self.value, state, self.describe(value))

    def derive(
        self, start: int, records: Sequence[dict[str, str]] = ()
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (self._set(self.value),), (self._set(start),)

    def _set(self, value: int) -> str:
        return _sfp_bit(self.parameter, self.bit, value)


Rule = SfpBitRule | SfpMaskRule | SfpValueRule | CommandRule


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    severity: str
    description: str
    refs: tuple[Ref, ...]
    rule: Rule
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
        return self.rule.check_command

    def remediation(self) -> MmlCommand:
        """The one command of a bit rule (other rules: ``rule.derive``)."""
        return self._set_bit(self.rule.target)

    def rollback(self, before_value: int) -> MmlCommand:
        """The command that puts back the bit value read before the change."""
        if before_value not in (0, 1):
            raise ValueError(f"a bit value is 0 or 1, not {before_value!r}")
        return self._set_bit(before_value)

    def _set_bit(self, value: int) -> MmlCommand:
        # MODTYPE=P1 modifies one bit (the vendor's documented form for P978).
        rule = self.rule
        if not isinstance(rule, SfpBitRule):
            raise TypeError(f"control {self.id} is not a bit rule: use rule.derive()")
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
    status: FindingStatus
    expected: str
    actual: str | None
    evidence: str
    remediation: list[str]
    rollback: list[str]
    error: str | None
    waiver_reason: str | None
    # The rule's judged value as read: the bit; for other kinds ``value & mask``, the whole
    # value, or 1/0 for a command rule (the name is kept for the bit rule's callers).
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
