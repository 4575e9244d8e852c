"""Safe change: plan -> approve -> apply -> post-check -> rollback.

A plan is a JSON file the operator reviews; it carries, per host and control, the state read
before (value and masked reply), the commands to send and their rollback, and a sha256 over
its content. Apply and rollback are one algorithm run in opposite directions: for each step,
re-read the bit; skip it when it already has the target value; refuse it when it has neither
the expected starting value nor the target (drift); otherwise send the commands, each one
audited before and after it goes out, and re-read to confirm. Any reply to a command that is
not a clean RETCODE answer (a lost connection, a timeout, a garbled reply) makes the outcome
"unknown" until a fresh session re-reads the bit: a command is never re-sent blindly. Skips and
refusals are audited too.

With a ``Journal`` in the context (``mml_tool.change.record.RecordJournal``) the record is written
ahead: before each command goes out (the step "in flight", recorded ``unknown``) and after each
step settles, so a process killed at any moment leaves a record that ``rollback`` can use.

    plan.py      Step, Plan: build, seal, sign, save, load
    outcome.py   CommandRun, StepResult, ApplyRecord: save, load
    steps.py     ChangeContext and one host's step runner
    runner.py    execute on every host; apply_plan, rollback_record
    record.py    the record journal (written ahead)   lock.py  host locks
    approval.py  plan signatures; steps must derive from the policy
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The names load on first use: `check` imports `mml_tool.change.lock` or `.plan` alone and need
# not pay for the runner, the records and the journal (issue 14, start-up cost).
if TYPE_CHECKING:
    from mml_tool.change.lock import default_lock_dir as default_lock_dir
    from mml_tool.change.lock import host_lock as host_lock
    from mml_tool.change.lock import prepare_lock_dir as prepare_lock_dir
    from mml_tool.change.outcome import ApplyRecord as ApplyRecord
    from mml_tool.change.outcome import CommandRun as CommandRun
    from mml_tool.change.outcome import StepResult as StepResult
    from mml_tool.change.outcome import load_record as load_record
    from mml_tool.change.outcome import record_json as record_json
    from mml_tool.change.outcome import save_record as save_record
    from mml_tool.change.plan import CLOCK_SKEW as CLOCK_SKEW
    from mml_tool.change.plan import DEFAULT_MAX_AGE as DEFAULT_MAX_AGE
    from mml_tool.change.plan import PLAN_KIND as PLAN_KIND
    from mml_tool.change.plan import RECORD_KIND as RECORD_KIND
    from mml_tool.change.plan import SCHEMA_VERSION as SCHEMA_VERSION
    from mml_tool.change.plan import Plan as Plan
    from mml_tool.change.plan import Step as Step
    from mml_tool.change.plan import build_plan as build_plan
    from mml_tool.change.plan import load_plan as load_plan
    from mml_tool.change.plan import plan_sha256 as plan_sha256
    from mml_tool.change.plan import save_plan as save_plan
    from mml_tool.change.plan import write_json_atomic as write_json_atomic
    from mml_tool.change.runner import apply_plan as apply_plan
    from mml_tool.change.runner import check_plan as check_plan
    from mml_tool.change.runner import check_record as check_record
    from mml_tool.change.runner import execute as execute
    from mml_tool.change.runner import rollback_record as rollback_record
    from mml_tool.change.runner import rollback_steps as rollback_steps
    from mml_tool.change.steps import IN_FLIGHT as IN_FLIGHT
    from mml_tool.change.steps import ChangeContext as ChangeContext
    from mml_tool.change.steps import ChangeStopped as ChangeStopped
    from mml_tool.change.steps import Journal as Journal

# public name -> the module that defines it
_WHERE = {
    "default_lock_dir": "mml_tool.change.lock",
    "host_lock": "mml_tool.change.lock",
    "prepare_lock_dir": "mml_tool.change.lock",
    "ApplyRecord": "mml_tool.change.outcome",
    "CommandRun": "mml_tool.change.outcome",
    "StepResult": "mml_tool.change.outcome",
    "load_record": "mml_tool.change.outcome",
    "record_json": "mml_tool.change.outcome",
    "save_record": "mml_tool.change.outcome",
    "CLOCK_SKEW": "mml_tool.change.plan",
    "DEFAULT_MAX_AGE": "mml_tool.change.plan",
    "PLAN_KIND": "mml_tool.change.plan",
    "Plan": "mml_tool.change.plan",
    "RECORD_KIND": "mml_tool.change.plan",
    "SCHEMA_VERSION": "mml_tool.change.plan",
    "Step": "mml_tool.change.plan",
    "build_plan": "mml_tool.change.plan",
    "load_plan": "mml_tool.change.plan",
    "plan_sha256": "mml_tool.change.plan",
    "save_plan": "mml_tool.change.plan",
    "write_json_atomic": "mml_tool.change.plan",
    "apply_plan": "mml_tool.change.runner",
    "check_plan": "mml_tool.change.runner",
    "check_record": "mml_tool.change.runner",
    "execute": "mml_tool.change.runner",
    "rollback_record": "mml_tool.change.runner",
    "rollback_steps": "mml_tool.change.runner",
    "ChangeContext": "mml_tool.change.steps",
    "ChangeStopped": "mml_tool.change.steps",
    "IN_FLIGHT": "mml_tool.change.steps",
    "Journal": "mml_tool.change.steps",
}

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_MAX_AGE",
    "IN_FLIGHT",
    "PLAN_KIND",
    "RECORD_KIND",
    "SCHEMA_VERSION",
    "ApplyRecord",
    "ChangeContext",
    "ChangeStopped",
    "CommandRun",
    "Journal",
    "Plan",
    "Step",
    "StepResult",
    "apply_plan",
    "build_plan",
    "check_plan",
    "check_record",
    "default_lock_dir",
    "execute",
    "host_lock",
    "load_plan",
    "load_record",
    "plan_sha256",
    "prepare_lock_dir",
    "record_json",
    "rollback_record",
    "rollback_steps",
    "save_plan",
    "save_record",
    "write_json_atomic",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mml_tool.change' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
