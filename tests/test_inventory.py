"""Inventory: merging, variables, secrets, validation errors that say what to do."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from mml_tool.errors import InventoryError
from mml_tool.inventory import Inventory, load_inventory
from mml_tool.secret import Secret

PW = "Inv-S3cr3t-pw"
ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, **env: str) -> Inventory:
    return load_inventory(write(tmp_path, text), env={"MML_PASSWORD": PW, **env})


def error(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(InventoryError) as info:
        load(tmp_path, text, **env)
    message = str(info.value)
    assert PW not in message
    return message


FULL = """
    defaults:
      transport: ssh
      username: ${MML_USER:-operator}
      password: ${MML_PASSWORD}
      known_hosts: known_hosts
      timeout: 30
    groups:
      video-cc: {vars: {timeout: 20, connect_timeout: 5}}
      slow: {vars: {timeout: 60}}
    gateways:
      gw-1:
        url: https://127.0.0.1:8043
        ca_bundle: lab-ca.pem
        agent_id: 101
        agent_password: ${CCGW_AGENT_PASSWORD}
        phone_number: "40038"
        called: "40040"
        skill_id: 25
    hosts:
      uap-1:
        hostname: 127.0.0.1
        port: 2201
        groups: [video-cc, slow]
        ne_name: UAP-1
        meid: 5
        gateway: gw-1
      uap-2:
        hostname: uap-2.example.net
        groups: [slow, video-cc]
        transport: tcp
      uap-3:
        hostname: 10.0.0.3
        transport: ssh-tunnel
        timeout: 7
        jump: {hostname: jump.example.net, port: 2222}
"""


def test_full_inventory_merges_defaults_groups_then_host(tmp_path: Path) -> None:
    inv = load(tmp_path, FULL, CCGW_AGENT_PASSWORD="agent-pw")
    one, two, three = inv.hosts["uap-1"], inv.hosts["uap-2"], inv.hosts["uap-3"]
    assert (one.timeout, two.timeout, three.timeout) == (60.0, 20.0, 7.0)  # last group wins
    assert one.connect_timeout == 5.0 and three.connect_timeout == 10.0
    assert one.username == "operator"  # ${VAR:-fallback}
    assert one.password == Secret(PW) and PW not in repr(inv)
    assert one.known_hosts == tmp_path / "known_hosts"
    assert (one.port, two.port, three.port) == (2201, 6000, 6000)
    assert (one.ne_name, one.meid, one.gateway) == ("UAP-1", 5, "gw-1")
    assert one.groups == ("video-cc", "slow")
    assert three.jump is not None and three.jump.port == 2222
    assert three.jump.username == "operator" and three.jump.password == Secret(PW)
    assert three.jump.known_hosts == tmp_path / "known_hosts"
    gw = inv.gateways["gw-1"]
    assert gw.agent_id == "101" and gw.skill_id == 25 and gw.ca_bundle == tmp_path / "lab-ca.pem"
    assert gw.agent_password.reveal() == "agent-pw" and "agent-pw" not in repr(gw)
    assert gw.verify_tls is True and gw.timeout == 15.0


def test_select_by_name_group_and_pattern(tmp_path: Path) -> None:
    inv = load(tmp_path, FULL, CCGW_AGENT_PASSWORD="x")
    names = lambda limit: [h.name for h in inv.select(limit)]  # noqa: E731
    assert names(None) == names("all") == ["uap-1", "uap-2", "uap-3"]
    assert names("uap-3,video-cc") == ["uap-1", "uap-2", "uap-3"]
    assert names("uap-[12]") == ["uap-1", "uap-2"]
    with pytest.raises(InventoryError, match=r"'uap-9' matches no host or group"):
        inv.select("uap-9")
    with pytest.raises(InventoryError, match="did you mean 'video-cc'"):
        inv.select("video_cc")


def test_missing_variable_names_file_host_field_and_variable(tmp_path: Path) -> None:
    msg = error(tmp_path, FULL)  # CCGW_AGENT_PASSWORD unset
    assert "inventory.yaml" in msg and "gateway 'gw-1'" in msg and "agent_password" in msg
    assert "CCGW_AGENT_PASSWORD is not set" in msg and "export" in msg
    text = """
        defaults: {username: u, password: "${NOPE}"}
        hosts: {h1: {hostname: h}}
    """
    msg = error(tmp_path, text)
    assert "host 'h1'" in msg and "'password'" in msg and "set in defaults" in msg
    assert "NOPE" in msg


def test_password_file_and_prompt(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text(PW + "\n", encoding="utf-8")
    text = """
        defaults: {username: u, password_prompt: true}
        hosts:
          a: {hostname: a, password_file: pw.txt}
          b: {hostname: b}
          c: {hostname: c}
    """
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return "typed-pw"

    inv = load_inventory(write(tmp_path, text), prompt=prompt, env={})
    assert inv.hosts["a"].password == Secret(PW)
    assert inv.hosts["b"].password == inv.hosts["c"].password == Secret("typed-pw")
    assert len(asked) == 1  # one prompt for the defaults, shared by b and c
    with pytest.raises(InventoryError, match="run interactively") as info:
        load_inventory(write(tmp_path, text), env={})
    assert "host 'b'" in str(info.value)


def test_jump_password_prompt_asks_for_the_jump_password(tmp_path: Path) -> None:
    text = """
        groups:
          far:
            vars:
              transport: ssh-tunnel
              password_prompt: true
              jump: {hostname: j, password_prompt: true}
        hosts:
          a: {hostname: a, username: u, groups: [far]}
          b: {hostname: b, username: u, groups: [far]}
    """
    answers = {"MML": "mml-pw", "SSH": "jump-pw"}
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return answers[question.split()[0]]

    inv = load_inventory(write(tmp_path, text), prompt=prompt, env={})
    for name in ("a", "b"):
        host = inv.hosts[name]
        assert host.password == Secret("mml-pw")
        assert host.jump is not None and host.jump.password == Secret("jump-pw")
    assert len(asked) == 2  # one prompt per place it is set, shared by both hosts


def test_missing_password_file(tmp_path: Path) -> None:
    msg = error(tmp_path, "hosts: {a: {hostname: a, username: u, password_file: nope.txt}}")
    assert "cannot read" in msg and "nope.txt" in msg and "chmod 600" in msg


A = "hosts: {a: {hostname: a, username: u, password: x, "  # a valid host, then the field


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "hosts: {a: {hostname: a, username: u, pasword: x}}",
            "unknown key 'pasword': did you mean 'password'",
        ),
        (
            "defaults: {tmeout: 3}\nhosts: {}",
            "defaults: unknown key 'tmeout': did you mean 'timeout'",
        ),
        (A + "port: 70000}}", "'port' = 70000 must be between 1 and 65535"),
        (A + "port: abc}}", "'port' must be a whole number, not str"),
        (A + "timeout: 0}}", "'timeout' must be a number of seconds above 0"),
        (A + "timeout: .nan}}", "'timeout' must be a number of seconds above 0"),
        (A + "connect_timeout: 'inf'}}", "'connect_timeout' must be a number of seconds above 0"),
        (A + "transport: telnet}}", "unknown transport 'telnet'"),
        (A + "transport: ssh_tunnel}}", "did you mean 'ssh-tunnel'"),
        (A + "groups: [vidoe]}}", "unknown group 'vidoe'"),
        (A + "gateway: gw}}", "unknown gateway 'gw'"),
        (A + "transport: ssh-tunnel}}", "needs a 'jump' host"),
        (A + "jump: {hostname: j}}}", "only used with transport 'ssh-tunnel'"),
        (A + "password_file: f}}", "password and password_file are both set"),
        ("hosts: {a: {hostname: a, username: u}}", "no password"),
        ("hosts: {a: {hostname: a, password: x}}", "'username' is missing"),
        ("hosts: {a: {username: u, password: x}}", "'hostname' is missing"),
        (
            "hosts: {a: {hostname: 'a b', username: u, password: x}}",
            "'hostname' = 'a b' holds characters",
        ),
        (A + "trust_on_first_use: maybe}}", "true or false"),
        (A + "meid: -1}}", "'meid' = -1 must be at least 0"),
        ("hosts: [a, b]", "hosts: must be a mapping"),
        (A + "jump: {hostname: j, prt: 1}, transport: ssh-tunnel}}", "jump: unknown key 'prt'"),
        ("gateways: {g: {url: 'ftp://x'}}\nhosts: {}", "must look like https://host:port"),
        ("hosts:\n  a: {hostname: a\n  b: 1\n", "YAML syntax error at line"),
    ],
)
def test_errors_name_the_field_and_what_to_do(tmp_path: Path, text: str, expected: str) -> None:
    msg = error(tmp_path, text)
    assert str(tmp_path / "inventory.yaml") in msg
    assert expected in msg


@pytest.mark.parametrize("bad", ['UAP"1', "UAP;1", "UAP\n1", "UAP%1", "UAP'1", "UAP\x071"])
def test_ne_name_that_could_break_out_of_the_command_is_refused(tmp_path: Path, bad: str) -> None:
    text = f"hosts: {{a: {{hostname: a, username: u, password: x, ne_name: {json.dumps(bad)}}}}}"
    msg = error(tmp_path, text)
    assert "host 'a'" in msg and "'ne_name'" in msg and "could end the MML command" in msg


def test_username_is_checked_like_ne_name(tmp_path: Path) -> None:
    msg = error(tmp_path, 'hosts: {a: {hostname: a, username: "u\\";x", password: x}}')
    assert "'username'" in msg


def test_secrets_never_in_errors(tmp_path: Path) -> None:
    text = """
        defaults: {username: u, password: "${MML_PASSWORD}"}
        hosts: {a: {hostname: a, port: "${MML_PASSWORD}"}}
    """
    msg = error(tmp_path, text)
    assert "'port' must be a whole number" in msg
    msg = error(tmp_path, "hosts: {a: {hostname: a, username: u, password: [Inv-S3cr3t-pw]}}")
    assert "'password' must be a string, not a list" in msg


def test_asdict_of_a_host_keeps_the_password_masked(tmp_path: Path) -> None:
    host = load(tmp_path, FULL, CCGW_AGENT_PASSWORD="agent-pw").hosts["uap-3"]
    data = dataclasses.asdict(host)  # what a report or audit record built from it would hold
    assert PW not in repr(data) and PW not in json.dumps(data, default=str)
    assert data["password"] == Secret(PW) and data["jump"]["password"].reveal() == PW


def test_production_example_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"MML_USER": "ops", "MML_PASSWORD": PW, "CCGW_AGENT_PASSWORD": "agent"}
    inv = load_inventory(ROOT / "inventories" / "production.example.yaml", env=env)
    assert inv.hosts and inv.gateways
    assert inv.name == "production-east"  # the key of its history
    assert inv.hosts["uap-a3"].password is None and inv.hosts["uap-a3"].key_file is not None
    assert {h.transport for h in inv.hosts.values()} == {"ssh", "ssh-tunnel", "tcp"}
    assert PW not in repr(inv)


def test_host_from_fields_is_checked_like_a_file_entry(tmp_path: Path) -> None:
    from mml_tool.inventory import host_from_fields

    fields = {"hostname": "127.0.0.1", "port": 2222, "username": "op", "password": "p${X}"}
    host = host_from_fields("uap-1", fields, base=tmp_path)
    assert (host.hostname, host.port) == ("127.0.0.1", 2222)
    assert host.password is not None and host.password.reveal() == "p${X}"
    with pytest.raises(InventoryError, match=r"'uap-1'.*port"):
        host_from_fields("uap-1", {**fields, "port": 70000})
    with pytest.raises(InventoryError, match=r"unknown field.*prot"):
        host_from_fields("uap-1", {**fields, "prot": 22})


@pytest.mark.parametrize("name", ["010", "on", "12:30", "1_000"])
def test_a_host_name_yaml_reads_as_no_string_says_to_quote_it(tmp_path: Path, name: str) -> None:
    """YAML 1.1 reads `010` as 8, `on` as true: the message says what to do, not only that the
    key is not a string."""
    path = tmp_path / "inv.yaml"
    path.write_text(f"hosts:\n  {name}:\n    hostname: 127.0.0.1\n", encoding="utf-8")
    with pytest.raises(InventoryError, match=r"must be a string.*quote it") as caught:
        load_inventory(path, resolve_secrets=False)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("written", ["010", "0x10", "1_000", "2024", "on"])
def test_an_inventory_name_yaml_reads_as_no_text_is_refused(tmp_path: Path, written: str) -> None:
    """`name:` keys the history: `010` read as 8 would key it as "8" and `history --key 010`
    would find nothing. A name YAML does not read as text must be quoted."""
    path = tmp_path / "inv.yaml"
    path.write_text(f"name: {written}\nhosts: {{}}\n", encoding="utf-8")
    with pytest.raises(InventoryError, match=r"field 'name'.*quote it"):
        load_inventory(path, resolve_secrets=False)
    path.write_text(f'name: "{written}"\nhosts: {{}}\n', encoding="utf-8")
    assert load_inventory(path, resolve_secrets=False).name == written
