"""History on SQLite through the CLI over the lab: fail -> apply -> pass, since_last, timelines,
runs, retention, metrics parsed back, and a history that cannot be written never failing a run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from conftest import invoke, module_lab, set_command_env, write_lab_inventory
from prometheus_client.parser import text_string_to_metric_families

from mml_tool.errors import ConfigError, HistoryError
from mml_tool.history import schema
from mml_tool.history.config import default_path, from_inventory, parse_location
from mml_tool.history.rows import FindingRow, RunRecord
from mml_tool.history.store import HistoryStore
from mml_tool.lab.lab import Lab
from mml_tool.lab.uap import NodeConfig

PASSWORD = "Hist-Lab-Pass-7q"
CONTROL = "UAP-SFP-P978-B0"
START = {"uap-1": 1, "uap-2": 0, "uap-3": 1}  # bit 0 = 1 is non-compliant
SAMPLES = Path(__file__).parent / "samples" / "history"
OLD_PATH = "/srv/old-checkout/inventory.yaml"  # the inventory of the runs in the v1 samples


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    nodes = [NodeConfig("uap-1"), NodeConfig("uap-2", layout="vertical"), NodeConfig("uap-3")]
    yield from module_lab(tmp_path_factory, "history-lab", nodes, PASSWORD)


@pytest.fixture(scope="module")
def inventory(lab: Lab) -> Path:
    return write_lab_inventory(lab, timeout=5, connect_timeout=5)


@pytest.fixture(autouse=True)
def env(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    set_command_env(monkeypatch, tmp_path, password=PASSWORD, operator="op-carol")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name, value in START.items():
        lab.node(name).store.set_value("P978", value)
    return tmp_path


def unreachable(source: Path, target: Path, host: str = "uap-3") -> Path:
    """``source`` with ``host`` pointed at a port where nothing listens."""
    doc = yaml.safe_load(source.read_text())
    doc["hosts"][host]["port"] = 1
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def test_fail_apply_pass_timeline_and_since_last(inventory: Path, env: Path) -> None:
    store = env / "h.sqlite"
    first = invoke("check", "-i", inventory, "--history", store, "--report", f"json:{env}/1.json")
    assert first.exit_code == 100, first.output
    assert json.loads((env / "1.json").read_text())["since_last"]["previous_run"] is None

    plan = env / "plan.json"
    made = invoke("plan", "-i", inventory, "-o", plan, "--change-id", "CHG-13")
    assert made.exit_code == 0, made.output
    applied = invoke("apply", plan, "-i", inventory, "--yes", "--history", store)
    assert applied.exit_code == 0, applied.output

    report = env / "2.json"
    md = env / "2.md"
    second = invoke("check", "-i", inventory, "--history", store,
                    "--report", f"json:{report},md:{md}")  # fmt: skip
    assert second.exit_code == 0, second.output
    since = json.loads(report.read_text())["since_last"]
    assert since["previous_run"] == 1
    assert [(t["host"], t["was"], t["now"]) for t in since["fixed"]] == [
        ("uap-1", "fail", "pass"),
        ("uap-3", "fail", "pass"),
    ]
    assert since["new_failures"] == since["became_unreadable"] == []
    assert "Since the last run (#1" in second.output and "2 fixed" in second.output
    assert "## Since the last run" in md.read_text()

    shown = invoke("history", "--history", store, "--host", "uap-1", "--json")
    assert shown.exit_code == 0, shown.output
    (line,) = json.loads(shown.output)
    assert (line["host"], line["control"], line["status"]) == ("uap-1", CONTROL, "pass")
    assert [(c["was"], c["now"]) for c in line["changes"]] == [(None, "fail"), ("fail", "pass")]
    assert line["since"] == line["changes"][-1]["at"] == line["last_compliant"]
    assert line["non_compliant_seconds"] >= 0
    other = invoke("history", "--history", store, "--control", "NO-SUCH", "--json")
    assert other.exit_code == 0 and json.loads(other.output) == []
    recent = invoke("history", "runs", "--history", store, "--since", "1h", "--limit", "1")
    assert recent.exit_code == 0 and "check" in recent.output, recent.output
    table = invoke("history", "--history", store, "--since", "7d")
    assert table.exit_code == 0 and "uap-2" in table.output, table.output

    runs = invoke("history", "runs", "--history", store, "--json")
    assert runs.exit_code == 0, runs.output
    listed = json.loads(runs.output)
    assert [(r["command"], r["exit_code"]) for r in listed] == [
        ("check", 0),
        ("apply", 0),
        ("check", 100),
    ]
    assert listed[1]["change_id"] == "CHG-13" and listed[1]["operator"] == "op-carol"
    assert listed[2]["counts"] == {"hosts": 3, "pass": 1, "fail": 2, "error": 0, "waived": 0}
    with HistoryStore.open(parse_location(str(store), where="t")) as opened:
        assert opened.version == schema.SCHEMA_VERSION


def test_new_failure_and_unreadable_since_last(lab: Lab, inventory: Path, env: Path) -> None:
    store = env / "h.sqlite"
    assert invoke("check", "-i", inventory, "--history", store).exit_code == 100
    lab.node("uap-2").store.set_value("P978", 1)  # drifted back to non-compliant
    broken = unreachable(inventory, inventory)
    report = env / "r.json"
    # the same inventory file: since_last compares runs of the same inventory and policy
    result = invoke("check", "-i", broken, "--history", store, "--report", f"json:{report}")
    assert result.exit_code == 1, result.output
    since = json.loads(report.read_text())["since_last"]
    assert [t["host"] for t in since["new_failures"]] == ["uap-2"]
    assert [(t["host"], t["was"]) for t in since["became_unreadable"]] == [("uap-3", "fail")]
    write_lab_inventory(lab, timeout=5, connect_timeout=5)


def test_default_store_is_in_the_xdg_state_dir(inventory: Path, env: Path) -> None:
    assert default_path() == env / "state" / "mml-tool" / "history.sqlite"
    assert invoke("check", "-i", inventory).exit_code == 100
    assert default_path().exists()
    assert invoke("check", "-i", inventory, "--no-history").exit_code == 100
    runs = invoke("history", "runs", "--json")
    assert len(json.loads(runs.output)) == 1


def test_inventory_history_key_and_relative_path(inventory: Path, env: Path) -> None:
    own = inventory.parent / "with-history.yaml"  # beside the lab's known_hosts
    store = env / "team-history.sqlite"
    own.write_text(inventory.read_text() + f"\nhistory: {os.path.relpath(store, own.parent)}\n")
    assert invoke("check", "-i", own).exit_code == 100
    assert store.exists()
    assert not default_path().exists()
    runs = invoke("history", "runs", "-i", own, "--json")
    assert runs.exit_code == 0 and len(json.loads(runs.output)) == 1, runs.output


def test_history_error_is_a_warning_and_the_result_stands(
    inventory: Path, env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = env / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    result = invoke("check", "-i", inventory, "--history", blocker / "h.sqlite",
                    "--report", f"json:{env}/r.json")  # fmt: skip
    assert result.exit_code == 100, result.output
    assert "history not recorded" in caplog.text
    assert json.loads((env / "r.json").read_text())["since_last"] is None


def test_store_newer_than_the_tool_is_refused(env: Path) -> None:
    location = parse_location(str(env / "h.sqlite"), where="t")
    with HistoryStore.open(location) as store, store.engine.begin() as conn:
        schema.set_version(conn, schema.SCHEMA_VERSION + 1)
    with pytest.raises(HistoryError, match="newer than this mml-tool"):
        HistoryStore.open(location)


def test_retention_prunes_old_runs(env: Path) -> None:
    now = datetime.now(timezone.utc)
    store_path = env / "h.sqlite"
    with HistoryStore.open(parse_location(str(store_path), where="t")) as store:
        for days in (200, 100, 10, 0):
            at = now - timedelta(days=days)
            store.record(RunRecord("check", at, at, "inv", "p", "s", 0,
                                   findings=[FindingRow("h", "c", "pass")]))  # fmt: skip
    result = invoke("history", "prune", "--history", store_path, "--keep", "90d")
    assert result.exit_code == 0 and "pruned 2 run(s)" in result.output, result.output
    with HistoryStore.open(parse_location(str(store_path), where="t")) as store:
        assert len(store.runs()) == 2
        assert len(store.timelines()[0].changes) == 1
    assert invoke("history", "prune", "--history", store_path, "--keep", "90x").exit_code == 2


def test_metrics_file_parsed_back(inventory: Path, env: Path) -> None:
    prom = env / "metrics" / "mml.prom"
    result = invoke("check", "-i", inventory, "--no-history", "--metrics", prom)
    assert result.exit_code == 100, result.output
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    status = {
        (s.labels["host"], s.labels["control"]): s.value
        for s in families["mml_tool_compliance_status"].samples
    }
    assert status == {("uap-1", CONTROL): 0, ("uap-2", CONTROL): 1, ("uap-3", CONTROL): 0}
    hosts = {s.labels["status"]: s.value for s in families["mml_tool_hosts"].samples}
    assert hosts == {"compliant": 1, "noncompliant": 2, "unknown": 0}
    (last,) = families["mml_tool_last_run_timestamp_seconds"].samples
    (success,) = families["mml_tool_last_success_timestamp_seconds"].samples
    assert abs(last.value - datetime.now(timezone.utc).timestamp()) < 60
    assert success.value == last.value  # every host was decided
    (duration,) = families["mml_tool_run_duration_seconds"].samples
    assert 0 <= duration.value < 60
    assert [p.name for p in prom.parent.iterdir()] == ["mml.prom"]  # no temporary left
    assert PASSWORD not in prom.read_text()

    # A run that cannot decide a host keeps the earlier last-success time.
    broken = unreachable(inventory, inventory.parent / "broken.yaml")
    assert invoke("check", "-i", broken, "--no-history", "--metrics", prom).exit_code == 1
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert families["mml_tool_last_success_timestamp_seconds"].samples[0].value == success.value
    status_after = {
        s.labels["host"]: s.value for s in families["mml_tool_compliance_status"].samples
    }
    assert status_after["uap-3"] == -1
    assert invoke("check", "-i", inventory, "--metrics", env / "m.txt").exit_code == 2


def test_password_in_a_url_is_refused_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Pg-Secret-3141"
    result = invoke("check", "-i", "nonexistent.yaml", "--history",
                    f"postgresql://mml:{secret}@127.0.0.1:1/h")  # fmt: skip
    assert result.exit_code == 2
    result = invoke("history", "runs", "--history", f"postgresql://mml:{secret}@127.0.0.1:1/h")
    assert result.exit_code == 2 and secret not in result.output
    assert "${VAR}" in result.output
    with pytest.raises(ConfigError, match="not set"):
        parse_location("postgresql://mml:${NOPE_PW}@127.0.0.1/h", where="t", env={})
    location = parse_location(
        "postgresql://mml:${PGPW}@127.0.0.1:1/h", where="t", env={"PGPW": secret}
    )
    assert secret not in location.shown and secret not in repr(location)
    with pytest.raises(HistoryError) as caught:
        HistoryStore.open(location)  # nothing listens on port 1
    assert secret not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(ConfigError, match="not supported"):
        parse_location("mysql://u@h/db", where="t")


def test_inventory_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-a-file\n")
    inv = tmp_path / "inv.yaml"
    inv.write_text("history:\n  url: postgresql://mml@127.0.0.1:5/h\n  password_file: pw\n")
    location = from_inventory(inv, env={})
    assert location is not None and location.password is not None
    assert location.password.reveal() == "from-a-file"
    assert "from-a-file" not in location.shown
    inv.write_text("history:\n  url: postgresql://mml@127.0.0.1:5/h\n  password: plain\n")
    with pytest.raises(ConfigError, match=r"must be \$\{VAR\}"):
        from_inventory(inv, env={})


def test_timeline_window_keeps_when_the_status_began(env: Path) -> None:
    now = datetime.now(timezone.utc)
    store_path = env / "h.sqlite"
    with HistoryStore.open(parse_location(str(store_path), where="t")) as store:
        for days, status in ((20, "pass"), (10, "fail"), (3, "fail"), (1, "pass"), (0, "pass")):
            at = now - timedelta(days=days)
            store.record(RunRecord("check", at, at, "inv", "p", "s", 0,
                                   findings=[FindingRow("h", "c", status)]))  # fmt: skip
        whole = store.timelines(now=now)[0]
        week = store.timelines(since=now - timedelta(days=7), now=now)[0]
        assert store.timelines(since=now - timedelta(days=7), host="other") == []
    assert [c.now for c in whole.changes] == ["pass", "fail", "pass"]
    assert whole.non_compliant_seconds == pytest.approx(9 * 86400, abs=1)
    # Within the last 7 days: non-compliant from the window's start until 1 day ago.
    assert week.non_compliant_seconds == pytest.approx(6 * 86400, abs=1)
    assert [c.now for c in week.changes] == ["pass"] and week.since == whole.since
    assert week.status == "pass" and week.last_compliant is not None
    assert abs((week.last_compliant - now).total_seconds()) < 1


def test_keep_on_check_prunes_old_runs(inventory: Path, env: Path) -> None:
    store_path = env / "h.sqlite"
    old = datetime.now(timezone.utc) - timedelta(days=100)
    with HistoryStore.open(parse_location(str(store_path), where="t")) as store:
        store.record(RunRecord("check", old, old, "inv", "p", "s", 0))
    result = invoke("check", "-i", inventory, "--history", store_path, "--keep", "90d")
    assert result.exit_code == 100, result.output
    with HistoryStore.open(parse_location(str(store_path), where="t")) as store:
        assert [r.started > old for r in store.runs()] == [True]


def test_a_misspelt_history_key_is_named_before_anything_is_read(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("hosts: {}\nhistory:\n  url: h.sqlite\n  passwrd: ${X}\n")
    result = invoke("check", "-i", inventory)
    assert result.exit_code == 2, result.output  # as any other inventory error
    assert "history: unknown key 'passwrd': did you mean 'password'?" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- the key "since last run" compares by: the inventory's name:, else its path


def placed(source: Path, folder: Path, name: str | None) -> Path:
    """``source`` copied into ``folder`` (as a second checkout), with ``name:`` when given."""
    doc = yaml.safe_load(source.read_text())
    doc["defaults"]["known_hosts"] = str(source.parent / doc["defaults"]["known_hosts"])
    if name is not None:
        doc = {"name": name, **doc}
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "inventory.yaml"
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def since_last(env: Path, inventory: Path, store: Path) -> dict[str, object]:
    report = env / "since.json"
    result = invoke("check", "-i", inventory, "--history", store, "--report", f"json:{report}")
    assert result.exit_code in (0, 100), result.output
    since: dict[str, object] = json.loads(report.read_text())["since_last"]
    return since


def test_a_named_inventory_keeps_its_history_across_checkouts(
    lab: Lab, inventory: Path, env: Path
) -> None:
    store = env / "h.sqlite"
    first = placed(inventory, env / "checkout-a", "east-fleet")
    assert since_last(env, first, store)["previous_run"] is None
    lab.node("uap-1").store.set_value("P978", 0)
    # The same inventory checked out elsewhere (or moved): the same key, the same history.
    moved = placed(inventory, env / "checkout-b", "east-fleet")
    since = since_last(env, moved, store)
    assert since["previous_run"] == 1
    assert [t["host"] for t in since["fixed"]] == ["uap-1"]  # type: ignore[attr-defined]
    runs = invoke("history", "runs", "--history", store, "--json")
    assert [r["scope"] for r in json.loads(runs.output)] == ["east-fleet", "east-fleet"]
    assert {r["inventory"] for r in json.loads(runs.output)} == {str(first), str(moved)}
    table = invoke("history", "runs", "--history", store)
    assert table.exit_code == 0 and "east-fleet" in table.output and "key" in table.output


def test_two_inventories_at_one_path_do_not_mix(inventory: Path, env: Path) -> None:
    store = env / "h.sqlite"
    path = placed(inventory, env / "checkout", "east-fleet")
    assert since_last(env, path, store)["previous_run"] is None
    path = placed(inventory, env / "checkout", "west-fleet")  # another inventory, same path
    assert since_last(env, path, store)["previous_run"] is None
    path = placed(inventory, env / "checkout", None)  # unnamed: keyed on its path, as before
    assert since_last(env, path, store)["previous_run"] is None
    assert since_last(env, path, store)["previous_run"] == 3
    runs = invoke("history", "runs", "--history", store, "--json")
    assert [r["scope"] for r in json.loads(runs.output)][:2] == [str(path), str(path)]


@pytest.mark.parametrize(
    ("value", "why"),
    [("east/fleet", "letters, digits"), ("", "letters, digits"), ("x" * 200, "at most 128")],
)
def test_a_bad_inventory_name_is_a_usage_error(tmp_path: Path, value: str, why: str) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(yaml.safe_dump({"name": value, "hosts": {}}))
    result = invoke("check", "-i", inv, "--no-history")
    assert result.exit_code == 2, result.output
    assert f"{inv}: top level: field 'name'" in result.output and why in result.output


def test_a_version_1_store_is_upgraded_and_its_runs_stay_readable(
    inventory: Path, env: Path
) -> None:
    store = env / "v1.sqlite"
    store.write_bytes((SAMPLES / "v1.sqlite").read_bytes())  # made by the version-1 code
    with HistoryStore.open(parse_location(str(store), where="t")) as opened:
        assert opened.version == schema.SCHEMA_VERSION == 2
        old = opened.runs()
        assert [(r.id, r.command, r.scope, r.inventory) for r in old] == [
            (3, "check", OLD_PATH, OLD_PATH),
            (2, "apply", OLD_PATH, OLD_PATH),
            (1, "check", OLD_PATH, OLD_PATH),
        ]
        (line,) = opened.timelines(host="uap-1")
        assert [c.now for c in line.changes] == ["fail", "pass"]
        # The old runs keep their path key: a new run of that path compares with them.
        at = datetime(2026, 11, 3, tzinfo=timezone.utc)
        new = opened.record(RunRecord("check", at, at, OLD_PATH, "uap-sfp", "a" * 64, 100,
                                      scope=OLD_PATH,
                                      findings=[FindingRow("uap-1", CONTROL, "fail")]))  # fmt: skip
        since = opened.since_last(new)
        assert since.previous_run == 3 and [t.host for t in since.new_failures] == ["uap-1"]
    shown = invoke("history", "runs", "--history", store, "--json")
    assert [r["scope"] for r in json.loads(shown.output)] == [OLD_PATH] * 4


def test_history_and_runs_filter_by_key(lab: Lab, inventory: Path, env: Path) -> None:
    store = env / "h.sqlite"
    east = placed(inventory, env / "east", "east-fleet")
    west = placed(inventory, env / "west", "west-fleet")
    assert since_last(env, east, store)["previous_run"] is None
    lab.node("uap-1").store.set_value("P978", 0)
    assert since_last(env, west, store)["previous_run"] is None
    runs = invoke("history", "runs", "--history", store, "--key", "east-fleet", "--json")
    assert [r["scope"] for r in json.loads(runs.output)] == ["east-fleet"], runs.output
    before = invoke("history", "--history", store, "--key", "east-fleet", "runs", "--json")
    assert json.loads(before.output) == json.loads(runs.output)
    shown = invoke("history", "--history", store, "--key", "west-fleet", "--host", "uap-1",
                   "--json")  # fmt: skip
    (line,) = json.loads(shown.output)
    assert [c["now"] for c in line["changes"]] == ["pass"]  # east's `fail` is not west's
    both = invoke("history", "--history", store, "--host", "uap-1", "--json")
    assert [c["now"] for c in json.loads(both.output)[0]["changes"]] == ["fail", "pass"]
    # A path is a key too (an inventory without name:, or runs from before version 2).
    none = invoke("history", "runs", "--history", store, "--key", str(east), "--json")
    assert json.loads(none.output) == []
