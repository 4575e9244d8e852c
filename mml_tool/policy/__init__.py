"""Compliance controls from YAML (models, loader, JSON Schema) and their evaluation.

A policy file (InSpec-like) holds controls and waivers; see ``models`` for its shape and
``mml-tool schema policy`` for the JSON Schema editors can check it against.
"""

from __future__ import annotations

from mml_tool.policy.evaluate import bit_from_records, evaluate, parameter_state
from mml_tool.policy.loader import load_policy, parse_policy
from mml_tool.policy.models import (
    BUILTIN_POLICY,
    MAX_BIT,
    SEVERITIES,
    STATUSES,
    Control,
    Finding,
    HostLike,
    Policy,
    Ref,
    SfpBitRule,
    Waiver,
)

__all__ = [
    "BUILTIN_POLICY",
    "MAX_BIT",
    "SEVERITIES",
    "STATUSES",
    "Control",
    "Finding",
    "HostLike",
    "Policy",
    "Ref",
    "SfpBitRule",
    "Waiver",
    "bit_from_records",
    "evaluate",
    "load_policy",
    "parameter_state",
    "parse_policy",
]
