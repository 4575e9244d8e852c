"""What a change run shares: its context (inventory, audit, policy, halt), its journal and
its progress across the host threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mml_tool.audit import AuditTrail
from mml_tool.change.outcome import ApplyRecord, StepResult
from mml_tool.change.plan import Step
from mml_tool.errors import MmlToolError
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.session import MmlSession
from mml_tool.policy import Policy
from mml_tool.results import StepStatus

IN_FLIGHT = "in flight: sent or about to be sent, outcome not known yet"


class ChangeStopped(MmlToolError):
    """The change was halted (Ctrl-C, or the audit trail or record failed on another host)."""


class Journal(Protocol):
    """Keeps the record of a run on disk while it runs (``change.record.RecordJournal``)."""

    def begin(self, current: Callable[[], ApplyRecord]) -> None:
        """Write the record before anything is sent; raise ``RecordError`` if it cannot be."""

    def flush(self) -> bool:
        """Write ``current()`` now; False when it could not be written anywhere."""

    def finish(self, record: ApplyRecord, *, still_running: bool = False) -> ApplyRecord:
        """Write the final record (earlier runs merged in) and return it."""

    def say(self, message: str) -> None:
        """Tell the operator (stderr)."""

    def settled(self) -> None:
        """Every host's thread has returned (also after ``finish(still_running=True)``)."""


@dataclass(frozen=True)
class ChangeContext:
    """Everything apply and rollback need besides the steps."""

    inventory: Inventory
    audit: AuditTrail
    operator: str
    change_id: str
    lock_dir: Path
    template_dirs: Sequence[Path] = ()
    session_factory: Callable[[HostConfig], MmlSession] = MmlSession
    # The rules every step must derive from (approval.check_steps); None: the built-in policy.
    policy: Policy | None = None
    # Set on Ctrl-C or when the audit trail fails: every host stops before its next command.
    halted: threading.Event = field(default_factory=threading.Event)
    journal: Journal | None = None  # writes the record ahead; None: only returned at the end


@dataclass
class _RunState:
    """One run's progress, shared by the host threads, the journal and an interrupt."""

    by_host: dict[str, list[Step]]
    partial: dict[str, list[StepResult]]
    in_flight: dict[str, StepResult] = field(default_factory=dict)  # host -> step being sent
    running: set[str] = field(default_factory=set)  # hosts whose job has started
    done: set[str] = field(default_factory=set)  # hosts whose job has returned
    abandoned: set[str] = field(default_factory=set)  # never to start (the caller gave up)
    lock: threading.Lock = field(default_factory=threading.Lock)
    placeholders: dict[tuple[int, str], StepResult] = field(default_factory=dict)

    def results(self, not_reached: str) -> list[StepResult]:
        """Every step: its result, "unknown" while in flight, else skipped with ``not_reached``."""
        out: list[StepResult] = []
        for name, steps in self.by_host.items():
            done = list(self.partial[name])
            out += done
            rest = steps[len(done) :]
            flying = self.in_flight.get(name)
            if rest and flying is not None and flying.step is rest[0]:
                out.append(flying)
                rest = rest[1:]
            out += [self._placeholder(s, not_reached) for s in rest]
        return out

    def _placeholder(self, step: Step, why: str) -> StepResult:
        # The same object each time: the journal re-encodes only the steps that changed.
        key = (id(step), why)
        if key not in self.placeholders:
            self.placeholders[key] = StepResult(step, StepStatus.SKIPPED, error=why)
        return self.placeholders[key]
