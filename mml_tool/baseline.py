"""Baseline and drift: snapshot every software parameter of a golden element, diff a fleet.

``take_snapshot(host)`` reads ``LST SFP:;`` (all pages: the session reads a paged reply whole)
and returns a ``Snapshot``: each parameter's value and bits, the reply as received, when and
from where. ``Snapshot.save(path)`` writes it as JSON (``mml_tool/schemas/snapshot.schema.json``)
and never replaces an existing file unless told to (``force=True``).

``load_snapshot(path)`` reads it back and refuses, naming the file and what to do, a file that
is not a snapshot, one of another ``schema_version``, and one whose values are not what its
own reply says (edited or forged): the reply is parsed again with the shipped template and
every value and bit must agree.

``diff_fleet(inventory, baseline)`` reads the same command from every selected host
concurrently and returns a ``DriftResult``: per host, each parameter bit that ``differs``,
each parameter that is ``missing`` (in the baseline, not on the host) or ``extra`` (on the
host, not in the baseline), or the error that kept the host from being read. ``exit_code``:
0 no host differs, 100 some host differs, 1 some host could not be read (or none selected).
``findings`` gives the result as report rows, so ``check``'s reports (terminal, JSON, JUnit,
Markdown) render it.

A parameter is compared bit by bit over the bits either side knows (16 in the simulator's
dialect; more when a value needs them). A per-bit reply that lists only some bits of a
parameter gives only those; a bit one side lacks is a difference, never a match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mml_tool._io import now_iso
from mml_tool.errors import ConfigError, MmlToolError
from mml_tool.exitcodes import ExitCode
from mml_tool.fleet import DEFAULT_WORKERS, Progress, run_fleet
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.session import MmlSession
from mml_tool.results import FindingStatus, StrEnum

# The snapshot half lives in mml_tool.snapshot; its public names stay importable from here.
from mml_tool.snapshot import _PID_RE, _pid_key, _value, read_parameters
from mml_tool.snapshot import PARAM_BITS as PARAM_BITS
from mml_tool.snapshot import READ_COMMAND as READ_COMMAND
from mml_tool.snapshot import SNAPSHOT_KIND as SNAPSHOT_KIND
from mml_tool.snapshot import SNAPSHOT_SCHEMA_VERSION as SNAPSHOT_SCHEMA_VERSION
from mml_tool.snapshot import Snapshot as Snapshot
from mml_tool.snapshot import bits_of as bits_of
from mml_tool.snapshot import load_snapshot as load_snapshot
from mml_tool.snapshot import parameters_from_records as parameters_from_records
from mml_tool.snapshot import snapshot_schema as snapshot_schema
from mml_tool.snapshot import take_snapshot as take_snapshot

BASELINE_CONTROL = "baseline"  # the report row of a host that matches, or cannot be read


class DiffKind(StrEnum):
    """How a host differs from the baseline in one parameter (or bit)."""

    DIFFERS = "differs"  # a bit has another value
    MISSING = "missing"  # in the baseline, not on the host
    EXTRA = "extra"  # on the host, not in the baseline


# -- the diff -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One way a host differs from the baseline."""

    host: str
    parameter: str
    kind: DiffKind
    bit: int | None = None  # None: the whole parameter (missing, extra)
    expected: int | None = None  # the baseline's bit (differs) or value (missing)
    actual: int | None = None  # the host's bit (differs) or value (extra)

    @property
    def key(self) -> str:
        return self.parameter if self.bit is None else f"{self.parameter} bit {self.bit}"


@dataclass
class HostDrift:
    """One host against the baseline: its differences, or why it could not be read."""

    host: str
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None
    compared: int = 0  # parameters compared (ignored ones left out)
    raw: str = ""  # the host's reply
    parameters: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # as read

    def value(self, parameter: str) -> int | None:
        bits = self.parameters.get(parameter)
        return None if bits is None else _value(bits)

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def drifted(self) -> bool:
        return bool(self.differences)


@dataclass(frozen=True)
class DriftFinding:
    """A report row (``report.model.Row``) of a diff: one difference, a match, an error."""

    host: str
    control_id: str
    status: FindingStatus
    expected: str
    actual: str | None
    evidence: str = ""
    error: str | None = None
    title: str = ""
    severity: str = "drift"
    remediation: Sequence[str] = ()
    rollback: Sequence[str] = ()
    waiver_reason: str | None = None
    before_bit_value: int | None = None
    notes: Sequence[str] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "control": self.control_id,
            "status": str(self.status),
            "expected": self.expected,
            "actual": self.actual,
            "evidence": self.evidence,
            "error": self.error,
            "title": self.title,
        }


@dataclass
class DriftResult:
    """A fleet compared with a baseline snapshot, one ``HostDrift`` per host in inventory order."""

    baseline: Snapshot
    hosts: list[HostDrift]
    ignored: tuple[str, ...] = ()
    started: str = ""
    finished: str = ""
    warnings: list[str] = field(default_factory=list)

    changed = False  # a diff never changes anything

    @property
    def differences(self) -> list[Difference]:
        return [d for h in self.hosts for d in h.differences]

    @property
    def drifted_hosts(self) -> list[str]:
        return [h.host for h in self.hosts if h.drifted]

    @property
    def error_hosts(self) -> list[str]:
        return [h.host for h in self.hosts if h.failed]

    @property
    def exit_code(self) -> int:
        """1 some host could not be read (or no host), 100 some host differs, else 0."""
        if not self.hosts or self.error_hosts:
            return ExitCode.ERROR
        return ExitCode.NONCOMPLIANT if self.drifted_hosts else ExitCode.OK

    @property
    def failed(self) -> bool:
        return self.exit_code != ExitCode.OK

    @property
    def findings(self) -> list[DriftFinding]:
        """The result as report rows: a row per difference; a host that matches, or that
        could not be read, has one row named ``baseline``."""
        base = self.baseline
        origin = f"baseline {base.host} ({base.address}) taken {base.taken}"
        rows: list[DriftFinding] = []
        for h in self.hosts:
            if h.error is not None:
                rows.append(
                    DriftFinding(
                        h.host,
                        BASELINE_CONTROL,
                        FindingStatus.ERROR,
                        f"every parameter as on {base.host}",
                        None,
                        evidence=origin,
                        error=h.error,
                        title="could not be read",
                    )
                )
            elif not h.differences:
                same = f"{h.compared} parameters as on {base.host}"
                rows.append(
                    DriftFinding(
                        h.host,
                        BASELINE_CONTROL,
                        FindingStatus.PASS,
                        same,
                        same,
                        evidence=origin,
                        title="no drift",
                    )
                )
            rows.extend(_row(d, base, h, origin) for d in h.differences)
        return rows


def _row(d: Difference, base: Snapshot, h: HostDrift, origin: str) -> DriftFinding:
    def whole(value: int | None) -> str:
        return "absent" if value is None else f"{value} (0x{value:04X})"

    if d.kind == DiffKind.DIFFERS:
        title = f"{d.key} differs from {base.host}"
        expected, actual = str(d.expected), "absent" if d.actual is None else str(d.actual)
    elif d.kind == DiffKind.MISSING:
        title = f"{d.parameter} is missing on the host"
        expected, actual = whole(d.expected), "absent (missing on the host)"
    else:
        title = f"{d.parameter} is not in the baseline"
        expected, actual = "absent (not in the baseline)", whole(d.actual)
    values = (
        f"{d.parameter}: {base.host} {whole(base.value(d.parameter))}, "
        f"{h.host} {whole(h.value(d.parameter))}"
    )
    return DriftFinding(
        d.host,
        d.key,
        FindingStatus.FAIL,
        expected,
        actual,
        evidence=f"{origin}\n{values}",
        title=title,
    )


def compare(
    host: str,
    baseline: Mapping[str, Mapping[int, int]],
    actual: Mapping[str, Mapping[int, int]],
    ignore: Iterable[str] = (),
) -> list[Difference]:
    """The differences of one host's parameters from the baseline's, ``ignore`` left out."""
    skip = {p.upper() for p in ignore}
    out: list[Difference] = []
    for pid in sorted((baseline.keys() | actual.keys()) - skip, key=_pid_key):
        want, have = baseline.get(pid), actual.get(pid)
        if have is None and want is not None:
            out.append(Difference(host, pid, DiffKind.MISSING, expected=_value(want)))
        elif want is None and have is not None:
            out.append(Difference(host, pid, DiffKind.EXTRA, actual=_value(have)))
        elif want is not None and have is not None:
            for bit in sorted(want.keys() | have.keys()):
                if want.get(bit) != have.get(bit):
                    out.append(
                        Difference(host, pid, DiffKind.DIFFERS, bit, want.get(bit), have.get(bit))
                    )
    return out


def parse_ignore(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """``P001,P002`` (or a list) -> ("P001", "P002"); ConfigError for anything else."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        pid = item.strip().upper()
        if not _PID_RE.fullmatch(pid):
            raise ConfigError(
                f"--ignore: {item.strip()[:40]!r} is not a parameter id; give ids like "
                "P001,P978 separated by ','"
            )
        out.append(pid)
    return tuple(dict.fromkeys(out))


def diff_host(
    host: HostConfig,
    baseline: Snapshot,
    *,
    ignore: Iterable[str] = (),
    template_dirs: Sequence[Path] = (),
    session_factory: Callable[[HostConfig], MmlSession] = MmlSession,
) -> HostDrift:
    """One host against the baseline; a host that cannot be read is a ``HostDrift`` with an
    error, never one without differences."""
    skip = set(ignore)
    try:
        with session_factory(host) as session:
            params, raw = read_parameters(session, template_dirs)
    except MmlToolError as exc:
        return HostDrift(host.name, error=str(exc))
    compared = len((baseline.parameters.keys() | params.keys()) - skip)
    differences = compare(host.name, baseline.parameters, params, skip)
    return HostDrift(host.name, differences, None, compared, raw, params)


def diff_fleet(
    inventory: Inventory,
    baseline: Snapshot | str | Path,
    *,
    limit: str | None = None,
    ignore: str | Iterable[str] | None = None,
    workers: int = DEFAULT_WORKERS,
    template_dirs: Sequence[str | Path] = (),
    progress: Progress | None = None,
    session_factory: Callable[[HostConfig], MmlSession] = MmlSession,
) -> DriftResult:
    """Compare the hosts ``limit`` selects (None: all) with ``baseline`` concurrently.

    Bad input (an unreadable snapshot, an unknown ``limit``, a bad ``ignore``, a secret that
    cannot be read) raises ConfigError before anything is connected to."""
    dirs = [Path(d) for d in template_dirs]
    snapshot = (
        baseline if isinstance(baseline, Snapshot) else load_snapshot(baseline, template_dirs=dirs)
    )
    skip = parse_ignore(ignore)
    hosts = inventory.select(limit)
    inventory = inventory.with_secrets(hosts=[h.name for h in hosts])
    warnings = [
        f"--ignore {pid}: the baseline has no {pid}"
        for pid in skip
        if pid not in snapshot.parameters
    ]
    started = now_iso()
    results = run_fleet(
        [inventory.hosts[h.name] for h in hosts],
        lambda host: diff_host(
            host, snapshot, ignore=skip, template_dirs=dirs, session_factory=session_factory
        ),
        workers=workers,
        progress=progress,
    )
    drifts = [
        r.value if r.value is not None else HostDrift(r.host, error=str(r.error)) for r in results
    ]
    return DriftResult(snapshot, drifts, skip, started, now_iso(), warnings)
