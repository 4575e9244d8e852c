"""Accumulating the runs of one plan in its apply record (``merge``): a step changed by any run
stays "changed" with the state read before that run, so ``rollback`` undoes every host any run
changed. ``_compact_json`` re-encodes only the steps that changed since the last write."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mml_tool.change import ApplyRecord, StepResult
from mml_tool.change.approval import canonical
from mml_tool.change.outcome import sealed_text
from mml_tool.results import StepStatus
from mml_tool.secret import Secret


def _key(result: StepResult) -> tuple[str, str, str, int]:
    step = result.step
    return step.host, step.control_id, step.parameter, step.bit


def _entry(result: StepResult, started: str) -> dict[str, Any]:
    """What one run did to one step, for the step's history."""
    return {
        "run_started": started,
        "status": result.status,
        "before": result.before,
        "after": result.after,
        "error": result.error,
        "commands": [c.as_dict() for c in result.commands],
    }


def _history(result: StepResult, started: str) -> list[dict[str, Any]]:
    return list(result.history) if result.history else [_entry(result, started)]


def _merge_step(old: StepResult, new: StepResult) -> StepResult:
    """The step as the record keeps it after ``old`` (earlier runs) and ``new`` (this run)."""
    if new.commands or (new.before is not None and not new.ok):
        # This run sent something, or read the host and found it not right (drift): its word
        # counts, and the commands of earlier runs stay (rollback re-reads before undoing).
        return replace(new, commands=[*old.commands, *new.commands])
    if new.before is None:
        return old  # this run never read the host (skipped, locked): nothing new is known
    if old.may_have_changed:
        # The host is at the target because an earlier run changed it: it stays changed, with
        # the state read before that run, so that rollback undoes it.
        if old.status == "changed":
            return old if old.after_state else replace(old, after_state=new.after_state)
        return replace(
            old,
            status=StepStatus.CHANGED,
            after=new.after,
            after_state=old.after_state or new.after_state,
            error=f"{old.error}; a later run read the target value",
        )
    return new


class _Memo:
    """What the flushes of one run can reuse: a step's merged result and its JSON, both keyed
    by the identity of objects that never change once made (the key objects are kept)."""

    def __init__(self) -> None:
        self.merged: dict[tuple[int, int], tuple[Any, StepResult, StepResult]] = {}
        self.text: dict[int, tuple[StepResult, bytes]] = {}

    def json(self, result: StepResult) -> bytes:
        hit = self.text.get(id(result))
        if hit is None or hit[0] is not result:
            hit = self.text[id(result)] = (result, canonical(result.to_dict()))
        return hit[1]


def _merged_step(
    old: StepResult | None, new: StepResult, previous_started: str, started: str
) -> StepResult:
    if old is None:
        return replace(new, history=[_entry(new, started)])
    history = [*_history(old, previous_started), _entry(new, started)]
    return replace(_merge_step(old, new), history=history)


def merge(
    previous: ApplyRecord | None, current: ApplyRecord, memo: _Memo | None = None
) -> ApplyRecord:
    """``current`` with the earlier runs of the same plan in ``previous`` folded in."""
    run = {"started": current.started, "finished": current.finished, "operator": current.operator}
    earlier = {} if previous is None else {_key(r): r for r in previous.results}
    before = "" if previous is None else previous.started
    results = []
    for new in current.results:
        old = earlier.pop(_key(new), None)
        hit = None if memo is None else memo.merged.get((id(old), id(new)))
        if hit is not None and hit[0] is old and hit[1] is new:
            results.append(hit[2])
            continue
        merged = _merged_step(old, new, before, current.started)
        if memo is not None:
            memo.merged[id(old), id(new)] = (old, new, merged)
        results.append(merged)
    if previous is None:
        return replace(current, results=results, runs=[run])
    results += earlier.values()  # steps only an earlier run had: never dropped
    runs = previous.runs or [
        {"started": previous.started, "finished": previous.finished, "operator": previous.operator}
    ]
    return replace(current, started=previous.started, results=results, runs=[*runs, run])


def _compact_json(record: ApplyRecord, memo: _Memo, signing_key: Secret | None = None) -> str:
    """``record_json(record, compact=True, signing_key=...)``, re-encoding only the steps that
    changed since the last flush: the sealed (and signed) canonical text, assembled from each
    step's canonical text."""
    head = replace(record, results=[]).to_dict()
    head["ok"] = record.ok
    data = canonical(head)
    # Keys are sorted and string values escape their quotes: this is the "results" key.
    cut = data.index(b'"results":[]') + len(b'"results":[')
    data = data[:cut] + b",".join(memo.json(r) for r in record.results) + data[cut:]
    return sealed_text(data, signing_key)
