"""The typed object every command finds in ``ctx.obj`` (set by the root group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click


@dataclass
class CliContext:
    """What the root group's options and the commands share for one invocation."""

    template_dirs: list[Path] = field(default_factory=list)
    operator: str | None = None  # --operator / $MML_TOOL_OPERATOR; None: the login name
    stdout_taken: bool = False  # a report goes to stdout (`--report json:-`): nothing else may


def cli_context(ctx: click.Context | None = None) -> CliContext:
    """The invocation's context; a default one when a command runs outside the root group."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().ensure_object(CliContext)
