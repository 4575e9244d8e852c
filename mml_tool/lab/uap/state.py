"""What a simulated node holds: its SFP software parameters (kept in a file or not), its faults."""

from __future__ import annotations

import json
import os
import random
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from mml_tool.errors import ConfigError
from mml_tool.lab.uap.config import PARAM_BITS, NodeConfig


def _pid_key(pid: str) -> tuple[int, str]:
    return (int(pid[1:]), pid)


class SfpStore:
    """Software-parameter values of one node; thread-safe; optionally persisted as JSON.

    The state file (``{"version": 1, "params": {"P978": 1, ...}}``) is loaded at start when it
    exists (it wins over the configured values), written at start when it does not, and
    rewritten atomically (temporary file + rename) on every change.
    """

    def __init__(self, params: Mapping[str, int], state_file: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._values = dict(params)
        self._state_file = state_file
        if state_file is not None:
            if state_file.exists():
                self._values = self._load(state_file)
            else:
                self._persist()

    @staticmethod
    def _load(path: Path) -> dict[str, int]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            values = data["params"]
            if not isinstance(values, dict):
                raise TypeError("params is not a mapping")
            return {str(k): int(v) for k, v in values.items()}
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ConfigError(
                f"{path}: not a lab state file ({exc}); delete it to start from the defaults"
            ) from exc

    def _persist(self) -> None:
        if self._state_file is None:
            return
        path = self._state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": 1, "params": self._values}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, pid: str) -> int | None:
        with self._lock:
            return self._values.get(pid)

    def get_bit(self, pid: str, bit: int) -> int | None:
        value = self.get(pid)
        return None if value is None else (value >> bit) & 1

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._values, key=_pid_key)

    def set_bit(self, pid: str, bit: int, val: int) -> int:
        """Set one bit; returns the new value. KeyError: unknown id; ValueError: bad bit/val."""
        if not 0 <= bit < PARAM_BITS:
            raise ValueError(f"bit must be 0..{PARAM_BITS - 1}")
        if val not in (0, 1):
            raise ValueError("bit value must be 0 or 1")
        with self._lock:
            old = self._values[pid]
            new = (old | (1 << bit)) if val else (old & ~(1 << bit))
            self._values[pid] = new
            self._persist()
            return new

    def set_value(self, pid: str, value: int) -> None:
        with self._lock:
            self._values[pid] = value
            self._persist()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class UapNode:
    """One running node: its config, state, ports and node-wide counters."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.store = SfpStore(config.params, config.state_file)
        self.ssh_port = 0
        self.tcp_port = 0
        self._lock = threading.Lock()
        self._alarm_no = random.randint(100, 9000)
        self._fault_fires = 0

    @property
    def name(self) -> str:
        return self.config.name

    def next_alarm(self) -> int:
        with self._lock:
            self._alarm_no += 1
            return self._alarm_no

    def take_fault(self) -> bool:
        """Whether a bounded fault may fire once more (and count it)."""
        with self._lock:
            limit = self.config.faults.times
            if limit is not None and self._fault_fires >= limit:
                return False
            self._fault_fires += 1
            return True
