"""A secret written out in an inventory (a file that gets committed) is loaded, but warned
about: once per file, on stderr, naming the file and where, never the value; machine output on
stdout stays parseable. Inventories that take secrets from ${VAR} or files stay silent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from mml_tool.cli import cli
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import Lab

EXAMPLES = Path(__file__).parent.parent / "inventories"
SIGNING_KEY = "k3y-Written-0ut-" * 3


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "250"})


def _literal_inventory(lab_inventory_path: Path, tmp_path: Path, password: str) -> Path:
    """The lab's inventory with its password written out: in defaults, and in one host as the
    fallback of a variable that is not set."""
    doc: dict[str, Any] = yaml.safe_load(lab_inventory_path.read_text(encoding="utf-8"))
    doc["defaults"]["password"] = password
    doc["defaults"]["known_hosts"] = str(lab_inventory_path.parent / "lab_known_hosts")
    first = next(iter(doc["hosts"]))
    doc["hosts"][first]["password"] = "${MML_UNSET_FOR_THIS_TEST:-" + password + "}"
    doc["plan_signing_key"] = SIGNING_KEY
    path = tmp_path / "committed.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _assert_one_warning(result: Result, path: Path, first: str, *secrets: str) -> None:
    lines = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(lines) == 1, result.stderr
    (line,) = lines
    assert str(path) in line and "defaults: password" in line
    assert f"host {first!r}: password" in line and "plan_signing_key" in line
    assert "${" in line and "password_file" in line
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


def test_a_written_out_password_is_warned_once_and_json_stays_clean(
    lab: Lab, lab_inventory_path: Path, lab_password: str, tmp_path: Path
) -> None:
    path = _literal_inventory(lab_inventory_path, tmp_path, lab_password)
    first = next(iter(load_inventory(path).hosts))
    checked = _invoke("check", "-i", path, "--report", "json:-", "--no-history")
    assert checked.exit_code in (0, 100), checked.output  # the password works: hosts were read
    report = json.loads(checked.stdout)  # stdout holds the report and nothing else
    assert report["results"], report
    # ... and the report says it too, for whoever reads only the report (a CI job, AWX)
    assert [w for w in report["warnings"] if "written out" in w and str(path) in w], report
    _assert_one_warning(checked, path, first, lab_password, SIGNING_KEY)

    run = _invoke("exec", "-i", path, first, "LST SFP: ID=P978;", "--json")
    assert run.exit_code == 0, run.output
    json.loads(run.stdout)
    _assert_one_warning(run, path, first, lab_password, SIGNING_KEY)


def test_the_library_names_the_places_never_the_values(
    lab_inventory_path: Path, lab_password: str, tmp_path: Path
) -> None:
    path = _literal_inventory(lab_inventory_path, tmp_path, lab_password)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["hosts"]["bastion-tunnel"] = {
        "hostname": "127.0.0.1",
        "transport": "ssh-tunnel",
        "password": "${MML_LAB_PASSWORD}",
        "jump": {"hostname": "127.0.0.1", "password": 123456},  # a number is a password too
    }
    doc["groups"]["lab"]["vars"]["key_passphrase"] = "written-out-phrase"
    doc["groups"]["lab"]["vars"]["key_file"] = "id_ed25519"
    doc.setdefault("gateways", {})["ccgw"] = {
        "url": "https://127.0.0.1:1", "agent_id": "a1", "agent_password": "agent-pw-1",
        "phone_number": "1000", "called": "2000", "skill_id": 1,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    (warning,) = load_inventory(path, resolve_secrets=False).warnings
    for place in (
        "defaults: password",
        "group 'lab': key_passphrase",
        "host 'bastion-tunnel': jump: password",
        "gateway 'ccgw': agent_password",
        "top level: plan_signing_key",
    ):
        assert place in warning, warning
    assert "host 'bastion-tunnel': password" not in warning  # ${VAR} is the way
    for value in (lab_password, "123456", "written-out-phrase", "agent-pw-1", SIGNING_KEY):
        assert value not in warning


def test_inventories_that_take_secrets_from_variables_are_silent(
    lab: Lab, lab_inventory_path: Path, lab_password: str, tmp_path: Path
) -> None:
    assert load_inventory(lab_inventory_path).warnings == ()
    env = {"MML_USER": "op", "BASTION_USER": "op", "MML_PASSWORD": "x"}
    example = load_inventory(EXAMPLES / "production.example.yaml", env=env, resolve_secrets=False)
    assert example.warnings == ()
    checked = _invoke("check", "-i", lab_inventory_path, "--no-history")
    assert checked.exit_code in (0, 100), checked.output
    assert "warning" not in checked.stderr.lower(), checked.stderr
    # A password file, a prompt, a variable with an empty fallback: nothing written out.
    doc = yaml.safe_load(lab_inventory_path.read_text(encoding="utf-8"))
    doc["defaults"]["password"] = "${MML_LAB_PASSWORD:-}"
    pw_file = tmp_path / "pw"
    pw_file.write_text(lab_password, encoding="utf-8")
    first, second = list(doc["hosts"])[:2]
    doc["hosts"][first]["password_file"] = str(pw_file)
    doc["hosts"][second]["password_prompt"] = True
    path = tmp_path / "silent.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    assert load_inventory(path, resolve_secrets=False).warnings == ()


def test_history_reading_the_inventory_warns_too(tmp_path: Path) -> None:
    """`history -i` reads the file (for its history:): it warns as every command does."""
    path = tmp_path / "committed.yaml"
    doc = {
        "history": str(tmp_path / "history.sqlite"),
        "hosts": {"uap-1": {"hostname": "127.0.0.1", "username": "op", "password": "pw-1234567"}},
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = _invoke("history", "-i", path, "runs", "--json")
    lines = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(lines) == 1 and "host 'uap-1': password" in lines[0], result.stderr
    assert "pw-1234567" not in result.stdout + result.stderr
