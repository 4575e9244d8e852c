"""Baseline and drift (``mml-tool snapshot`` / ``mml-tool diff``, ``mml_tool.baseline``) on a
lab whose nodes differ in known parameters (LAB.yaml, per node), with paged ``LST SFP:;`` in
English and Chinese, a host that cannot be read, every report format, bad snapshot files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import invoke, write_lab_inventory
from hypothesis import given
from hypothesis import strategies as st

import mml_tool as mt
from mml_tool.baseline import (
    SNAPSHOT_KIND,
    Difference,
    DiffKind,
    bits_of,
    compare,
    parameters_from_records,
)
from mml_tool.errors import ConfigError, ParseError
from mml_tool.lab.config import load_lab_config
from mml_tool.lab.lab import PASSWORD_ENV, Lab
from mml_tool.lab.uap import default_params

PASSWORD = "Drift-pw_0123"
# Nodes as LAB.yaml gives them: 42 parameters on pages of 8 (6 pages per LST SFP:;).
LAB = {
    "defaults": {"page_size": 8},
    "nodes": {
        "gold": {"layout": "table"},
        "same-zh": {"layout": "vertical", "language": "zh", "paging": "zh"},
        "same-bare": {
            "layout": "value",
            "language": "zh",
            "paging": "zh-bare",
            "encoding": "gb18030",
        },
        # P978 = 0 (bit 0 differs), P017 = 101 (100 = 0b1100100 -> bits 0 differs)
        "drift-a": {"layout": "value", "params": {"P978": 0, "P017": 101}},
        # P005 = 2 (0 -> bit 1 differs), P050 on top (extra)
        "drift-b": {"language": "zh", "paging": "zh", "params": {"P005": 2, "P050": 3}},
        # P010 is missing
        "missing": {
            "replace_params": True,
            "params": {k: v for k, v in default_params().items() if k != "P010"},
        },
        "dead": {"faults": {"login_refused": True}},
    },
}
MATCHING = ("gold", "same-zh", "same-bare")
EXPECTED = {
    ("drift-a", "P017", DiffKind.DIFFERS, 0, 0, 1),
    ("drift-a", "P978", DiffKind.DIFFERS, 0, 1, 0),
    ("drift-b", "P005", DiffKind.DIFFERS, 1, 0, 1),
    ("drift-b", "P050", DiffKind.EXTRA, None, None, 3),
    ("missing", "P010", DiffKind.MISSING, None, default_params()["P010"], None),
}
READABLE = ",".join(n for n in LAB["nodes"] if n != "dead")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("drift-lab")
    config = workdir / "LAB.yaml"
    config.write_text(yaml.safe_dump(LAB), encoding="utf-8")
    with Lab(load_lab_config(config), workdir=workdir, password=PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=3, connect_timeout=3)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture(scope="module")
def golden(lab: Lab, inventory: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("golden") / "golden.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, PASSWORD)
        result = invoke("snapshot", "-i", inventory, "gold", "-o", path)
    assert result.exit_code == 0, result.output
    return path


def _values(data: dict[str, Any]) -> dict[str, int]:
    return {pid: entry["value"] for pid, entry in data["parameters"].items()}


# -- snapshot -----------------------------------------------------------------------------------


def test_snapshot_holds_every_parameter_of_every_page(golden: Path, lab: Lab) -> None:
    data = json.loads(golden.read_text(encoding="utf-8"))
    assert data["schema_version"] == 1
    assert data["kind"] == SNAPSHOT_KIND
    assert (data["host"], data["transport"], data["command"]) == ("gold", "ssh", "LST SFP:;")
    assert data["address"] == f"127.0.0.1:{lab.node('gold').ssh_port}"
    assert data["taken"].endswith("+00:00")
    assert _values(data) == lab.node("gold").store.snapshot()
    assert len(data["parameters"]) == 42
    assert data["raw"].count("To be continued...") == 5  # six pages, read whole
    p978 = data["parameters"]["P978"]
    assert p978["bits"] == {str(b): int(b == 0) for b in range(16)}


@pytest.mark.parametrize("node", ["same-zh", "same-bare", "drift-b"])
def test_a_chinese_paged_reply_is_read_whole(
    node: str, lab: Lab, inventory: Path, tmp_path: Path
) -> None:
    path = tmp_path / "snap.json"
    result = invoke("snapshot", "-i", inventory, node, "-o", path)
    assert result.exit_code == 0, result.output
    data = json.loads(path.read_text(encoding="utf-8"))
    assert _values(data) == lab.node(node).store.snapshot()
    assert data["raw"].count("仍有后续报告输出") == 5
    assert "共有6个报告" in data["raw"]


def test_snapshot_never_replaces_a_file_silently(inventory: Path, tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text("keep me", encoding="utf-8")
    result = invoke("snapshot", "-i", inventory, "gold", "-o", path)
    assert result.exit_code == 2
    assert "exists" in result.output and "--force" in result.output
    assert path.read_text(encoding="utf-8") == "keep me"
    result = invoke("snapshot", "-i", inventory, "gold", "-o", path, "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(path.read_text(encoding="utf-8"))["host"] == "gold"


def test_snapshot_into_a_file_as_folder_is_a_usage_error(inventory: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("", encoding="utf-8")
    result = invoke("snapshot", "-i", inventory, "dead", "-o", tmp_path / "afile" / "snap.json")
    assert result.exit_code == 2, result.output  # found before connecting: "dead" is not tried
    assert "afile" in result.output and "not a folder" in result.output


def test_policy_from_snapshot_into_a_file_as_folder_is_a_usage_error(
    golden: Path, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("", encoding="utf-8")
    out = tmp_path / "afile" / "p.yaml"
    for snapshot in (golden, tmp_path / "missing.json"):  # found before the snapshot is read
        for force in ((), ("--force",)):
            args = ("policy", "from-snapshot", snapshot, "--parameters", "P978", "-o", out)
            result = invoke(*args, *force)
            assert result.exit_code == 2, result.output
            assert "afile" in result.output and "not a folder" in result.output, result.output
            assert "exists" not in result.output and "missing" not in result.output
    assert (tmp_path / "afile").read_text(encoding="utf-8") == ""


def test_snapshot_default_file_name(inventory: Path, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("snapshot", "-i", inventory, "gold")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "snapshot-gold.json").is_file()


def test_snapshot_of_a_host_that_cannot_be_read(inventory: Path, tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    result = invoke("snapshot", "-i", inventory, "dead", "-o", path)
    assert result.exit_code == 1
    assert "dead" in result.output and "Traceback" not in result.output
    assert not path.exists()


def test_save_refuses_an_existing_file(golden: Path, tmp_path: Path) -> None:
    snap = mt.load_snapshot(golden)
    target = tmp_path / "x.json"
    target.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="--force"):
        snap.save(target)
    assert target.read_text(encoding="utf-8") == "{}"
    snap.save(target, force=True)
    assert mt.load_snapshot(target) == snap
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left


# -- diff ---------------------------------------------------------------------------------------


def _differences(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(r["host"], r["control"], r["status"]) for r in report["results"]}


def test_diff_reports_each_difference_per_host(
    inventory: Path, golden: Path, tmp_path: Path
) -> None:
    out = tmp_path / "drift.json"
    result = invoke(
        "diff", "-i", inventory, "--baseline", golden, "--limit", READABLE,
        "--report", f"json:{out}",
    )  # fmt: skip
    assert result.exit_code == 100, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["run"]["command"] == "diff"
    assert report["outcome"]["result"] == "non-compliant"
    assert _differences(report) == {
        *((host, "baseline", "pass") for host in MATCHING),
        ("drift-a", "P017 bit 0", "fail"),
        ("drift-a", "P978 bit 0", "fail"),
        ("drift-b", "P005 bit 1", "fail"),
        ("drift-b", "P050", "fail"),
        ("missing", "P010", "fail"),
    }
    rows = {(r["host"], r["control"]): r for r in report["results"]}
    assert (rows["drift-a", "P978 bit 0"]["expected"], rows["drift-a", "P978 bit 0"]["actual"]) == (
        "1",
        "0",
    )
    assert rows["missing", "P010"]["actual"] == "absent (missing on the host)"
    assert rows["drift-a", "P978 bit 0"]["evidence"].endswith(
        "P978: gold 1 (0x0001), drift-a 0 (0x0000)"
    )
    assert rows["drift-b", "P050"]["expected"] == "absent (not in the baseline)"
    assert rows["drift-b", "P050"]["actual"] == "3 (0x0003)"
    assert "P978 bit 0" in result.output  # the terminal table


def test_ignore_leaves_parameters_out(inventory: Path, golden: Path) -> None:
    result = invoke(
        "diff", "-i", inventory, "--baseline", golden, "--limit", READABLE,
        "--ignore", "P017,p978,P005,P050,P010",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke(
        "diff", "-i", inventory, "--baseline", golden, "--limit", "drift-a", "--ignore", "P978"
    )
    assert result.exit_code == 100, result.output
    assert "P017 bit 0" in result.output and "P978" not in result.output.split("baseline gold")[-1]


def test_a_host_that_cannot_be_read_exits_1(inventory: Path, golden: Path, tmp_path: Path) -> None:
    out = tmp_path / "drift.json"
    result = invoke("diff", "-i", inventory, "--baseline", golden, "--report", f"json:{out}")
    assert result.exit_code == 1, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["outcome"]["result"] == "not decided"
    (dead,) = [r for r in report["results"] if r["host"] == "dead"]
    assert dead["status"] == "error" and dead["error"]
    assert ("drift-a", "P978 bit 0", "fail") in _differences(report)  # the others still judged


def test_every_report_format(inventory: Path, golden: Path, tmp_path: Path) -> None:
    spec = f"json:{tmp_path / 'r.json'},junit:{tmp_path / 'r.xml'},md:{tmp_path / 'r.md'}"
    result = invoke(
        "diff", "-i", inventory, "--baseline", golden, "--limit", "gold,drift-a,dead",
        "--report", spec,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    cases = ET.parse(tmp_path / "r.xml").getroot().iter("testcase")
    kinds = {(c.get("classname"), c.get("name", "").split(":")[0]): c for c in cases}
    assert kinds["drift-a", "P978 bit 0"].find("failure") is not None
    assert kinds["dead", "baseline"].find("error") is not None
    assert kinds["gold", "baseline"].find("failure") is None
    assert kinds["gold", "baseline"].find("error") is None
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "drift-a P978 bit 0: non-compliant: expected 1, actual 0" in md
    assert "dead baseline: not decided" in md


def test_json_report_on_stdout(inventory: Path, golden: Path) -> None:
    result = invoke(
        "diff", "-i", inventory, "--baseline", golden, "--limit", "gold", "--report", "json:-"
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["outcome"] == {
        "result": "compliant",
        "exit_code": 0,
        "message": "no host differs from the baseline",
    }


@pytest.mark.parametrize("ignore", ["P1x", "978", "P978,,P1", "P978;P1"])
def test_a_bad_ignore_is_a_usage_error(inventory: Path, golden: Path, ignore: str) -> None:
    result = invoke("diff", "-i", inventory, "--baseline", golden, "--ignore", ignore)
    assert result.exit_code == 2, result.output
    assert "--ignore" in result.output


def _forged(golden: Path, tmp_path: Path, change: Any) -> Path:
    data = json.loads(golden.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _p978_to_0(data: dict[str, Any]) -> None:
    data["parameters"]["P978"] = {"value": 0, "bits": {str(b): 0 for b in range(16)}}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_p978_to_0, "the values do not match the reply kept in the file (P978)"),
        (lambda d: d["parameters"]["P978"].update(value=3), "P978: value 3 does not match"),
        (lambda d: d.update(schema_version=2), "schema_version 2 is not one this mml-tool reads"),
        (lambda d: d.update(kind="plan"), "not a snapshot file"),
        (lambda d: d.update(extra=1), "not a valid snapshot at the top level"),
        (lambda d: d["parameters"].update(P1={"value": 1}), "not a valid snapshot at parameters"),
        (lambda d: d["parameters"]["P978"]["bits"].update({"0": 2}), "parameters/P978/bits/0"),
        (lambda d: d.update(raw="RETCODE = 0  ok\nrubbish\n"), "cannot be read"),
        (lambda d: d.update(platform="huawei_unknown"), "cannot be read"),
    ],
)
def test_a_bad_or_forged_snapshot_is_refused(
    inventory: Path, golden: Path, tmp_path: Path, change: Any, expected: str
) -> None:
    path = _forged(golden, tmp_path, change)
    result = invoke("diff", "-i", inventory, "--baseline", path)
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and expected in result.output
    assert "Traceback" not in result.output
    with pytest.raises(ConfigError, match=r"snapshot|match|read"):
        mt.load_snapshot(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"not json", "not JSON"), (b"[1]", "not a snapshot file"), (b"\xff\xfe", "not JSON")],
)
def test_a_file_that_is_not_a_snapshot(
    inventory: Path, tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    result = invoke("diff", "-i", inventory, "--baseline", path)
    assert result.exit_code == 2, result.output
    assert expected in result.output


# -- the library --------------------------------------------------------------------------------


def test_library_snapshot_and_diff(inventory: Path, tmp_path: Path) -> None:
    inv = mt.load_inventory(inventory, resolve_secrets=False)
    snap = mt.take_snapshot(inv.with_secrets(hosts=["gold"]).hosts["gold"])
    assert snap.value("P978") == 1
    snap.save(tmp_path / "g.json")
    assert mt.load_snapshot(tmp_path / "g.json") == snap
    result = mt.diff_fleet(inv, tmp_path / "g.json", limit=READABLE, workers=4)
    assert isinstance(result, mt.DriftResult)
    assert result.exit_code == 100 and result.failed
    got = {(d.host, d.parameter, d.kind, d.bit, d.expected, d.actual) for d in result.differences}
    assert got == EXPECTED
    assert result.drifted_hosts == ["drift-a", "drift-b", "missing"]
    assert sorted(h.host for h in result.hosts if not h.drifted) == sorted(MATCHING)
    assert all(h.compared >= 42 for h in result.hosts)
    clean = mt.diff_fleet(inv, snap, limit="gold,same-zh", ignore=["P001"])
    assert clean.exit_code == 0 and clean.ignored == ("P001",)
    dead = mt.diff_fleet(inv, snap, limit="dead")
    assert dead.exit_code == 1 and dead.error_hosts == ["dead"]
    assert dead.findings[0].status == mt.FindingStatus.ERROR


def test_compare_bits_a_side_lacks_are_differences() -> None:
    diffs = compare("h", {"P1": {0: 1, 1: 0}}, {"P1": {0: 1}})
    assert diffs == [Difference("h", "P1", DiffKind.DIFFERS, 1, 0, None)]


# -- reading and comparing, without a lab ---------------------------------------------------------

values = st.dictionaries(
    st.integers(1, 999).map(lambda n: f"P{n:03d}"), st.integers(0, 0xFFFF), max_size=12
)


@given(base=values, flips=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 15))))
def test_compare_finds_exactly_the_flipped_bits(
    base: dict[str, int], flips: list[tuple[int, int]]
) -> None:
    ids = sorted(base)
    host = dict(base)
    for index, bit in flips:
        if ids:
            pid = ids[index % len(ids)]
            host[pid] ^= 1 << bit
    got = compare(
        "h",
        {p: bits_of(v) for p, v in base.items()},
        {p: bits_of(v) for p, v in host.items()},
    )
    want = {(p, b) for p in ids for b in range(16) if (base[p] ^ host[p]) >> b & 1}
    assert {(d.parameter, d.bit) for d in got} == want
    assert all(d.kind == DiffKind.DIFFERS for d in got)


def test_records_of_every_layout_give_the_same_parameters() -> None:
    per_bit = [{"ID": "P978", "BIT": str(b), "BIT_VALUE": str(int(b == 0))} for b in range(16)]
    from_one = [{"ID": "P978", "BIT_FROM_1": str(b + 1), "BIT_VALUE": str(int(b == 0))}
                for b in range(16)]  # fmt: skip
    whole = [{"ID": "P978", "VALUE": "1"}]
    hexed = [{"ID": "P978", "HEX": "0x0001"}]
    results = [parameters_from_records(r) for r in (per_bit, from_one, whole, hexed)]
    assert all(r == {"P978": bits_of(1)} for r in results)


@pytest.mark.parametrize(
    "records",
    [
        [{"ID": "P978", "VALUE": "1"}, {"ID": "P978", "BIT": "0", "BIT_VALUE": "0"}],
        [{"ID": "P978", "BIT": "0", "BIT_VALUE": "2"}],
        [{"ID": "P978", "VALUE": "١"}],
        [{"ID": "", "VALUE": "1"}],
    ],
)
def test_records_that_cannot_be_trusted_are_a_parse_error(records: list[dict[str, str]]) -> None:
    with pytest.raises(ParseError):
        parameters_from_records(records)
