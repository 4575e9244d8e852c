"""The JUnit XML report: one testcase per (host, control), (host, step), (gateway, direction)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

from mml_tool.mml.command import mask_text
from mml_tool.report.markdown import _command_line
from mml_tool.report.model import (
    _CHANGE_OK,
    Report,
    _change_status,
    _notes,
    _seconds,
    gateway_results,
    tls_verification,
)
from mml_tool.results import exit_code_for as exit_code_for  # decided in results

# Characters XML 1.0 cannot carry at all (device replies may hold control bytes).
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str | None) -> str:
    return _XML_BAD.sub("\ufffd", mask_text(text or ""))


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
