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

from mml_tool.change.lock import default_lock_dir, host_lock, prepare_lock_dir
from mml_tool.change.outcome import (
    ApplyRecord,
    CommandRun,
    StepResult,
    load_record,
    record_json,
    save_record,
)
from mml_tool.change.plan import (
    CLOCK_SKEW,
    DEFAULT_MAX_AGE,
    PLAN_KIND,
    RECORD_KIND,
    SCHEMA_VERSION,
    Plan,
    Step,
    build_plan,
    load_plan,
    plan_sha256,
    save_plan,
    write_json_atomic,
)
from mml_tool.change.runner import (
    apply_plan,
    check_plan,
    check_record,
    execute,
    rollback_record,
    rollback_steps,
)
from mml_tool.change.steps import IN_FLIGHT, ChangeContext, ChangeStopped, Journal

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
