"""`run` and `verify` under evidence and naming faults, on the lab.

- the evidence folder stops being writable after the change was sent: the failed verification
  is still rolled back, and stderr says what could not be written;
- a --change-id that would place evidence outside --evidence is a usage error (exit 2);
- a gateway reached with ``verify_tls: false`` is recorded as such in reports and evidence.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import lab_in_env

import mml_tool.workflow
from mml_tool.cli import cli
from mml_tool.errors import ConfigError
from mml_tool.lab.lab import Lab, make_nodes
from mml_tool.lab.uap import NodeConfig

SECRET = "S3cr3t-Evidence-Pass-9"


@pytest.fixture
def run_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lab, Path]]:
    """A fresh lab per test (state changes), with credentials in the environment."""
    nodes = [*make_nodes(1, varied=True), NodeConfig("uap-3", params={"P978": 0}, layout="value")]
    with lab_in_env(nodes, tmp_path, monkeypatch, SECRET) as running:
        yield running


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def p978(lab: Lab, host: str) -> int | None:
    return lab.node(host).store.get_bit("P978", 0)


def test_run_rolls_back_when_the_evidence_cannot_be_written(
    run_lab: tuple[Lab, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, inventory = run_lab
    assert lab.gateway is not None
    lab.gateway.one_way_video_ready = lambda host: False  # type: ignore[attr-defined]
    bundle = tmp_path / "ev" / "CHG-EV"
    real_verify = mml_tool.workflow.verify_gateway

    def verify_after_losing_the_folder(*args: Any, **kwargs: Any) -> Any:
        # The change was sent; now the evidence folder goes away under the run (a share
        # unmounted, a cleanup job): a regular file where the folder was fails every write,
        # even as root, where a read-only folder would not.
        if bundle.is_dir():
            shutil.rmtree(bundle)
            bundle.write_text("not a folder\n", encoding="utf-8")
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(mml_tool.workflow, "verify_gateway", verify_after_losing_the_folder)
    result = invoke(
        "run",
        "-i",
        str(inventory),
        "--change-id",
        "CHG-EV",
        "--yes",
        "--limit",
        "uap-1",
        "--evidence",
        str(tmp_path / "ev"),
    )
    assert result.exit_code == 101, result.output
    assert p978(lab, "uap-1") == 1  # restored although no evidence could be written
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["outcome"]) for a in audit if a["outcome"] == "ok"] == [
        ("apply", "ok"),
        ("rollback", "ok"),
    ]
    stderr = result.stderr
    assert "EVIDENCE NOT WRITTEN" in stderr
    assert "verify-gw-uap-1.json" in stderr and "rollback-record.json" in stderr
    assert "the change was rolled back" in stderr
    assert "Traceback" not in result.output


def test_run_that_cannot_write_its_plan_sends_nothing(
    run_lab: tuple[Lab, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, inventory = run_lab
    real_save_plan = mml_tool.workflow.save_plan

    def save_plan_into_a_folder(plan: Any, path: Path, **kwargs: Any) -> str:
        # A folder where the plan must go, made in the run's own (new) evidence folder: an
        # earlier bundle would be kept and this run's written beside it.
        path.mkdir()
        return real_save_plan(plan, path, **kwargs)

    monkeypatch.setattr(mml_tool.workflow, "save_plan", save_plan_into_a_folder)
    result = invoke(
        "run",
        "-i",
        str(inventory),
        "--change-id",
        "CHG-NP",
        "--yes",
        "--limit",
        "uap-1",
        "--evidence",
        str(tmp_path / "ev"),
    )
    assert result.exit_code == 1, result.output
    assert p978(lab, "uap-1") == 1
    assert not (tmp_path / "audit.jsonl").exists()
    assert "plan.json" in result.stderr and "nothing was sent" in result.stderr


@pytest.mark.parametrize(
    "change_id",
    ["../x", "../../etc", "ABSOLUTE", "a/b", "a\\b", "..", ".", "", "x\x00y", "-x", "a\nb"],
)
def test_change_id_cannot_leave_the_evidence_folder(
    lab_inventory_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change_id: str
) -> None:
    monkeypatch.setenv("MML_TOOL_AUDIT", str(tmp_path / "audit.jsonl"))
    if change_id == "ABSOLUTE":
        change_id = str(tmp_path / "abs")
    root = tmp_path / "deep" / "ev"
    result = invoke(
        "run",
        "-i",
        str(lab_inventory_path),
        "--change-id",
        change_id,
        "--yes",
        "--evidence",
        str(root),
    )
    assert result.exit_code == 2, result.output
    assert "--change-id" in result.output
    assert not (tmp_path / "deep").exists()  # nothing written anywhere
    assert not (tmp_path / "x").exists() and not (tmp_path / "abs").exists()
    assert not (tmp_path / "audit.jsonl").exists()


def test_change_id_of_plan_is_checked_too(lab_inventory_path: Path, tmp_path: Path) -> None:
    result = invoke(
        "plan", "-i", str(lab_inventory_path), "--change-id", "../x", "-o", str(tmp_path / "p")
    )
    assert result.exit_code == 2
    assert not (tmp_path / "p").exists()


def test_evidence_folder_refuses_a_bad_change_id_from_python() -> None:
    from mml_tool.change_id import evidence_folder

    assert evidence_folder(Path("ev"), "CHG-42_b.1") == Path("ev") / "CHG-42_b.1"
    with pytest.raises(ConfigError, match="change ID"):
        evidence_folder(Path("ev"), "../x")


def _insecure_inventory(inventory: Path) -> Path:
    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    for gateway in doc["gateways"].values():
        gateway.pop("ca_bundle", None)
        gateway["verify_tls"] = False
    path = inventory.with_name("insecure.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.filterwarnings("ignore:TLS certificate verification is OFF")
def test_verify_tls_false_is_recorded_in_every_report(
    run_lab: tuple[Lab, Path], tmp_path: Path
) -> None:
    _, inventory = run_lab
    insecure = _insecure_inventory(inventory)
    out = tmp_path / "out"
    result = invoke(
        "verify",
        "-i",
        str(insecure),
        "--host",
        "uap-3",
        "--report",
        f"json:{out}/r.json,md:{out}/r.md,junit:{out}/r.xml",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "r.json").read_text())
    assert report["verification"]["verify_tls"] is False
    markdown = (out / "r.md").read_text()
    assert "TLS certificate verification OFF" in markdown and "gw-uap-3" in markdown
    suite = ET.parse(out / "r.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["gateway.gw-uap-3.verify_tls"] == "false"
    # The verified (default) case says so too.
    result = invoke(
        "verify", "-i", str(inventory), "--host", "uap-3", "--report", f"json:{out}/ok.json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "ok.json").read_text())["verification"]["verify_tls"] is True


@pytest.mark.filterwarnings("ignore:TLS certificate verification is OFF")
def test_verify_tls_false_is_recorded_in_the_run_evidence(
    run_lab: tuple[Lab, Path], tmp_path: Path
) -> None:
    _, inventory = run_lab
    insecure = _insecure_inventory(inventory)
    result = invoke(
        "run",
        "-i",
        str(insecure),
        "--change-id",
        "CHG-TLS",
        "--yes",
        "--limit",
        "uap-3",
        "--evidence",
        str(tmp_path / "ev"),
    )
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "ev" / "CHG-TLS"
    assert json.loads((bundle / "verify-gw-uap-3.json").read_text())["verify_tls"] is False
    report = json.loads((bundle / "report.json").read_text())
    (gateway,) = report["verification"]["gateways"]
    assert gateway["gateway"] == "gw-uap-3" and gateway["verify_tls"] is False
    assert "TLS certificate verification OFF" in (bundle / "summary.md").read_text()
