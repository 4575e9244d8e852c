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

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from mml_tool import __version__
from mml_tool._io import now_iso
from mml_tool.errors import ConfigError, MmlToolError, ParseError
from mml_tool.exitcodes import ExitCode
from mml_tool.fleet import DEFAULT_WORKERS, Progress, run_fleet
from mml_tool.inventory import HostConfig, Inventory
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output
from mml_tool.results import FindingStatus, StrEnum

SNAPSHOT_SCHEMA_VERSION = 1
SNAPSHOT_KIND = "mml-tool software-parameter snapshot"
READ_COMMAND = "LST SFP:;"
PARAM_BITS = 16  # the width the simulator assumes (the real width is not public)
_PID_RE = re.compile(r"P[0-9]{1,5}")
_MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
BASELINE_CONTROL = "baseline"  # the report row of a host that matches, or cannot be read


class DiffKind(StrEnum):
    """How a host differs from the baseline in one parameter (or bit)."""

    DIFFERS = "differs"  # a bit has another value
    MISSING = "missing"  # in the baseline, not on the host
    EXTRA = "extra"  # on the host, not in the baseline


# -- reading ------------------------------------------------------------------------------------


def _number(text: str, what: str) -> int:
    if not re.fullmatch(r"[0-9]{1,20}", text):
        raise ParseError(f"{what} is {text[:40]!r}, not a decimal number in ASCII digits")
    return int(text)


def _hex(text: str, what: str) -> int:
    digits = text.removeprefix("0x").removeprefix("0X").removesuffix("h").removesuffix("H")
    if not re.fullmatch(r"[0-9A-Fa-f]{1,16}", digits):
        raise ParseError(f"{what} {text[:40]!r} is not a hexadecimal number")
    return int(digits, 16)


def bits_of(value: int) -> dict[int, int]:
    """Every bit of a whole value: 16, or as many as the value needs."""
    return {b: (value >> b) & 1 for b in range(max(PARAM_BITS, value.bit_length()))}


def parameters_from_records(records: Sequence[Mapping[str, str]]) -> dict[str, dict[int, int]]:
    """Parameter id -> {bit: value} from per-bit or whole-value records of ``LST SFP``.

    ParseError when a record names no parameter, a number is not a number, a bit value is not
    0/1, or two records disagree: a value that cannot be read is never a value."""
    out: dict[str, dict[int, int]] = {}
    for record in records:
        pid = record.get("ID", "").strip().upper()
        if not _PID_RE.fullmatch(pid):
            raise ParseError(f"a record names parameter {pid[:40]!r}, not one like P978")
        bits = out.setdefault(pid, {})
        found: dict[int, int] = {}
        whole, hex_text = record.get("VALUE", "").strip(), record.get("HEX", "").strip()
        if whole:
            found.update(bits_of(_number(whole, f"{pid} value")))
        elif hex_text:
            found.update(bits_of(_hex(hex_text, f"{pid} value")))
        zero, one = record.get("BIT", "").strip(), record.get("BIT_FROM_1", "").strip()
        bit_value = record.get("BIT_VALUE", "").strip()
        if (zero or one) and bit_value:
            index = _number(zero, f"{pid} bit") if zero else _number(one, f"{pid} bit") - 1
            value = _number(bit_value, f"{pid} bit {index} value")
            if index < 0 or value not in (0, 1):
                raise ParseError(f"{pid} bit {index} has value {value}: not a bit")
            found[index] = value
        for index, value in found.items():
            if bits.setdefault(index, value) != value:
                raise ParseError(f"the reply gives {pid} bit {index} as both 0 and 1")
    return out


def _value(bits: Mapping[int, int]) -> int:
    return sum(v << b for b, v in bits.items())


def read_parameters(
    session: MmlSession, template_dirs: Sequence[Path] = ()
) -> tuple[dict[str, dict[int, int]], str]:
    """Every software parameter of the element behind ``session``, and the reply's text."""
    response = session.run(READ_COMMAND).raise_for_retcode()
    records = parse_output(
        READ_COMMAND, response.text, session.params.platform, template_dirs=template_dirs
    )
    params = parameters_from_records(records)
    if not params:
        raise ParseError(
            f"{READ_COMMAND} listed no software parameter: nothing to compare",
            command=READ_COMMAND,
        )
    return params, response.text


# -- the snapshot -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Every software parameter of one element at one time (``parameters``: id -> bit -> 0/1)."""

    host: str
    address: str  # host:port as the inventory gave it
    transport: str
    platform: str
    taken: str  # ISO 8601 UTC
    parameters: Mapping[str, Mapping[int, int]]
    raw: str  # the reply's reports as received
    command: str = READ_COMMAND
    tool_version: str = __version__
    ne_name: str | None = None
    path: Path | None = field(default=None, compare=False)
    sha256: str = field(default="", compare=False)  # of the file it was loaded from

    def value(self, parameter: str) -> int | None:
        bits = self.parameters.get(parameter)
        return None if bits is None else _value(bits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SNAPSHOT_SCHEMA_VERSION,
            "kind": SNAPSHOT_KIND,
            "host": self.host,
            "address": self.address,
            "transport": self.transport,
            "platform": self.platform,
            "ne_name": self.ne_name,
            "taken": self.taken,
            "tool_version": self.tool_version,
            "command": self.command,
            "parameters": {
                pid: {
                    "value": _value(bits),
                    "bits": {str(b): bits[b] for b in sorted(bits)},
                }
                for pid, bits in sorted(self.parameters.items(), key=lambda i: _pid_key(i[0]))
            },
            "raw": self.raw,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"

    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the snapshot; an existing file is refused (ConfigError) unless ``force``.

        The file is complete or absent, never partial; without ``force`` a file that appears
        meanwhile is not replaced either (a hard link, not a rename, puts it in place)."""
        path = Path(path)
        if path.exists() and not force:
            raise ConfigError(
                f"{path} exists: refusing to replace it; choose another file with -o, or "
                "replace it with --force"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            if force:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)
        except FileExistsError:
            raise ConfigError(
                f"{path} appeared while the snapshot was written: refusing to replace it; "
                "choose another file with -o, or replace it with --force"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot write the snapshot {path}: {exc.strerror or exc}; choose a writable "
                "path with -o"
            ) from exc
        finally:
            Path(tmp).unlink(missing_ok=True)
        return path


def _pid_key(pid: str) -> tuple[int, str]:
    return (int(pid[1:]) if pid[1:].isdigit() else 0, pid)


def take_snapshot(
    host: HostConfig,
    *,
    template_dirs: Sequence[str | Path] = (),
    session_factory: Callable[[HostConfig], MmlSession] = MmlSession,
) -> Snapshot:
    """Read every software parameter of ``host`` (its secrets resolved) into a ``Snapshot``."""
    taken = now_iso()
    with session_factory(host) as session:
        params, raw = read_parameters(session, [Path(d) for d in template_dirs])
    return Snapshot(
        host=host.name,
        address=host.address,
        transport=host.transport,
        platform=host.platform,
        taken=taken,
        parameters=params,
        raw=raw,
        ne_name=host.ne_name,
    )


def snapshot_schema() -> dict[str, Any]:
    """The JSON Schema of a snapshot file (mml_tool/schemas/snapshot.schema.json)."""
    text = resources.files("mml_tool").joinpath("schemas/snapshot.schema.json").read_text("utf-8")
    return dict(json.loads(text))


def load_snapshot(path: str | Path, *, template_dirs: Sequence[str | Path] = ()) -> Snapshot:
    """Read a snapshot file; ConfigError naming the file when it is not one, or not intact."""
    path = Path(path)
    take_new = f"take a new one with `mml-tool snapshot -i INVENTORY HOST -o {path}`"
    try:
        with path.open("rb") as handle:  # bounded: a wrong file may be huge
            data_bytes = handle.read(_MAX_SNAPSHOT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the snapshot {path}: {exc.strerror or exc}") from exc
    if len(data_bytes) > _MAX_SNAPSHOT_BYTES:
        raise ConfigError(f"{path}: larger than {_MAX_SNAPSHOT_BYTES} bytes: not a snapshot")
    try:
        data = json.loads(data_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: not a snapshot file (not JSON: {exc}); {take_new}") from None
    if not isinstance(data, dict) or data.get("kind") != SNAPSHOT_KIND:
        raise ConfigError(f'{path}: not a snapshot file (no "kind": "{SNAPSHOT_KIND}"); {take_new}')
    version = data.get("schema_version")
    if version != SNAPSHOT_SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: snapshot schema_version {json.dumps(version)[:20]} is not one this mml-tool "
            f"reads ({SNAPSHOT_SCHEMA_VERSION}); use the mml-tool that wrote it, or {take_new}"
        )
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(snapshot_schema()).iter_errors(data)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ConfigError(f"{path}: not a valid snapshot at {where}: {error.message[:200]}")
    params = _stored_parameters(path, data["parameters"], take_new)
    try:
        records = parse_output(
            data["command"], data["raw"], data["platform"], [Path(d) for d in template_dirs]
        )
        from_raw = parameters_from_records(records)
    except MmlToolError as exc:
        raise ConfigError(f"{path}: the reply kept in the snapshot cannot be read: {exc}") from None
    if from_raw != params:
        changed = sorted(
            {p for p in params.keys() | from_raw.keys() if params.get(p) != from_raw.get(p)},
            key=_pid_key,
        )
        raise ConfigError(
            f"{path}: the values do not match the reply kept in the file ({', '.join(changed[:5])}"
            f"{' ...' if len(changed) > 5 else ''}): it was edited after it was taken; "
            f"{take_new}"
        )
    return Snapshot(
        host=data["host"],
        address=data["address"],
        transport=data["transport"],
        platform=data["platform"],
        taken=data["taken"],
        parameters=params,
        raw=data["raw"],
        command=data["command"],
        tool_version=data["tool_version"],
        ne_name=data.get("ne_name"),
        path=path,
        sha256=hashlib.sha256(data_bytes).hexdigest(),
    )


def _stored_parameters(
    path: Path, raw: Mapping[str, Any], take_new: str
) -> dict[str, dict[int, int]]:
    params: dict[str, dict[int, int]] = {}
    for pid, entry in raw.items():
        bits = {int(b): v for b, v in entry["bits"].items()}
        if _value(bits) != entry["value"]:
            raise ConfigError(
                f"{path}: {pid}: value {entry['value']} does not match its bits "
                f"({_value(bits)}): the file was edited; {take_new}"
            )
        params[pid] = bits
    return params


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
