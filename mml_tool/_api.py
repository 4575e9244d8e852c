"""The functions behind ``mml_tool``'s public names (see ``docs/api.md``).

Each one takes everything it needs as parameters: nothing here reads an ``MML_TOOL_*``
environment variable (the CLI reads those and passes them). Defaults: the built-in policy,
the audit trail in the user's state folder (``$XDG_STATE_HOME/mml-tool/audit.jsonl``), the
inventory's ``lock_dir`` (it wins over a ``lock_dir`` argument, as over ``--lock-dir``), else
the argument, else the machine's shared lock folder.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mml_tool import _io
from mml_tool.change.ages import DEFAULT_MAX_AGE
from mml_tool.compliance import check_fleet
from mml_tool.errors import ConfigError
from mml_tool.fleet import DEFAULT_WORKERS, Progress
from mml_tool.gateway.pick import pick_gateway
from mml_tool.inventory import Inventory, Prompt
from mml_tool.inventory import load_inventory as _load_inventory
from mml_tool.mml.session import MmlSession as _MmlSession
from mml_tool.parsing import parse_output
from mml_tool.policy import Policy
from mml_tool.policy import load_policy as _load_policy
from mml_tool.results import CheckResult
from mml_tool.secret import Secret

# What only a change or a verification needs loads when one is made: `check` need not import
# the runner, the audit trail or the gateway client with httpx (issue 14, start-up cost).
if TYPE_CHECKING:
    from mml_tool.change import ApplyRecord, ChangeContext, Plan
    from mml_tool.change.record import RecordJournal
    from mml_tool.gateway.verify import VerifyResult, VerifyStep

PathLike = str | Path


def _parse(command: str, text: str, platform: str) -> list[dict[str, str]]:
    return parse_output(command, text, platform)


class MmlSession(_MmlSession):
    """``mml_tool.mml.MmlSession`` whose responses ``parse()`` with the built-in templates."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("parser", _parse)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def load_inventory(
    path: PathLike,
    *,
    prompt: Prompt | None = None,
    env: dict[str, str] | None = None,
    resolve_secrets: bool = True,
) -> Inventory:
    """Read and check an inventory file (``InventoryError`` naming file, host and field).

    ``${VAR}`` comes from ``env`` (default ``os.environ``); ``prompt`` answers
    ``password_prompt`` (None: refused). ``resolve_secrets=False`` reads no secret now; the
    functions below read those of the hosts they use."""
    return _load_inventory(path, prompt=prompt, env=env, resolve_secrets=resolve_secrets)


def load_policy(path: PathLike | None = None) -> Policy:
    """The built-in policy, or the policy file at ``path`` (``PolicyError`` if it is wrong)."""
    return _load_policy(None if path is None else Path(path))


def check(
    inventory: Inventory,
    policy: Policy | None = None,
    *,
    limit: str | None = None,
    workers: int = DEFAULT_WORKERS,
    template_dirs: Sequence[PathLike] = (),
    progress: Progress | None = None,
) -> CheckResult:
    """Read every control of ``policy`` from the hosts ``limit`` selects (names, groups, globs;
    None: all) concurrently. A host that cannot be read gives ``error`` findings, never an
    exception; bad input (an unknown ``limit``, a secret that cannot be read) raises."""
    policy = policy if policy is not None else _load_policy()
    started = _io.now_iso()
    hosts = inventory.select(limit)
    targeted = [h.name for h in hosts if policy.controls_for(h)]
    inventory = inventory.with_secrets(hosts=targeted)
    findings = check_fleet(
        [inventory.hosts[name] for name in targeted],
        policy,
        template_dirs=[Path(d) for d in template_dirs],
        workers=workers,
        progress=progress,
    )
    return CheckResult(
        findings=findings,
        inventory=inventory,
        policy=policy,
        started=started,
        finished=_io.now_iso(),
        hosts=[h.name for h in hosts],
    )


def plan(result: CheckResult, *, change_id: str = "", operator: str | None = None) -> Plan:
    """A plan with one step per failing (host, control) of ``result``: its commands, their
    rollback and the state read. Hosts that could not be decided get no step (they are in
    ``result.failed_hosts``); save it with ``Plan.save(path)`` for review."""
    from mml_tool.change import build_plan

    if result.policy is None or result.inventory is None:
        raise ConfigError("plan() needs a CheckResult made by mml_tool.check()")
    return build_plan(
        result.findings,
        result.policy,
        change_id=change_id,
        inventory=result.inventory.path,
        operator=operator or getpass.getuser(),
    )


def load_plan(
    path: PathLike,
    *,
    max_age: timedelta | None = DEFAULT_MAX_AGE,
    signing_key: Secret | None = None,
) -> Plan:
    """Read a saved plan; ``PlanError`` if tampered with, older than ``max_age`` or, given
    ``signing_key``, not signed with it."""
    from mml_tool.change import load_plan as _load_plan

    return _load_plan(Path(path), max_age=max_age, signing_key=signing_key)


def load_record(path: PathLike, *, signing_key: Secret | None = None) -> ApplyRecord:
    """Read a saved apply (or rollback) record; ``PlanError`` if its seal does not match,
    ``RecordError`` if ``signing_key`` is given (pass ``inventory.plan_signing_key``) and the
    record is not signed with it. Records written with a key are signed with it."""
    from mml_tool.change import load_record as _load_record

    return _load_record(Path(path), signing_key=signing_key)


def _lock_dir(inventory: Inventory, lock_dir: PathLike | None) -> Path:
    """The inventory's lock_dir, else ``lock_dir``, else the machine's shared one (as the CLI)."""
    from mml_tool.change.lock import lock_dir_for

    return lock_dir_for(inventory.lock_dir, None if lock_dir is None else Path(lock_dir))


def _context(
    inventory: Inventory,
    hosts: Sequence[str],
    change_id: str,
    audit: PathLike | None,
    policy: Policy | None,
    lock_dir: PathLike | None,
    operator: str | None,
    template_dirs: Sequence[PathLike],
) -> ChangeContext:
    from mml_tool.audit import AuditTrail
    from mml_tool.change import ChangeContext

    return ChangeContext(
        inventory=inventory.with_secrets(hosts=hosts),
        audit=AuditTrail(inventory.audit_file(audit)),
        operator=operator or getpass.getuser(),
        change_id=change_id,
        lock_dir=_lock_dir(inventory, lock_dir),
        template_dirs=[Path(d) for d in template_dirs],
        policy=policy if policy is not None else _load_policy(),
    )


def _journal(
    path: PathLike | RecordJournal | None,
    digest: str,
    action: str,
    inventory: Inventory,
    audit: Path,
) -> RecordJournal | None:
    """The record's journal: the caller's (already checked: the CLI words its own messages),
    or a new one, checked here; a record whose folder fails goes beside the audit trail. With
    the inventory's plan_signing_key the record is signed (``execute`` sees to a caller's)."""
    from mml_tool.change.record import RecordJournal, default_fallback_dirs

    if path is None or isinstance(path, RecordJournal):
        return path
    journal = RecordJournal(
        Path(path),
        plan_sha256=digest,
        action=action,
        accumulate=True,
        fallback_dirs=default_fallback_dirs(audit),
        signing_key=inventory.plan_signing_key,
    )
    journal.check()  # RecordError before anything is sent
    return journal


def apply(
    plan: Plan,
    inventory: Inventory,
    *,
    audit: PathLike | None = None,
    record: PathLike | RecordJournal | None = None,
    policy: Policy | None = None,
    lock_dir: PathLike | None = None,
    operator: str | None = None,
    workers: int = DEFAULT_WORKERS,
    template_dirs: Sequence[PathLike] = (),
    progress: Progress | None = None,
) -> ApplyRecord:
    """Apply a reviewed plan: per host lock, re-read, refuse drift, send, re-read, audit.

    The plan must derive from ``policy`` (default built-in): ``PlanError`` before anything
    is sent otherwise. ``record``: write the record ahead of every command (and merge an
    earlier run of the same plan). One host's failure never stops another: see
    ``ApplyRecord.failed`` and each step's ``StepStatus``."""
    from mml_tool.change import apply_plan, plan_sha256

    ctx = _context(
        inventory, plan.hosts, plan.change_id, audit, policy, lock_dir, operator, template_dirs
    )
    journal = _journal(record, plan_sha256(plan), "apply", inventory, inventory.audit_file(audit))
    return apply_plan(plan, replace(ctx, journal=journal), workers=workers, progress=progress)


def rollback(
    record: ApplyRecord,
    inventory: Inventory,
    *,
    audit: PathLike | None = None,
    save_to: PathLike | RecordJournal | None = None,
    policy: Policy | None = None,
    lock_dir: PathLike | None = None,
    operator: str | None = None,
    workers: int = DEFAULT_WORKERS,
    template_dirs: Sequence[PathLike] = (),
    progress: Progress | None = None,
) -> ApplyRecord:
    """Undo what ``record``'s run may have changed (each step re-read first), with the same
    care as ``apply``; returns the rollback's own record (``save_to``: written ahead)."""
    from mml_tool.change import check_record, rollback_record, rollback_steps

    policy = policy if policy is not None else _load_policy()
    check_record(record, policy, inventory, f"record {record.change_id}")
    hosts = sorted({s.host for s in rollback_steps(record)})
    ctx = _context(
        inventory, hosts, record.change_id, audit, policy, lock_dir, operator, template_dirs
    )
    journal = _journal(
        save_to, record.plan_sha256, "rollback", inventory, inventory.audit_file(audit)
    )
    return rollback_record(
        record, replace(ctx, journal=journal), workers=workers, progress=progress
    )


def verify(
    inventory: Inventory,
    *,
    host: str | None = None,
    gateway: str | None = None,
    agent: str | None = None,
    called: str | None = None,
    directions: Sequence[int] = (1, 2),
    wait_incoming: bool = False,
    force_sign_in: bool = False,
    ring_timeout: float | None = None,
    on_step: Callable[[VerifyStep], None] | None = None,
) -> VerifyResult:
    """Prove video end to end through the CC-Gateway of ``host`` (or ``gateway``, or the only
    one): sign in, call, check each video direction, release, sign out (always).
    ``agent``/``called`` replace the inventory's agent ID and number called for this run.
    ``.passed`` is the verdict; ``.error`` says why there is none."""
    from mml_tool.gateway.verify import verify_gateway

    name = pick_gateway(inventory, gateway=gateway, host=host, names=("gateway=", "host="))
    settings = inventory.with_secrets(gateways=[name]).gateways[name]
    # Overrides of the inventory's agent and number (the CLI's --agent, --called).
    settings = replace(
        settings, agent_id=agent or settings.agent_id, called=called or settings.called
    )
    return verify_gateway(
        settings,
        directions=directions,
        wait_incoming=wait_incoming,
        force_sign_in=force_sign_in,
        ring_timeout=ring_timeout,
        on_step=on_step,
    )
