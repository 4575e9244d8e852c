"""A reviewed plan file applied as `mml-tool apply` applies it (``apply_plan_file``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import mml_tool as mt
from mml_tool.audit import operator_name
from mml_tool.change import (
    check_plan,
    load_plan,
    plan_sha256,
)
from mml_tool.change.record import RecordJournal, default_fallback_dirs
from mml_tool.fleet import DEFAULT_WORKERS
from mml_tool.inventory import Inventory
from mml_tool.policy import (
    Policy,
    load_policy,
)

# -- a reviewed plan, applied like `mml-tool apply` ---------------------------------------------


@dataclass
class PlanApply:
    """The outcome of ``apply_plan_file``: ``steps`` one dict per step of the plan (in check
    mode what would be sent; else the apply record's: status, before, after, commands with
    their outcome), ``changed`` when this run (in check mode: would) changed a host."""

    plan: str
    change_id: str
    hosts: list[str]
    check_mode: bool
    changed: bool
    ok: bool
    record: str | None  # the apply record written (None in check mode or for an empty plan)
    steps: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)

    @property
    def failed_hosts(self) -> list[str]:
        return list(dict.fromkeys(s["host"] for s in self.steps if not s["ok"]))


def apply_plan_file(
    inventory: Inventory,
    plan_path: Path | str,
    *,
    check_mode: bool = False,
    policy: Policy | Path | str | None = None,
    max_age_hours: float | None = 24.0,
    audit_path: Path | str | None = None,
    record: Path | str | None = None,
    lock_dir: Path | str | None = None,
    operator: str | None = None,
    workers: int = DEFAULT_WORKERS,
    template_dirs: Sequence[Path] = (),
) -> PlanApply:
    """Apply the reviewed plan at ``plan_path`` exactly as ``mml-tool apply PLAN`` does.

    Before anything is connected to: the plan's seal and age (``max_age_hours``), its signature
    when ``inventory`` sets ``plan_signing_key`` (unsigned or not matching: ``PlanError``), and
    its commands re-derived from ``policy`` (default the built-in one); then the record's
    journal (default ``PLAN.record.json``; earlier runs of the same plan merged, another plan's
    file refused: ``RecordError``). Then per host: lock, re-read, skip or refuse drift, audit
    ahead, send, confirm (``mml_tool.apply``). Check mode stops after the checks and tells what
    would be sent; nothing is connected to."""
    path = Path(plan_path)
    if not isinstance(policy, Policy):
        policy = load_policy(None if policy is None else Path(policy))
    max_age = None if max_age_hours is None else timedelta(hours=max_age_hours)
    the_plan = load_plan(path, max_age=max_age, signing_key=inventory.plan_signing_key)
    check_plan(the_plan, policy, inventory, str(path))
    done = PlanApply(
        str(path), the_plan.change_id, list(the_plan.hosts), check_mode, False, True, None, []
    )
    if not the_plan.steps:
        return done
    if check_mode:
        done.changed = True
        done.steps = [
            {
                "host": step.host,
                "control": step.control_id,
                "what": step.describe(),
                "status": "check-mode",
                "ok": True,
                "before": step.start_value,
                "after": step.target_value,
                "commands": list(step.commands),
                "rollback": list(step.undo_commands),
            }
            for step in the_plan.steps
        ]
        return done
    trail = inventory.audit_file(None if audit_path is None else Path(audit_path))
    journal = RecordJournal(
        Path(record) if record is not None else path.with_suffix(".record.json"),
        plan_sha256=plan_sha256(the_plan),
        action="apply",
        accumulate=True,  # as the CLI: re-applying the plan adds to its record
        fallback_dirs=default_fallback_dirs(trail),
        say=done.warnings.append,
        hint="nothing was sent; name another record file",
        signing_key=inventory.plan_signing_key,
    )
    journal.check()
    applied = mt.apply(
        the_plan,
        inventory,
        audit=trail,
        record=journal,
        policy=policy,
        lock_dir=lock_dir,
        operator=operator or operator_name(),
        workers=workers,
        template_dirs=template_dirs,
    )
    done.record, done.ok = str(journal.written_to), applied.ok
    for result in applied.results:
        # The record holds every run of the plan; this run's word is the last of its history.
        latest = result.history[-1] if result.history else None
        sent = latest["commands"] if latest else [c.as_dict() for c in result.commands]
        done.changed = done.changed or any(c["outcome"] in ("ok", "unknown") for c in sent)
        step = result.to_dict()
        step["ok"] = result.ok
        del step["step"], step["history"]
        done.steps.append(step)
    return done
