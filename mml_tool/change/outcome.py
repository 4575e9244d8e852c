"""What a run of a plan did: each command sent, each step's status, the whole record."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mml_tool._io import write_text_atomic
from mml_tool.change.approval import (
    SIGNATURE_FIELD,
    canonical,
    check_record_signature,
    sign,
    sign_canonical,
)
from mml_tool.change.plan import (
    RECORD_KIND,
    SCHEMA_VERSION,
    Step,
    _read_sealed,
    _sealed,
    _step_from,
)
from mml_tool.errors import (
    PlanError,
)
from mml_tool.exitcodes import ExitCode
from mml_tool.results import StepStatus
from mml_tool.secret import Secret


@dataclass
class CommandRun:
    """One command sent to a host and what came back."""

    command: str
    retcode: int | None
    message: str
    elapsed: float
    outcome: str  # ok | failed | unknown

    def as_dict(self) -> dict[str, Any]:
        """``asdict(self)`` without its deep copy (every field is flat): records are written
        ahead of every command, so this is on the hot path."""
        return dict(self.__dict__)


@dataclass
class StepResult:
    step: Step
    status: StepStatus
    before: int | None = None
    after: int | None = None
    commands: list[CommandRun] = field(default_factory=list)
    error: str | None = None
    after_state: str = ""
    # One entry per run of the plan that touched this step (see mml_tool.change.record.merge).
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = StepStatus(self.status)  # a record read back holds plain strings

    @property
    def ok(self) -> bool:
        return self.status.ok

    @property
    def changed(self) -> bool:
        return self.status == StepStatus.CHANGED

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def diff(self) -> str:
        """What changed on the device, e.g. ``P978 bit 0: 1 -> 0`` ("" when nothing did)."""
        if not self.changed:
            return ""
        return f"{self.step.describe()}: {self.before} -> {self.after}"

    @property
    def may_have_changed(self) -> bool:
        """Whether the device may hold this step's change: rollback re-reads and undoes it.

        Besides "changed" and "unknown", a step that failed after a command was answered
        "ok" or got no clean answer counts: only a fresh read can tell, and rollback does one.
        """
        return self.status in ("changed", "unknown") or any(
            c.outcome in ("ok", "unknown") for c in self.commands
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.step.host,
            "control": self.step.control_id,
            "parameter": self.step.parameter,
            "bit": self.step.bit,
            "kind": self.step.kind,
            "what": self.step.describe(),  # what the step judges, e.g. "P917 & 0x0005"
            "status": self.status,
            "expected_before": self.step.start_value,
            "target": self.step.target_value,
            "before": self.before,
            "after": self.after,
            "after_state": self.after_state,
            "commands": [c.as_dict() for c in self.commands],
            "rollback": list(self.step.undo_commands),
            "error": self.error,
            "step": dict(self.step.as_dict),
            "history": self.history,
        }


@dataclass
class ApplyRecord:
    """What `apply` or `rollback` did; the input of a later `rollback`."""

    action: str  # apply | rollback
    change_id: str
    plan_sha256: str
    operator: str
    started: str
    finished: str  # "" while the run is in progress (a record written ahead)
    results: list[StepResult]
    runs: list[dict[str, Any]] = field(default_factory=list)  # every run of the plan

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.results)

    @property
    def changed_hosts(self) -> list[str]:
        """Hosts where some step changed the device, in step order."""
        return list(dict.fromkeys(r.step.host for r in self.results if r.changed))

    @property
    def failed_hosts(self) -> list[str]:
        return list(dict.fromkeys(r.step.host for r in self.results if not r.ok))

    @property
    def exit_code(self) -> int:
        """0 every step done (or already so), 1 otherwise: as ``apply`` and ``rollback`` exit."""
        return ExitCode.OK if self.ok else ExitCode.ERROR

    def save(self, path: Path | str, *, signing_key: Secret | None = None) -> None:
        """Write the record, sealed (and signed, given a key); ``load_record`` reads it back."""
        save_record(self, Path(path), signing_key=signing_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": RECORD_KIND,
            "schema_version": SCHEMA_VERSION,
            "action": self.action,
            "change_id": self.change_id,
            "plan_sha256": self.plan_sha256,
            "operator": self.operator,
            "started": self.started,
            "finished": self.finished,
            "ok": self.ok,
            "results": [r.to_dict() for r in self.results],
            "runs": self.runs,
        }


def save_record(record: ApplyRecord, path: Path, *, signing_key: Secret | None = None) -> None:
    write_text_atomic(path, record_json(record, signing_key=signing_key))


def record_json(
    record: ApplyRecord, *, compact: bool = False, signing_key: Secret | None = None
) -> str:
    """The record as its file holds it: sealed JSON text (and, given a key, its HMAC-SHA256
    over the same content as the seal). ``compact``: the canonical text the seal is computed
    over, with the seal added: one encoding instead of two (the record is rewritten ahead of
    every command of a change)."""
    if not compact:
        body = record.to_dict()
        sealed = _sealed(body)
        if signing_key is not None:
            sealed[SIGNATURE_FIELD] = sign(body, signing_key)
        return json.dumps(sealed, indent=2, ensure_ascii=False) + "\n"
    return sealed_text(canonical(record.to_dict()), signing_key)


def sealed_text(data: bytes, signing_key: Secret | None = None) -> str:
    """The file text of a body whose canonical text is ``data``: ``data`` with the seal (and
    the signature) added as its last keys."""
    seal = hashlib.sha256(data).hexdigest()
    text = data[:-1].decode("utf-8") + f',"sha256":"{seal}"'
    if signing_key is not None:
        text += f',"{SIGNATURE_FIELD}":"{sign_canonical(data, signing_key)}"'
    return text + "}\n"


def load_record(path: Path, *, signing_key: Secret | None = None) -> ApplyRecord:
    """Read an apply (or rollback) record to roll it back: ``PlanError`` when its seal does not
    match or it is malformed; given ``signing_key`` (the inventory's plan_signing_key),
    ``RecordError`` when it is not signed with it."""
    body = _read_sealed(path, RECORD_KIND)
    check_record_signature(path, body, body.pop(SIGNATURE_FIELD, None), signing_key)
    try:
        results = [
            StepResult(
                step=_step_from(r["step"]),
                status=r["status"],
                before=r["before"],
                after=r["after"],
                commands=[CommandRun(**c) for c in r["commands"]],
                error=r["error"],
                after_state=r.get("after_state", ""),
                history=list(r.get("history", [])),
            )
            for r in body["results"]
        ]
        return ApplyRecord(
            action=body["action"],
            change_id=body["change_id"],
            plan_sha256=body["plan_sha256"],
            operator=body["operator"],
            started=body["started"],
            finished=body["finished"],
            results=results,
            runs=list(body.get("runs", [])),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path}: malformed apply record ({exc}).") from None
