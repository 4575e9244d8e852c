"""The JSON report: a stable layout (docs/report-schema.md) checked by a shipped JSON Schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from mml_tool.mml.command import mask_text
from mml_tool.report.model import SCHEMA_VERSION, Report, Row, _notes, summary
from mml_tool.results import exit_code_for as exit_code_for  # decided in results


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the JSON report (shipped as mml_tool/schemas/report.schema.json)."""
    text = resources.files("mml_tool").joinpath("schemas/report.schema.json").read_text("utf-8")
    return dict(json.loads(text))


def _result(f: Row) -> dict[str, Any]:
    return {
        "host": f.host,
        "control": f.control_id,
        "title": f.title,
        "severity": f.severity,
        "status": f.status,
        "expected": f.expected,
        "actual": f.actual,
        "evidence": f.evidence,
        "remediation": list(f.remediation),
        "rollback": list(f.rollback),
        "error": f.error,
        "waiver_reason": f.waiver_reason,
        "notes": list(_notes(f)),
    }


def _masked(value: Any) -> Any:
    """Every string inside, with password values masked: reports never carry a secret."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


def to_dict(report: Report) -> dict[str, Any]:
    i = report.info
    outcome = report.decide()
    data = {
        "schema_version": SCHEMA_VERSION,
        "outcome": {
            "result": outcome.result,
            "exit_code": int(outcome.exit_code),
            "message": outcome.message,
        },
        "run": {
            "tool_version": i.tool_version,
            "command": i.command,
            "policy": {"name": i.policy_name, "sha256": i.policy_sha256},
            "change_id": i.change_id,
            "inventory": i.inventory,
            "operator": i.operator,
            "started": i.started,
            "finished": i.finished,
        },
        "summary": summary(report),
        "results": [_result(f) for f in report.ordered()],
        "changes": report.ordered_changes(),
        "verification": report.verification,
        "warnings": list(report.warnings),
        "since_last": report.since_last,
    }
    return dict(_masked(data))


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False, default=str) + "\n"
