"""The Markdown report, made to paste into a change ticket: the outcome first, then why."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from mml_tool.mml.command import mask_text
from mml_tool.report.model import (
    _CHANGE_OK,
    Report,
    _change_status,
    _detail,
    _tls_off_line,
    gateway_results,
    summary,
)
from mml_tool.results import exit_code_for as exit_code_for  # decided in results


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
    return [*_finding_problems(report), *_change_problems(report), *_gateway_problems(report)]


def _finding_problems(report: Report) -> Iterator[str]:
    for f in report.ordered():
        if f.status == "fail":
            yield (f"{f.host} {f.control_id}: non-compliant: expected {f.expected}, "
                   f"actual {f.actual}")  # fmt: skip
        elif f.status == "error":
            yield f"{f.host} {f.control_id}: not decided: {f.error or 'error'}"


def _change_problems(report: Report) -> Iterator[str]:
    for c in report.ordered_changes():
        status = _change_status(c)
        if status not in _CHANGE_OK:
            error = f": {c.get('error')}" if c.get("error") else ""
            yield f"{c.get('host')} {c.get('control') or ''}: {status}{error}"


def _gateway_problems(report: Report) -> Iterator[str]:
    for g in gateway_results(report.verification):
        gateway = g.get("gateway") or "gateway"
        for d in g.get("directions") or []:
            if not d.get("ok"):
                yield (
                    f"gateway {gateway} videoDirection {d.get('direction')}: FAIL: "
                    f"{d.get('reason') or ''}"
                )
        if g.get("error"):
            yield f"gateway {gateway}: could not verify: {g['error']}"
        if g.get("cleanup_error"):
            yield f"gateway {gateway}: cleanup: {g['cleanup_error']}"


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
    out = _header(report)
    if report.warnings:
        out += ["", "## Warnings", ""] + [f"- {_cell(w)}" for w in report.warnings]
    problems = _problems(report)
    if problems:
        out += ["", "## Problems", ""] + [f"- {_cell(p)}" for p in problems]
    if report.findings:
        out += _results(report)
    out += _since_last(report)
    if report.changes:
        out += _changes(report)
    if report.verification is not None:
        out += _verification(report.verification)
    out += _evidence(report)
    return mask_text("\n".join(out).rstrip() + "\n")


def _since_last(report: Report) -> list[str]:
    """What changed since the previous run in the history (`check`); [] without one."""
    if not report.since_last or report.since_last.get("previous_run") is None:
        return []
    from mml_tool.history.hooks import since_last_lines

    head, *items = since_last_lines(report.since_last)
    out = ["", "## Since the last run", "", _cell(head), ""]
    return out + ([f"- {_cell(line.strip())}" for line in items] or ["- nothing changed"])


def _header(report: Report) -> list[str]:
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
    return out


def _results(report: Report) -> list[str]:
    out = [
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
    return out


def _changes(report: Report) -> list[str]:
    out = ["", "## Before / after", ""]
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
    return out


def _verification(verification: dict[str, Any]) -> list[str]:
    out = ["", "## Verification", ""]
    tls_off = _tls_off_line(verification)
    if tls_off:
        out.append(tls_off)
    gateways = gateway_results(verification)
    if gateways:
        out += [_row("gateway", "videoDirection", "result", "reason"), "|---|---|---|---|"]
        for g in gateways:
            for d in g.get("directions") or []:
                verdict = "pass" if d.get("ok") else "FAIL"
                out.append(_row(g.get("gateway"), d.get("direction"), verdict, d.get("reason")))
        out.append("")
    for key, value in verification.items():
        if isinstance(value, (dict, list)):
            if key == "notes" and isinstance(value, list):
                out += [f"- **note:** {_cell(note)}" for note in value]
                continue
            dumped = json.dumps(value, indent=2, default=str)
            out += [f"<details><summary>{_cell(key)}</summary>", "", _fenced(dumped, "json")]
            out += ["", "</details>", ""]
        else:
            out.append(f"- **{_cell(key)}:** {_cell(value)}")
    return out


def _evidence(report: Report) -> list[str]:
    evidence = [f for f in report.ordered() if f.evidence]
    if not evidence:
        return []
    out = ["", "## Evidence", ""]
    for f in evidence:
        head = _cell(f"{f.host} {f.control_id} ({f.status})")
        out += [f"<details><summary>{head}</summary>", "", _fenced(f.evidence), ""]
        out += ["</details>", ""]
    return out
