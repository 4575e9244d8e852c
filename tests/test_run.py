"""`mml-tool run` and `mml-tool demo`: the whole change, proven end to end, on the lab."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import lab_in_env

from mml_tool.change import load_record
from mml_tool.cli import cli
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import Lab, make_nodes
from mml_tool.lab.uap import NodeConfig

SECRET = "S3cr3t-Run-Pass-7q"


@pytest.fixture
def run_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lab, Path]]:
    """A fresh lab per test (state changes), with credentials in the environment."""
    nodes = [*make_nodes(2, varied=True), NodeConfig("uap-3", params={"P978": 0}, layout="value")]
    with lab_in_env(nodes, tmp_path, monkeypatch, SECRET) as running:
        yield running


def bits(lab: Lab) -> dict[str, int | None]:
    return {node.name: node.store.get_bit("P978", 0) for node in lab.nodes}


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_run_changes_verifies_and_writes_the_evidence(
    run_lab: tuple[Lab, Path], tmp_path: Path
) -> None:
    lab, inventory = run_lab
    assert bits(lab) == {"uap-1": 1, "uap-2": 1, "uap-3": 0}
    code, output = invoke(
        "run",
        "-i",
        str(inventory),
        "--change-id",
        "CHG-1",
        "--yes",
        "--evidence",
        str(tmp_path / "ev"),
    )
    assert code == 0, output
    assert bits(lab) == {"uap-1": 0, "uap-2": 0, "uap-3": 0}
    bundle = tmp_path / "ev" / "CHG-1"
    names = {p.name for p in bundle.iterdir()}
    assert {"summary.md", "report.json", "plan.json", "apply-record.json", "transcripts"} <= names
    assert {"verify-gw-uap-1.json", "verify-gw-uap-2.json", "verify-gw-uap-3.json"} <= names
    report = json.loads((bundle / "report.json").read_text())
    assert report["schema_version"] == 1
    assert report["run"]["change_id"] == "CHG-1"
    assert report["verification"]["status"] == "pass"
    # The results are the state at the end of the change, read again after it.
    assert {r["host"]: r["status"] for r in report["results"]} == dict.fromkeys(bits(lab), "pass")
    changed = {c["host"]: c["status"] for c in report["changes"]}
    assert changed == {"uap-1": "changed", "uap-2": "changed"}
    verify = json.loads((bundle / "verify-gw-uap-1.json").read_text())
    assert [d["direction"] for d in verify["directions"]] == [1, 2]
    assert all(d["ok"] for d in verify["directions"])
    assert "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;" in (bundle / "summary.md").read_text()
    secrets = (SECRET, lab.agent_password.reveal())
    for path in [*bundle.rglob("*"), tmp_path / "audit.jsonl"]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not any(secret in text for secret in secrets), path
    assert not any(secret in output for secret in secrets)


def test_run_rolls_back_when_verification_fails(run_lab: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, inventory = run_lab
    assert lab.gateway is not None
    # The parameter will read right, but the feature still does not work: the run must undo.
    lab.gateway.one_way_video_ready = lambda host: False  # type: ignore[attr-defined]
    code, output = invoke(
        "--operator",
        "op-erin",
        "run",
        "-i",
        str(inventory),
        "--change-id",
        "CHG-2",
        "--yes",
        "--limit",
        "uap-1",
        "--evidence",
        str(tmp_path / "ev"),
    )
    assert code == 101, output
    assert bits(lab)["uap-1"] == 1  # restored
    record = json.loads((tmp_path / "ev" / "CHG-2" / "rollback-record.json").read_text())
    assert record["action"] == "rollback"
    assert [r["status"] for r in record["results"]] == ["changed"]
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    sent = [(a["action"], a["command"]) for a in audit if a["outcome"] == "ok"]
    assert sent == [
        ("apply", "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"),
        ("rollback", "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;"),
    ]
    # --operator reaches the plan, every audit record and the report.
    bundle = tmp_path / "ev" / "CHG-2"
    assert {a["operator"] for a in audit} == {"op-erin"}
    assert json.loads((bundle / "plan.json").read_text())["created_by"] == "op-erin"
    assert json.loads((bundle / "report.json").read_text())["run"]["operator"] == "op-erin"


def test_run_with_a_signing_key_signs_both_records_and_the_key_appears_nowhere(
    run_lab: tuple[Lab, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, inventory = run_lab
    key = "run-key-" + "5e" * 20
    monkeypatch.setenv("MML_PLAN_KEY", key)
    doc = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    doc["plan_signing_key"] = "${MML_PLAN_KEY}"
    signed = inventory.with_name("signed.yaml")
    signed.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    lab.gateway.one_way_video_ready = lambda host: False  # type: ignore[union-attr]
    code, output = invoke(
        "run", "-i", str(signed), "--change-id", "CHG-5", "--yes", "--limit", "uap-1",
        "--evidence", str(tmp_path / "ev"),
    )  # fmt: skip
    assert code == 101, output
    assert bits(lab)["uap-1"] == 1  # rolled back
    bundle = tmp_path / "ev" / "CHG-5"
    secret = load_inventory(signed).plan_signing_key
    for name in ("apply-record.json", "rollback-record.json"):
        assert load_record(bundle / name, signing_key=secret).change_id == "CHG-5"
    for path in [*bundle.rglob("*"), tmp_path / "audit.jsonl"]:
        if path.is_file():
            assert key not in path.read_text(encoding="utf-8"), path
    assert key not in output


def test_run_no_rollback_keeps_the_change(run_lab: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, inventory = run_lab
    lab.gateway.one_way_video_ready = lambda host: False  # type: ignore[union-attr]
    code, _ = invoke(
        "run",
        "-i",
        str(inventory),
        "--change-id",
        "CHG-3",
        "--yes",
        "--limit",
        "uap-2",
        "--no-rollback",
        "--evidence",
        str(tmp_path / "ev"),
    )
    assert code == 101
    assert bits(lab)["uap-2"] == 0
    assert not (tmp_path / "ev" / "CHG-3" / "rollback-record.json").exists()


def test_run_on_a_compliant_host_only_verifies(run_lab: tuple[Lab, Path], tmp_path: Path) -> None:
    _, inventory = run_lab
    code, output = invoke(
        "run",
        "-i",
        str(inventory),
        "--change-id",
        "CHG-4",
        "--limit",
        "uap-3",
        "--evidence",
        str(tmp_path / "ev"),
    )
    assert code == 0, output
    assert "nothing to change" in output
    assert not (tmp_path / "ev" / "CHG-4" / "apply-record.json").exists()
    assert not (tmp_path / "audit.jsonl").exists()


def test_run_without_approval_sends_nothing(run_lab: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, inventory = run_lab
    result = CliRunner().invoke(
        cli,
        [
            "run",
            "-i",
            str(inventory),
            "--change-id",
            "CHG-5",
            "--limit",
            "uap-1",
            "--evidence",
            str(tmp_path / "ev"),
        ],
        input="n\n",
    )
    assert result.exit_code != 0
    assert bits(lab)["uap-1"] == 1
    assert not (tmp_path / "audit.jsonl").exists()


def test_run_again_never_replaces_the_earlier_evidence(
    run_lab: tuple[Lab, Path], tmp_path: Path
) -> None:
    lab, inventory = run_lab
    args = ["run", "-i", str(inventory), "--change-id", "CHG-6", "--yes", "--limit", "uap-1"]
    args += ["--evidence", str(tmp_path / "ev")]
    code, output = invoke(*args)
    assert code == 0, output
    first = tmp_path / "ev" / "CHG-6"
    kept = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    assert first / "apply-record.json" in kept
    lab.node("uap-1").store.set_value("P978", 1)  # someone undid it by hand: run again
    code, output = invoke(*args)
    assert code == 0, output
    second = tmp_path / "ev" / "CHG-6.2"
    assert f"evidence: {second}" in output
    assert "holds an earlier run's evidence" in " ".join(output.split())
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == kept
    assert (second / "apply-record.json").is_file() and (second / "summary.md").is_file()


def test_verify_fails_before_and_passes_after_the_change(run_lab: tuple[Lab, Path]) -> None:
    lab, inventory = run_lab
    code, output = invoke("verify", "-i", str(inventory), "--gateway", "gw-uap-1")
    assert code == 101, output
    lab.node("uap-1").store.set_bit("P978", 0, 0)
    code, output = invoke("verify", "-i", str(inventory), "--gateway", "gw-uap-1")
    assert code == 0, output
    assert lab.gateway is not None
    assert lab.gateway.signed_in_agents() == []  # type: ignore[attr-defined]
    assert lab.gateway.active_calls() == {}  # type: ignore[attr-defined]


def test_verify_needs_a_gateway_choice_when_there_are_several(run_lab: tuple[Lab, Path]) -> None:
    _, inventory = run_lab
    code, output = invoke("verify", "-i", str(inventory))
    assert code == 2
    assert "--gateway" in output
    # --host picks the gateway that host names: uap-3 is compliant, so it passes.
    code, output = invoke("verify", "-i", str(inventory), "--host", "uap-3")
    assert code == 0, output
    code, output = invoke("verify", "-i", str(inventory), "--host", "uap-1")
    assert code == 101, output
    code, output = invoke("verify", "-i", str(inventory), "--host", "nope")
    assert code == 2


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    code, output = invoke("demo", "--workdir", str(tmp_path / "demo"))
    assert code == 0, output
    assert "before the change: verification fail; after: pass" in output
    assert (tmp_path / "demo" / "evidence" / "DEMO-0001" / "summary.md").is_file()
