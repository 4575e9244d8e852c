"""Reports from a run: JSON (stable schema), JUnit XML, Markdown for a change ticket, terminal.

The JSON layout is documented in docs/report-schema.md; within one ``schema_version`` fields
are only ever added, never renamed or removed.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mml_tool.atomic import write_text_atomic
from mml_tool.errors import ConfigError
from mml_tool.exitcodes import ExitCode
from mml_tool.mml.command import mask_text

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "error", "waived")
_STYLES = {"pass": "green", "fail": "bold red", "error": "bold magenta", "waived": "yellow"}
# Characters XML 1.0 cannot carry at all (device replies may hold control bytes).
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


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


@dataclass
class Report:
    info: RunInfo
    findings: Sequence[FindingLike]
    changes: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] | None = None

    def ordered(self) -> list[FindingLike]:
        """Findings by host then control, so reports do not depend on thread timing."""
        return sorted(self.findings, key=lambda f: (f.host, f.control_id))


def exit_code_for(findings: Iterable[FindingLike]) -> int:
    """Process exit code for a set of findings.

    0: compliant (every finding passed or is waived); 1: could not decide for at least one
    (connection, auth, parse, RETCODE error); 100: non-compliant found and nothing errored.
    """
    statuses = {f.status for f in findings}
    if "error" in statuses:
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
    }


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
    data = {
        "schema_version": SCHEMA_VERSION,
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
        "changes": report.changes,
        "verification": report.verification,
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
    if not verification:
        return {}
    found = [verification, *(v for v in verification.values() if isinstance(v, Mapping))]
    return {
        str(v.get("gateway", "")): v["verify_tls"]
        for v in found
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


def to_junit(report: Report) -> str:
    s = summary(report)
    suite = ET.Element(
        "testsuite",
        name="mml-tool check",
        tests=str(s["total"]),
        failures=str(s["fail"]),
        errors=str(s["error"]),
        skipped=str(s["waived"]),
        time=f"{_seconds(report.info):.3f}",
        timestamp=report.info.started,
    )
    tls = tls_verification(report.verification)
    if tls:  # <properties> comes before the test cases in the JUnit schema
        props = ET.SubElement(suite, "properties")
        for name, verified in sorted(tls.items()):
            value = "true" if verified else "false"
            ET.SubElement(props, "property", name=_x(f"gateway.{name}.verify_tls"), value=value)
    for f in report.ordered():
        case = ET.SubElement(
            suite, "testcase", classname=_x(f.host), name=_x(f"{f.control_id}: {f.title}")
        )
        if f.status == "fail":
            message = f"expected {f.expected}, actual {f.actual}"
            el = ET.SubElement(case, "failure", message=_x(message), type="non-compliant")
            el.text = _x(f"expected: {f.expected}\nactual: {f.actual}")
        elif f.status == "error":
            el = ET.SubElement(case, "error", message=_x(f.error or "error"), type="error")
            el.text = _x(f.error)
        elif f.status == "waived":
            ET.SubElement(case, "skipped", message=_x(f"waived: {f.waiver_reason or ''}"))
        if f.evidence:
            ET.SubElement(case, "system-out").text = _x(f.evidence)
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


def to_markdown(report: Report) -> str:
    i, s = report.info, summary(report)
    title = f"Change {i.change_id}" if i.change_id else "Compliance report"
    out = [
        f"# {title}: mml-tool {i.command}",
        "",
        "## Summary",
        "",
        f"- **Result:** {s['pass']} pass, {s['fail']} fail, {s['error']} error, "
        f"{s['waived']} waived ({s['total']} checks on {s['hosts']} hosts)",
        f"- **Policy:** {i.policy_name} (sha256 `{i.policy_sha256}`)",
        f"- **When:** {i.started} to {i.finished}",
        f"- **Who:** {i.operator or 'unknown'}",
        f"- **Inventory:** {i.inventory or '-'}",
        f"- **Tool:** mml-tool {i.tool_version}",
        "",
        "## Results",
        "",
        _row("host", "control", "status", "expected", "actual"),
        "|---|---|---|---|---|",
    ]
    out += [_row(f.host, f.control_id, f.status, f.expected, f.actual) for f in report.ordered()]
    if report.changes:
        out += ["", "## Before / after", "", _row("host", "control", "before", "after", "status")]
        out.append("|---|---|---|---|---|")
        for c in report.changes:
            status = c.get("status", c.get("outcome"))
            out.append(
                _row(c.get("host"), c.get("control"), c.get("before"), c.get("after"), status)
            )
        out += ["", "## Commands run", ""]
        for c in report.changes:
            lines = [_command_line(x) for x in c.get("commands") or []]
            head = f"**{c.get('host', '?')}** {c.get('control') or ''}".rstrip()
            out += [head, "", _fenced("\n".join(lines) or "(none)"), ""]
    if report.verification is not None:
        out += ["", "## Verification", ""]
        tls_off = _tls_off_line(report.verification)
        if tls_off:
            out.append(tls_off)
        for key, value in report.verification.items():
            if isinstance(value, (dict, list)):
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
    """Print the results as a table, one row per (host, control), coloured by status; errors
    and waivers follow as whole lines so a long device message never squeezes the table."""
    s = summary(report)
    table = Table(
        title=f"mml-tool {report.info.command}: {report.info.policy_name}",
        caption=f"{s['pass']} pass, {s['fail']} fail, {s['error']} error, {s['waived']} waived",
    )
    for column in ("host", "control", "status", "expected", "actual"):
        table.add_column(column, overflow="fold")
    notes: list[Text] = []
    for f in report.ordered():
        style = _STYLES.get(f.status, "")
        # Text() rather than strings: device values must not be read as rich markup.
        table.add_row(
            Text(f.host),
            Text(f.control_id),
            Text(f.status, style=style),
            Text(mask_text(f.expected)),
            Text(mask_text(f.actual or "")),
        )
        note = f.error or (f"waived: {f.waiver_reason}" if f.waiver_reason else "")
        if note:
            notes.append(Text(f"{f.host} {f.control_id}: {mask_text(note)}", style=style))
    console.print(table)
    for line in notes:
        console.print(line)


RENDERERS: Mapping[str, Callable[[Report], str]] = {
    "json": to_json,
    "junit": to_junit,
    "md": to_markdown,
}


def parse_report_targets(spec: str) -> list[tuple[str, Path]]:
    """``json:PATH,junit:PATH,md:PATH`` -> [(format, path), ...]. Paths cannot contain ','."""
    accepted = ", ".join(RENDERERS)
    targets: list[tuple[str, Path]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue  # a stray comma is harmless
        fmt, sep, path = item.partition(":")
        fmt, path = fmt.strip().lower(), path.strip()
        if not sep or fmt not in RENDERERS or not path:
            raise ConfigError(
                f"--report item {item!r} is not FORMAT:PATH with FORMAT one of {accepted} "
                "(example: json:out/report.json,junit:out/junit.xml)"
            )
        target = Path(path).expanduser()
        if any(target == seen for _, seen in targets):
            raise ConfigError(f"--report names {path} twice; give each format its own file")
        targets.append((fmt, target))
    if not targets:
        raise ConfigError(f"--report is empty; give FORMAT:PATH items with FORMAT in {accepted}")
    return targets


def write_reports(report: Report, targets: Iterable[tuple[str, Path]]) -> None:
    """Render and write each target; a file is either complete or untouched, never partial."""
    for fmt, path in targets:
        text = RENDERERS[fmt](report)
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the {fmt} report {path}: {exc.strerror or exc}; "
                "choose a writable path with --report"
            ) from exc
