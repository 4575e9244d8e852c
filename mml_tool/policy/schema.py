"""The policy file as pydantic models, and its JSON Schema (``mml-tool schema policy``).

The loader (``loader.py``) words every error itself, naming file, control and field; these
models state the same shape for editors and linters, and a test keeps the two in step.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


class SoftwareParameterDoc(_Doc):
    """Software parameter ``id`` must have bit ``bit`` equal to ``value``."""

    id: Annotated[str, Field(pattern=r"^P[0-9]+$")]
    bit: Annotated[int, Field(ge=0, le=MAX_BIT)]
    value: Literal[0, 1]


class RuleDoc(_Doc):
    software_parameter: SoftwareParameterDoc


class ControlDoc(_Doc):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    title: NonEmpty
    severity: Literal["low", "medium", "high", "critical"]
    description: str = ""
    refs: list[RefDoc] = Field(default_factory=list)
    targets: TargetsDoc | None = None
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
