"""Reports from a run: JSON (stable schema), JUnit XML, Markdown for a change ticket, terminal.

The JSON layout is documented in docs/report-schema.md; within one ``schema_version`` fields
are only ever added, never renamed or removed.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mml_tool.atomic import write_text_atomic
from mml_tool.errors import ConfigError
from mml_tool.exitcodes import ExitCode
from mml_tool.fasttable import print_table
from mml_tool.mml.command import mask_text

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "error", "waived")
FAST_TABLE_ROWS = 50
_STYLES = {"pass": "green", "fail": "bold red", "error": "bold magenta", "waived": "yellow"}
# Characters XML 1.0 cannot carry at all (device replies may hold control bytes).
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DIGITS = re.compile("([0-9]+)")
# Change statuses that mean the step reached the planned state (StepResult.ok).
_CHANGE_OK = ("changed", "already-compliant")
STDOUT = "-"  # --report FORMAT:- writes that report to standard output


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders ``uap-2`` before ``uap-10`` (ASCII digit runs compare as numbers)."""
    return tuple(
        (0, int(part), "") if _DIGITS.fullmatch(part) else (1, 0, part)
        for part in _DIGITS.split(name)
        if part
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the JSON report (shipped as mml_tool/schemas/report.schema.json)."""
    text = resources.files("mml_tool").joinpath("schemas/report.schema.json").read_text("utf-8")
    return dict(json.loads(text))


class FindingLike(Protocol):
    """What a report needs from ``mml_tool.policy.Finding`` (read-only attributes)."""

    @property
    def host(self) -> str: ...
    @property
    def control_id(self) -> str: ...
    @property
    def status(self) -> str: ...  # pass | fail | error | waived
    @property
    def expected(self) -> str: ...
    @property
    def actual(self) -> str | None: ...
    @property
    def evidence(self) -> str: ...
    @property
    def remediation(self) -> Sequence[str]: ...
    @property
    def rollback(self) -> Sequence[str]: ...
    @property
    def error(self) -> str | None: ...
    @property
    def waiver_reason(self) -> str | None: ...
    @property
    def before_bit_value(self) -> int | None: ...
    @property
    def title(self) -> str: ...
    @property
    def severity(self) -> str: ...
    def to_dict(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class RunInfo:
    """Who ran what, against what, with which policy, and when (times ISO 8601 UTC)."""

    command: str  # check | apply | rollback | run | verify
    tool_version: str
    policy_name: str
    policy_sha256: str
    change_id: str | None
    inventory: str | None
    started: str
    finished: str
    operator: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a run came to, in words and as the process exit code (the CLI contract)."""

    result: str  # compliant | done | passed | non-compliant | verification failed | ...
    exit_code: int
    message: str = ""


@dataclass
class Report:
    info: RunInfo
    findings: Sequence[FindingLike]
    changes: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    outcome: Outcome | None = None  # None: decided from what the report holds

    def ordered(self) -> list[FindingLike]:
        """Findings by host then control, so reports do not depend on thread timing."""
        return sorted(self.findings, key=lambda f: (natural_key(f.host), f.control_id))

    def ordered_changes(self) -> list[dict[str, Any]]:
        return sorted(self.changes, key=lambda c: natural_key(str(c.get("host") or "")))

    def decide(self) -> Outcome:
        """The outcome: given, or judged from findings, changes and verification together.

        Could not decide (1) wins over verification failed (101), over non-compliant (100);
        a report that holds nothing at all is never a success."""
        if self.outcome is not None:
            return self.outcome
        statuses = {f.status for f in self.findings}
        verdict = (self.verification or {}).get("status")
        failed_steps = [c for c in self.changes if _change_status(c) not in _CHANGE_OK]
        if not self.findings and not self.changes and self.verification is None:
            return Outcome("nothing checked", ExitCode.ERROR, "nothing was checked")
        if "error" in statuses or verdict == "error":
            return Outcome("not decided", ExitCode.ERROR)
        if failed_steps:
            return Outcome("incomplete", ExitCode.ERROR)
        if verdict == "fail":
            return Outcome("verification failed", ExitCode.VERIFY_FAILED)
        if "fail" in statuses:
            return Outcome("non-compliant", ExitCode.NONCOMPLIANT)
        done = {"check": "compliant", "verify": "passed"}.get(self.info.command, "done")
        return Outcome(done, ExitCode.OK)


def _change_status(change: Mapping[str, Any]) -> str:
    return str(change.get("status", change.get("outcome")) or "")


def gateway_results(verification: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The per-gateway VerifyResult dicts of a verification block (verify: one; run: many)."""
    if not verification:
        return []
    if isinstance(verification.get("gateways"), list):
        return [g for g in verification["gateways"] if isinstance(g, Mapping)]
    if "directions" in verification or "gateway" in verification:
        return [verification]
    return []


def exit_code_for(findings: Iterable[FindingLike]) -> int:
    """Process exit code for a set of findings.

    0: compliant (every finding passed or is waived); 1: could not decide for at least one
    (connection, auth, parse, RETCODE error) or nothing was evaluated at all; 100:
    non-compliant found and nothing errored.
    """
    statuses = {f.status for f in findings}
    if "error" in statuses or not statuses:
        return ExitCode.ERROR
    return ExitCode.NONCOMPLIANT if "fail" in statuses else ExitCode.OK


def summary(report: Report) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for f in report.findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    hosts = len({f.host for f in report.findings})
    return {**counts, "total": len(report.findings), "hosts": hosts}


def _result(f: FindingLike) -> dict[str, Any]:
    return {
        "host": f.host,
        "control": f.control_id,
        "title": f.title,
        "severity": f.severity,
        "status": f.status,
        "expected": f.expected,
        "actual": f.actual,
        "evidence": f.evidence,
        "remediation": list(f.remediation),
        "rollback": list(f.rollback),
        "error": f.error,
        "waiver_reason": f.waiver_reason,
        "notes": list(_notes(f)),
    }


def _notes(f: FindingLike) -> Sequence[str]:
    """Remarks on a finding (an expired waiver...); FindingLike stand-ins may have none."""
    notes = getattr(f, "notes", None) or ()
    return [str(n) for n in notes]


def _detail(f: FindingLike) -> str:
    """Why a row is what it is, in words: the error, the waiver, or a note."""
    parts = [f.error] if f.error else []
    if f.waiver_reason:
        parts.append(f"waived: {f.waiver_reason}")
    parts += _notes(f)
    return "; ".join(p for p in parts if p)


def _masked(value: Any) -> Any:
    """Every string inside, with password values masked: reports never carry a secret."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


def to_dict(report: Report) -> dict[str, Any]:
    i = report.info
    outcome = report.decide()
    data = {
        "schema_version": SCHEMA_VERSION,
        "outcome": {
            "result": outcome.result,
            "exit_code": int(outcome.exit_code),
            "message": outcome.message,
        },
        "run": {
            "tool_version": i.tool_version,
            "command": i.command,
            "policy": {"name": i.policy_name, "sha256": i.policy_sha256},
            "change_id": i.change_id,
            "inventory": i.inventory,
            "operator": i.operator,
            "started": i.started,
            "finished": i.finished,
        },
        "summary": summary(report),
        "results": [_result(f) for f in report.ordered()],
        "changes": report.ordered_changes(),
        "verification": report.verification,
        "warnings": list(report.warnings),
    }
    return dict(_masked(data))


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False, default=str) + "\n"


def _seconds(info: RunInfo) -> float:
    try:
        start = datetime.fromisoformat(info.started.replace("Z", "+00:00"))
        end = datetime.fromisoformat(info.finished.replace("Z", "+00:00"))
        return max((end - start).total_seconds(), 0.0)
    except (ValueError, TypeError):  # unparseable, or naive mixed with aware
        return 0.0


def _x(text: str | None) -> str:
    return _XML_BAD.sub("\ufffd", mask_text(text or ""))


def tls_verification(verification: Mapping[str, Any] | None) -> dict[str, bool]:
    """Gateway name -> whether its TLS certificate was verified, for each gateway result in a
    report's verification (``verify``: one VerifyResult dict; ``run``: one per gateway)."""
    return {
        str(v.get("gateway", "")): v["verify_tls"]
        for v in gateway_results(verification)
        if isinstance(v.get("verify_tls"), bool)
    }


def _tls_off_line(verification: Mapping[str, Any] | None) -> str | None:
    off = sorted(name for name, ok in tls_verification(verification).items() if not ok)
    if not off:
        return None
    return (
        f"- **TLS certificate verification OFF** for gateway {', '.join(off)} "
        "(`verify_tls: false`): anyone on the path could have read the session or forged the "
        "answers this verdict rests on"
    )


@dataclass(frozen=True)
class _Case:
    """One JUnit testcase: ``kind`` is pass, failure, error or skipped."""

    classname: str
    name: str
    kind: str = "pass"
    type: str = ""
    message: str = ""
    text: str = ""
    output: str = ""


def _finding_cases(report: Report) -> list[_Case]:
    cases = []
    for f in report.ordered():
        name, notes = f"{f.control_id}: {f.title}", "\n".join(_notes(f))
        if f.status == "fail":
            text = f"expected: {f.expected}\nactual: {f.actual}" + (f"\n{notes}" if notes else "")
            message = f"expected {f.expected}, actual {f.actual}"
            case = _Case(f.host, name, "failure", "non-compliant", message, text)
        elif f.status == "error":
            case = _Case(f.host, name, "error", "error", f.error or "error", f.error or "")
        elif f.status == "waived":
            case = _Case(f.host, name, "skipped", message=f"waived: {f.waiver_reason or ''}")
        else:
            case = _Case(f.host, name, text=notes)
        cases.append(replace(case, output=f.evidence))
    return cases


def _change_cases(report: Report) -> list[_Case]:
    cases = []
    for c in report.ordered_changes():
        status, error = _change_status(c), str(c.get("error") or "")
        action = c.get("action") or report.info.command
        name = f"{action} {c.get('control') or ''}".rstrip()
        if c.get("parameter") is not None:
            name += f": {c.get('parameter')} bit {c.get('bit')} -> {c.get('target')}"
        message = f"{status}: {error}" if error else status
        commands = "\n".join(_command_line(x) for x in c.get("commands") or [])
        if status in _CHANGE_OK:
            case = _Case(str(c.get("host")), name, output=commands)
        elif status == "skipped":
            case = _Case(str(c.get("host")), name, "skipped", message=message, output=commands)
        else:  # an unknown outcome could not be decided; the others did not happen
            kind = "error" if status == "unknown" else "failure"
            case = _Case(str(c.get("host")), name, kind, status, message, message, commands)
        cases.append(case)
    return cases


def _verification_cases(report: Report) -> list[_Case]:
    cases = []
    for g in gateway_results(report.verification):
        gateway = str(g.get("gateway") or "gateway")
        for d in g.get("directions") or []:
            name = f"videoDirection {d.get('direction')}"
            reason = str(d.get("reason") or "")
            if d.get("ok"):
                cases.append(_Case(gateway, name, text=reason))
            else:
                cases.append(_Case(gateway, name, "failure", "verification-failed", reason, reason))
        if g.get("error"):
            error = str(g["error"])
            cases.append(_Case(gateway, "verification", "error", "error", error, error))
    return cases


def _junit_cases(report: Report) -> list[_Case]:
    cases = _finding_cases(report) + _change_cases(report) + _verification_cases(report)
    if not cases:  # tests="0" reads as success to CI dashboards: nothing evaluated is an error
        message = report.decide().message or "nothing was checked"
        cases.append(_Case("mml-tool", "nothing evaluated", "error", "error", message, message))
    return cases


def to_junit(report: Report) -> str:
    """One testcase per (host, control) checked, per (host, step) applied or rolled back and
    per (gateway, direction) verified."""
    cases = _junit_cases(report)
    count = {kind: sum(c.kind == kind for c in cases) for kind in ("failure", "error", "skipped")}
    suite = ET.Element(
        "testsuite",
        name=f"mml-tool {report.info.command}",
        tests=str(len(cases)),
        failures=str(count["failure"]),
        errors=str(count["error"]),
        skipped=str(count["skipped"]),
        time=f"{_seconds(report.info):.3f}",
        timestamp=report.info.started,
    )
    tls = tls_verification(report.verification)
    if tls:  # <properties> comes before the test cases in the JUnit schema
        props = ET.SubElement(suite, "properties")
        for name, verified in sorted(tls.items()):
            value = "true" if verified else "false"
            ET.SubElement(props, "property", name=_x(f"gateway.{name}.verify_tls"), value=value)
    for c in cases:
        case = ET.SubElement(suite, "testcase", classname=_x(c.classname), name=_x(c.name))
        if c.kind == "skipped":
            ET.SubElement(case, "skipped", message=_x(c.message))
        elif c.kind != "pass":
            el = ET.SubElement(case, c.kind, message=_x(c.message), type=c.type)
            el.text = _x(c.text)
        if c.output:
            ET.SubElement(case, "system-out").text = _x(c.output)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|").replace("\n", "<br>")


def _row(*cells: object) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _fenced(text: str, lang: str = "text") -> str:
    # A fence longer than any backtick run inside, so evidence cannot close it early.
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _command_line(run: Any) -> str:
    """A command as given: text, or change.py's dict (command, outcome, retcode)."""
    if not isinstance(run, Mapping):
        return str(run)
    outcome = run.get("outcome", "")
    retcode = run.get("retcode")
    rc = f", RETCODE = {retcode}" if retcode is not None else ""
    return f"{run.get('command', '')}  -> {outcome}{rc}"


def _problems(report: Report) -> list[str]:
    """Every failure and error with its reason, as plain lines (ticket systems often do not
    render HTML, so nothing that explains a result may live only inside <details>)."""
    lines = []
    for f in report.ordered():
        if f.status == "fail":
            lines.append(f"{f.host} {f.control_id}: non-compliant: expected {f.expected}, "
                         f"actual {f.actual}")  # fmt: skip
        elif f.status == "error":
            lines.append(f"{f.host} {f.control_id}: not decided: {f.error or 'error'}")
    for c in report.ordered_changes():
        status = _change_status(c)
        if status not in _CHANGE_OK:
            error = f": {c.get('error')}" if c.get("error") else ""
            lines.append(f"{c.get('host')} {c.get('control') or ''}: {status}{error}")
    for g in gateway_results(report.verification):
        gateway = g.get("gateway") or "gateway"
        for d in g.get("directions") or []:
            if not d.get("ok"):
                lines.append(
                    f"gateway {gateway} videoDirection {d.get('direction')}: FAIL: "
                    f"{d.get('reason') or ''}"
                )
        if g.get("error"):
            lines.append(f"gateway {gateway}: could not verify: {g['error']}")
        if g.get("cleanup_error"):
            lines.append(f"gateway {gateway}: cleanup: {g['cleanup_error']}")
    return lines


def _counts_line(report: Report) -> str:
    """What the run covered, in one line, counting only what the report holds."""
    parts = []
    if report.findings:
        s = summary(report)
        parts.append(
            f"{s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['waived']} waived "
            f"({s['total']} checks on {s['hosts']} hosts)"
        )
    if report.changes:
        statuses = [_change_status(c) for c in report.changes]
        tally = ", ".join(f"{statuses.count(x)} {x}" for x in dict.fromkeys(statuses))
        parts.append(f"{len(statuses)} steps: {tally}")
    for g in gateway_results(report.verification):
        directions = g.get("directions") or []
        passed = sum(bool(d.get("ok")) for d in directions)
        parts.append(
            f"gateway {g.get('gateway')}: {passed} of {len(directions)} videoDirection(s) "
            f"passed ({g.get('status', '?')})"
        )
    return "; ".join(parts) or "nothing was evaluated"


def to_markdown(report: Report) -> str:
    i, outcome = report.info, report.decide()
    title = f"Change {i.change_id}" if i.change_id else "Compliance report"
    message = f": {outcome.message}" if outcome.message else ""
    out = [
        f"# {title}: mml-tool {i.command}",
        "",
        f"**Outcome: {outcome.result.upper()}** (exit code {int(outcome.exit_code)}){message}",
        "",
        "## Summary",
        "",
        f"- **Result:** {_counts_line(report)}",
    ]
    if i.policy_name:
        out.append(f"- **Policy:** {i.policy_name} (sha256 `{i.policy_sha256}`)")
    out += [
        f"- **When:** {i.started} to {i.finished}",
        f"- **Who:** {i.operator or 'unknown'}",
        f"- **Inventory:** {i.inventory or '-'}",
        f"- **Tool:** mml-tool {i.tool_version}",
    ]
    if report.warnings:
        out += ["", "## Warnings", ""] + [f"- {_cell(w)}" for w in report.warnings]
    problems = _problems(report)
    if problems:
        out += ["", "## Problems", ""] + [f"- {_cell(p)}" for p in problems]
    if report.findings:
        out += [
            "",
            "## Results",
            "",
            _row("host", "control", "status", "expected", "actual", "detail"),
            "|---|---|---|---|---|---|",
        ]
        out += [
            _row(f.host, f.control_id, f.status, f.expected, f.actual, _detail(f))
            for f in report.ordered()
        ]
    if report.changes:
        out += ["", "## Before / after", ""]
        out.append(_row("host", "control", "before", "after", "status", "error"))
        out.append("|---|---|---|---|---|---|")
        for c in report.ordered_changes():
            out.append(
                _row(
                    c.get("host"),
                    c.get("control"),
                    c.get("before"),
                    c.get("after"),
                    _change_status(c),
                    c.get("error"),
                )
            )
        out += ["", "## Commands run", ""]
        for c in report.ordered_changes():
            lines = [_command_line(x) for x in c.get("commands") or []]
            head = f"**{c.get('host', '?')}** {c.get('control') or ''}".rstrip()
            out += [head, "", _fenced("\n".join(lines) or "(none)"), ""]
    if report.verification is not None:
        out += ["", "## Verification", ""]
        tls_off = _tls_off_line(report.verification)
        if tls_off:
            out.append(tls_off)
        gateways = gateway_results(report.verification)
        if gateways:
            out += [_row("gateway", "videoDirection", "result", "reason"), "|---|---|---|---|"]
            for g in gateways:
                for d in g.get("directions") or []:
                    verdict = "pass" if d.get("ok") else "FAIL"
                    out.append(_row(g.get("gateway"), d.get("direction"), verdict, d.get("reason")))
            out.append("")
        for key, value in report.verification.items():
            if isinstance(value, (dict, list)):
                if key == "notes" and isinstance(value, list):
                    out += [f"- **note:** {_cell(note)}" for note in value]
                    continue
                dumped = json.dumps(value, indent=2, default=str)
                out += [f"<details><summary>{_cell(key)}</summary>", "", _fenced(dumped, "json")]
                out += ["", "</details>", ""]
            else:
                out.append(f"- **{_cell(key)}:** {_cell(value)}")
    evidence = [f for f in report.ordered() if f.evidence]
    if evidence:
        out += ["", "## Evidence", ""]
        for f in evidence:
            head = _cell(f"{f.host} {f.control_id} ({f.status})")
            out += [f"<details><summary>{head}</summary>", "", _fenced(f.evidence), ""]
            out += ["</details>", ""]
    return mask_text("\n".join(out).rstrip() + "\n")


def render_table(report: Report, console: Console) -> None:
    """Print the results as a table, one row per (host, control), coloured by status; errors,
    waivers and notes (an expired waiver) follow as whole lines, never wrapped, so a long
    device message never squeezes the table and a log grep finds it whole."""
    s = summary(report)
    title = f"mml-tool {report.info.command}: {report.info.policy_name}"
    caption = f"{s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['waived']} waived"
    columns = ("host", "control", "status", "expected", "actual")
    rows: list[tuple[Text, ...]] = []
    notes: list[Text] = []
    for f in report.ordered():
        style = _STYLES.get(f.status, "")
        # Text() rather than strings: device values must not be read as rich markup.
        rows.append(
            (
                Text(f.host),
                Text(f.control_id),
                Text(f.status, style=style),
                Text(mask_text(f.expected)),
                Text(mask_text(f.actual or "")),
            )
        )
        note = _detail(f)
        if note:
            notes.append(Text(f"{f.host} {f.control_id}: {mask_text(note)}", style=style))
    # A big fleet's table the cheap way (same output; see fasttable); small ones through rich.
    if report.findings and (
        len(rows) < FAST_TABLE_ROWS or not print_table(console, title, caption, columns, rows)
    ):
        table = Table(title=title, caption=caption)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in notes:
        console.print(line, soft_wrap=True)


RENDERERS: Mapping[str, Callable[[Report], str]] = {
    "json": to_json,
    "junit": to_junit,
    "md": to_markdown,
}


def parse_report_targets(spec: str) -> list[tuple[str, Path]]:
    """``json:PATH,junit:PATH,md:PATH`` -> [(format, path), ...]; PATH ``-`` is stdout.

    Strict, because it is checked before anything is sent and a typo must not cost a report
    after the change: no spaces, no empty item, a known format, each path once, and at most
    one report on stdout. Paths cannot contain ','."""
    accepted = ", ".join(RENDERERS)
    example = "(example: json:out/report.json,junit:out/junit.xml, or json:- for stdout)"
    if not spec:
        raise ConfigError(f"--report is empty; give FORMAT:PATH items with FORMAT in {accepted}")
    if any(c.isspace() for c in spec):
        raise ConfigError(
            f"--report {spec!r} holds a space; give FORMAT:PATH items separated by ',' only "
            + example
        )
    targets: list[tuple[str, Path]] = []
    for item in spec.split(","):
        fmt, sep, path = item.partition(":")
        if not item or not sep or fmt.lower() not in RENDERERS or not path:
            what = f"item {item!r}" if item else "an empty item (a stray ',')"
            raise ConfigError(
                f"--report {spec!r}: {what} is not FORMAT:PATH with FORMAT one of {accepted} "
                + example
            )
        target = Path(path).expanduser() if path != STDOUT else Path(STDOUT)
        if any(target == seen for _, seen in targets):
            where = "standard output" if path == STDOUT else path
            raise ConfigError(f"--report names {where} twice; give each format its own file")
        targets.append((fmt.lower(), target))
    return targets


def to_stdout(targets: Iterable[tuple[str, Path]]) -> bool:
    """Whether one of the targets is standard output (then nothing else may go there)."""
    return any(str(path) == STDOUT for _, path in targets)


def write_reports(report: Report, targets: Iterable[tuple[str, Path]]) -> None:
    """Render and write each target; a file is either complete or untouched, never partial."""
    for fmt, path in targets:
        text = RENDERERS[fmt](report)
        if str(path) == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
            continue
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the {fmt} report {path}: {exc.strerror or exc}; "
                "choose a writable path with --report"
            ) from exc
