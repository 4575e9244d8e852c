"""The policy file as pydantic models, and its JSON Schema (``mml-tool schema policy``).

The loader (``loader.py``) words every error itself, naming file, control and field; these
models state the same shape for editors and linters, and a test keeps the two in step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mml_tool.policy.checker import _kind
from mml_tool.policy.models import MAX_BIT

NonEmpty = Annotated[str, Field(pattern=r"\S")]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyMetaDoc(_Doc):
    name: NonEmpty
    version: str | int = "1"
    description: str | None = None


class RefDoc(_Doc):
    title: NonEmpty
    url_or_doc: NonEmpty


class TargetsDoc(_Doc):
    """No targets: every host. Otherwise a host name pattern or a group must match."""

    hosts: list[NonEmpty] = Field(default_factory=list, description="fnmatch host patterns")
    groups: list[NonEmpty] = Field(default_factory=list)


_TOGETHER: dict[str, Any] = {"remediation": ["rollback"], "rollback": ["remediation"]}


class SoftwareParameterDoc(_Doc):
    """Software parameter ``id``: bit ``bit`` equals ``value`` (0/1); or the bits of ``mask``
    equal those of ``value``; or, with neither, the whole parameter equals ``value``. A
    whole-value rule is check-only unless it names ``remediation`` and ``rollback`` command
    templates (placeholders {ID}, {expected}, {before})."""

    # What the loader checks beyond the fields' own types, stated for editors too.
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"if": {"required": ["bit"]}, "then": {"properties": {"value": {"enum": [0, 1]}}}},
                {"not": {"required": ["bit", "mask"]}},
                {"dependentRequired": _TOGETHER},
            ]
        }
    )
    id: Annotated[str, Field(pattern=r"^P[0-9]+$")]
    bit: Annotated[int, Field(ge=0, le=MAX_BIT)] | None = None
    mask: Annotated[int, Field(ge=1, le=0xFFFF)] | None = None
    value: Annotated[int, Field(ge=0, le=0xFFFF)]
    remediation: list[NonEmpty] | None = None
    rollback: list[NonEmpty] | None = None


Scalar = str | int


class RangeDoc(_Doc):
    """Inclusive bounds; either may be left out. 0x10, 0b101 and 1_000 are numbers; 010 and
    12:30 (octal and base 60 to YAML 1.1) and 1e3 (text to YAML 1.1) are refused."""

    min: float | None = None
    max: float | None = None


class ExpectDoc(_Doc):
    """One operator per field: equals, in, regex (full match) or range (numbers). equals and
    in compare text with what the device prints: quote a value YAML reads as something else
    ("0x10", "010", "on", "12:30"), or the policy is refused; 16 written plainly is "16"."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    regex: str | None = None
    range: RangeDoc | None = None


class CountDoc(_Doc):
    """How many records ``match`` selects: exactly ``equals``, or ``min``..``max``."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    equals: Annotated[int, Field(ge=0)] | None = None
    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None


class CommandRuleDoc(_Doc):
    """A read-only command (LST/DSP) whose reply a template parses into records; match
    compares text, as equals does."""

    model_config = ConfigDict(json_schema_extra={"dependentRequired": _TOGETHER})

    run: Annotated[str, Field(pattern=r"^\s*(LST|DSP)\s")]
    match: dict[str, Scalar] = Field(default_factory=dict)
    expect: dict[str, ExpectDoc] = Field(default_factory=dict)
    count: CountDoc | None = None
    remediation: list[NonEmpty] | None = None
    rollback: list[NonEmpty] | None = None


class RuleDoc(_Doc):
    """Exactly one rule kind."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    software_parameter: SoftwareParameterDoc | None = None
    command: CommandRuleDoc | None = None


class ControlDoc(_Doc):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    title: NonEmpty
    severity: Literal["low", "medium", "high", "critical"]
    description: str = ""
    refs: list[RefDoc] = Field(default_factory=list)
    targets: TargetsDoc = Field(default_factory=TargetsDoc)
    rule: RuleDoc


class WaiverDoc(_Doc):
    """Accepts a known state of one control on one host, up to and including ``expires``."""

    host: NonEmpty
    control: NonEmpty
    reason: NonEmpty
    expires: dt.date


class PolicyDoc(_Doc):
    """An mml-tool compliance policy file."""

    policy: PolicyMetaDoc
    controls: Annotated[list[ControlDoc], Field(min_length=1)]
    waivers: list[WaiverDoc] | None = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (draft 2020-12), for editors and CI linters."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **PolicyDoc.model_json_schema(),
    }


# Errors about the document's shape; the loader words every value error itself.
_SHAPE_ERRORS = {"extra_forbidden", "missing", "model_type", "model_attributes_type"}


def _at(doc: Any, loc: Sequence[Any]) -> Any:
    for part in loc:
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
            doc = doc[part]
        else:
            return None
    return doc


def _model_at(loc: Sequence[Any]) -> type[BaseModel]:
    model: type[BaseModel] = PolicyDoc
    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            continue  # an item of a list, a key of a mapping: its model
        annotation = model.model_fields[part].annotation
        model = next((a for a in (annotation, *_flat_args(annotation)) if _is_doc(a)), model)
    return model


def _flat_args(annotation: Any) -> list[Any]:
    args = list(get_args(annotation))
    for arg in list(args):
        args += _flat_args(arg)
    return args


def _is_doc(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, _Doc)


def _field(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def shape_error(doc: Any) -> tuple[str, str, str, str] | None:
    """The first problem with the document's shape as (where, field, problem, what is allowed),
    worded as the loader words its own; None when the shape is right."""
    try:
        PolicyDoc.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            if err["type"] not in _SHAPE_ERRORS:
                continue
            loc = list(err["loc"])
            where, rest = "", loc
            if loc[:1] in (["controls"], ["waivers"]) and len(loc) > 1:
                rest = loc[2:]
                where = f"{str(loc[0])[:-1]} #{int(loc[1]) + 1}"
                cid = _at(doc, [*loc[:2], "id"]) if loc[0] == "controls" else None
                where = f"control {cid}" if isinstance(cid, str) else where
            fld = _field(rest)
            if err["type"] == "missing":
                return where, fld, "is missing", "it is required"
            if err["type"] == "extra_forbidden":
                fields = _model_at(loc[:-1]).model_fields
                allowed = sorted(f.alias or name for name, f in fields.items())
                return where, fld, "is not a known field", f"allowed: {allowed}"
            return where, fld, f"is a {_kind(_at(doc, loc))}", "expected a mapping"
    return None
