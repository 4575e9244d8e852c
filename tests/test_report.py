from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mml_tool import report as rpt
from mml_tool.errors import ConfigError
from mml_tool.policy import Finding
from mml_tool.report import (
    Report,
    RunInfo,
    exit_code_for,
    parse_report_targets,
    render_table,
    to_dict,
    to_junit,
    to_markdown,
    write_reports,
)
from mml_tool.results import FindingStatus


def F(host: str, control_id: str, status: str, **kw: Any) -> Finding:
    """A finding as policy evaluation makes it, with defaults for what a test leaves out."""
    fields: dict[str, Any] = {
        "expected": "bit 0 = 0",
        "actual": "bit 0 = 0",
        "evidence": "",
        "remediation": [],
        "rollback": [],
        "error": None,
        "waiver_reason": None,
        "before_bit_value": None,
        "title": "One-way video enabled",
        "severity": "high",
    }
    return Finding(host, control_id, FindingStatus(status), **{**fields, **kw})


INFO = RunInfo(
    command="check",
    tool_version="0.1.0",
    policy_name="builtin-p978",
    policy_sha256="ab" * 32,
    change_id="CHG-42",
    inventory="inventories/lab.yaml",
    started="2024-05-01T10:00:00Z",
    finished="2024-05-01T10:00:02.500Z",
    operator="alice",
)

FINDINGS: list[Finding] = [
    F("uap-2", "P978-VIDEO", "fail", actual="bit 0 = 1", evidence="P978 = 1 | raw <x>",
      remediation=["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"],
      rollback=["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"], before_bit_value=1),
    F("uap-1", "P978-VIDEO", "pass", evidence="RETCODE = 0\n```\nP978 = 0"),
    F("uap-3", "P978-VIDEO", "error", actual=None, error="connection refused\x1b[0m"),
    F("uap-4", "P978-VIDEO", "waived", waiver_reason="lab node, see CHG-7"),
]  # fmt: skip


def make(**kw: Any) -> Report:
    return Report(INFO, list(FINDINGS), **kw)


def test_json_schema() -> None:
    data = json.loads(rpt.to_json(make(changes=[{"host": "uap-2"}], verification={"ok": True})))
    assert data["schema_version"] == 1
    assert set(data) == {
        "schema_version", "outcome", "run", "summary", "results", "changes", "verification",
        "warnings", "since_last",
    }  # fmt: skip
    assert data["outcome"] == {"result": "not decided", "exit_code": 1, "message": ""}
    assert data["since_last"] is None  # added within schema_version 1: only the history sets it
    assert data["run"] == {
        "tool_version": "0.1.0",
        "command": "check",
        "policy": {"name": "builtin-p978", "sha256": "ab" * 32},
        "change_id": "CHG-42",
        "inventory": "inventories/lab.yaml",
        "operator": "alice",
        "started": "2024-05-01T10:00:00Z",
        "finished": "2024-05-01T10:00:02.500Z",
    }
    assert data["summary"] == {
        "pass": 1,
        "fail": 1,
        "error": 1,
        "waived": 1,
        "total": 4,
        "hosts": 4,
    }
    assert [r["host"] for r in data["results"]] == ["uap-1", "uap-2", "uap-3", "uap-4"]
    fail = data["results"][1]
    assert set(fail) == {
        "host", "control", "title", "severity", "status", "expected", "actual", "evidence",
        "remediation", "rollback", "error", "waiver_reason", "notes",
    }  # fmt: skip
    assert fail["status"] == "fail" and fail["actual"] == "bit 0 = 1"
    assert fail["remediation"] == ["MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"]
    assert data["results"][3]["waiver_reason"] == "lab node, see CHG-7"
    assert data["changes"] == [{"host": "uap-2"}] and data["verification"] == {"ok": True}


def test_json_without_changes_or_verification() -> None:
    data = to_dict(Report(INFO, []))
    assert data["changes"] == [] and data["verification"] is None
    assert data["summary"]["total"] == 0 and data["summary"]["hosts"] == 0


def test_junit() -> None:
    root = ET.fromstring(to_junit(make()))
    assert root.tag == "testsuite" and root.get("name") == "mml-tool check"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "4", "1", "1", "1",
    )  # fmt: skip
    assert root.get("time") == "2.500"
    cases = root.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        (f"uap-{n}", "P978-VIDEO: One-way video enabled") for n in (1, 2, 3, 4)
    ]
    ok, fail, err, waived = cases
    assert ok.find("failure") is None and ok.find("error") is None
    failure = fail.find("failure")
    assert failure is not None and fail.find("error") is None
    assert failure.get("type") == "non-compliant"
    assert "bit 0 = 1" in (failure.get("message") or "") and "expected" in (failure.text or "")
    error = err.find("error")
    assert error is not None and err.find("failure") is None
    assert "connection refused" in (error.get("message") or "")  # control byte replaced
    skipped = waived.find("skipped")
    assert skipped is not None and skipped.get("message") == "waived: lab node, see CHG-7"
    # "<x>" and "|" in evidence survive escaping.
    assert "raw <x>" in (fail.findtext("system-out") or "")


def test_markdown() -> None:
    changes = [
        {"host": "uap-2", "control": "P978-VIDEO", "before": 1, "after": 0, "status": "changed",
         "commands": [{"command": "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;",
                       "retcode": 0, "message": "", "elapsed": 0.1, "outcome": "ok"}]},
        {"host": "uap-3", "before": "1", "after": "1", "outcome": "failed",
         "commands": ["MOD SFP: ID=P978;"]},
    ]  # fmt: skip
    md = to_markdown(make(changes=changes, verification={"verdict": "pass", "calls": [1, 2]}))
    assert md.startswith(
        "# Change CHG-42: mml-tool check\n\n**Outcome: NOT DECIDED** (exit code 1)"
    )
    assert "| host | control | status | expected | actual |" in md
    assert "| uap-2 | P978-VIDEO | fail | bit 0 = 0 | bit 0 = 1 |" in md
    assert "builtin-p978" in md and "alice" in md and "1 pass, 1 fail, 1 error, 1 waived" in md
    assert "## Before / after" in md and "| uap-2 | P978-VIDEO | 1 | 0 | changed |" in md
    assert "| uap-3 |  | 1 | 1 | failed |" in md
    assert "## Commands run" in md and "BITVAL=0;  -> ok, RETCODE = 0" in md
    assert "MOD SFP: ID=P978;\n" in md
    assert "## Verification" in md and "**verdict:** pass" in md
    assert "<details><summary>uap-2 P978-VIDEO (fail)</summary>" in md
    # Evidence with a ``` run still sits in one block: the fence is longer.
    assert "````text\nRETCODE = 0\n```\nP978 = 0\n````" in md


def test_markdown_escapes_pipe_in_cells() -> None:
    md = to_markdown(Report(INFO, [F("uap-1", "C1", "fail", actual="a|b\nc")]))
    assert "| uap-1 | C1 | fail | bit 0 = 0 | a\\|b<br>c |" in md


def test_markdown_without_changes_has_no_change_sections() -> None:
    md = to_markdown(Report(replace_info(change_id=None), list(FINDINGS)))
    assert md.startswith("# Compliance report")
    assert "Before / after" not in md and "Verification" not in md


def replace_info(**kw: Any) -> RunInfo:
    return RunInfo(**{**asdict(INFO), **kw})


def test_render_table() -> None:
    out = io.StringIO()
    render_table(make(), Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    for word in ("uap-1", "uap-4", "fail", "waived: lab node", "connection refused"):
        assert word in text


def test_parse_report_targets(tmp_path: Path) -> None:
    spec = f"json:{tmp_path}/r.json,junit:{tmp_path}/j.xml,md:-"
    assert parse_report_targets(spec) == [
        ("json", tmp_path / "r.json"),
        ("junit", tmp_path / "j.xml"),
        ("md", Path("-")),
    ]


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        ("html:out.html", "html:out.html"),
        ("json", "'json'"),
        ("json:", "'json:'"),
        ("", "empty"),
        ("json:a.json, md:b.md", "space"),
        ("json:a.json,", "stray"),
        ("json:a.json,,md:b.md", "stray"),
    ],
)
def test_parse_report_targets_errors(spec: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=bad) as info:
        parse_report_targets(spec)
    assert "json, junit, md" in str(info.value) or "FORMAT:PATH" in str(info.value)


def test_parse_report_targets_same_path_twice() -> None:
    with pytest.raises(ConfigError, match="twice"):
        parse_report_targets("json:a.out,md:a.out")
    with pytest.raises(ConfigError, match="standard output twice"):
        parse_report_targets("json:-,md:-")


def test_write_reports(tmp_path: Path) -> None:
    targets = parse_report_targets(f"json:{tmp_path}/a/r.json,junit:{tmp_path}/b/j.xml,md:t.md")
    targets[2] = ("md", tmp_path / "t.md")
    write_reports(make(), targets)
    assert json.loads((tmp_path / "a/r.json").read_text())["schema_version"] == 1
    ET.parse(tmp_path / "b/j.xml")
    assert (tmp_path / "t.md").read_text().startswith("# Change")
    assert oct((tmp_path / "t.md").stat().st_mode & 0o777) == oct(0o644)
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no temp files left


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    target.write_text("old report\n")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ConfigError, match=r"r\.json.*No space left"):
        write_reports(make(), [("json", target)])
    assert target.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_write_failure_mid_write_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.md"
    target.write_text("old\n")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ConfigError, match="Input/output error"):
        write_reports(make(), [("md", target)])
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        ([], 1),  # nothing evaluated is never compliant
        (["pass"], 0),
        (["pass", "waived"], 0),
        (["pass", "fail", "waived"], 100),
        (["fail", "error"], 1),
        (["error"], 1),
    ],
)
def test_exit_code_for(statuses: list[str], code: int) -> None:
    assert exit_code_for([F(f"h{i}", "C", s) for i, s in enumerate(statuses)]) == code


def test_secrets_never_reach_any_format() -> None:
    leaky = F(
        "uap-1", "C1", "error", evidence='LGI:OP="a",PWD="Xyz-secret";', error="PWD=Xyz-secret"
    )
    report = Report(INFO, [leaky], changes=[{"host": "uap-1", "commands": ['PWD="Xyz-secret"']}])
    out = io.StringIO()
    render_table(report, Console(file=out, width=200))
    for text in (rpt.to_json(report), to_junit(report), to_markdown(report), out.getvalue()):
        assert "Xyz-secret" not in text
        assert "*****" in text
