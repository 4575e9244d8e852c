"""Command-line helpers of the commands that change hosts (plan, apply, run, exec
--allow-write): apart from cli/_common so that read-only commands do not load the audit
trail, the locks and the change-ID rules at start-up."""

from __future__ import annotations

from pathlib import Path

import click

from mml_tool.audit import AuditTrail
from mml_tool.change.lock import lock_dir_for
from mml_tool.change_id import validate_change_id
from mml_tool.errors import ConfigError
from mml_tool.inventory import Inventory


def change_id_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Checked while the command line is parsed: a usage error, before anything is read."""
    if value is None:
        return None
    try:
        return validate_change_id(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def audit_trail(audit_path: Path | None, inventory: Inventory) -> AuditTrail:
    """--audit (or $MML_TOOL_AUDIT), else the inventory's ``audit:``, else the state folder."""
    return AuditTrail(inventory.audit_file(audit_path))


def lock_folder(inventory: Inventory, lock_dir: Path | None) -> Path:
    """The inventory's lock_dir first (every operator must share it), then --lock-dir."""
    return lock_dir_for(inventory.lock_dir, lock_dir)
