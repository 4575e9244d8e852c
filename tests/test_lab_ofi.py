"""The lab's LST OFI (office directions): per-node data from LAB.yaml, read end to end by the
real client and the shipped template, in both languages; bad settings named in our words."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import StartLab

from mml_tool.errors import ConfigError, ParseError
from mml_tool.lab.config import load_lab_config
from mml_tool.lab.uap import NodeConfig, OfficeConfig
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output

LAB_YAML = """\
nodes:
  ofi-en:
    offices:
      - {number: 3, name: TO-CCGW-3, max_calls: 60}
      - {number: 1, name: TO-SIP-1, peer_type: SIP, max_calls: 30, status: faulty}
  ofi-zh:
    language: zh
    encoding: gb18030
  ofi-none:
    offices: []
"""


def _read(start_lab: StartLab, tmp_path: Path, command: str = "LST OFI:;") -> dict[str, list]:
    path = tmp_path / "LAB.yaml"
    path.write_text(LAB_YAML, encoding="utf-8")
    running = start_lab(load_lab_config(path))
    out = {}
    for name in ("ofi-en", "ofi-zh", "ofi-none"):
        with MmlSession(running.host(name, "tcp")) as session:
            response = session.run(command).raise_for_retcode()
            out[name] = parse_output(command, response.text, "huawei_uap9600")
    return out


def test_offices_from_lab_yaml_read_by_the_template(start_lab: StartLab, tmp_path: Path) -> None:
    records = _read(start_lab, tmp_path)
    assert records["ofi-en"] == [  # ordered by number, defaults filled in
        {"NUMBER": "1", "NAME": "TO-SIP-1", "PEER_TYPE": "SIP", "MAX_CALLS": "30",
         "STATUS": "Faulty"},
        {"NUMBER": "3", "NAME": "TO-CCGW-3", "PEER_TYPE": "CCGW", "MAX_CALLS": "60",
         "STATUS": "Normal"},
    ]  # fmt: skip
    assert [(r["NAME"], r["STATUS"]) for r in records["ofi-zh"]] == [
        ("TO-CCGW-1", "正常"),
        ("TO-CCGW-2", "正常"),
        ("TO-SOFTX-A", "正常"),
        ("TO-PSTN-GW", "闭塞"),
    ]
    assert records["ofi-none"] == []


def test_one_direction_by_number(start_lab: StartLab, tmp_path: Path) -> None:
    records = _read(start_lab, tmp_path, "LST OFI: ONO=3;")
    assert [r["NAME"] for r in records["ofi-en"]] == ["TO-CCGW-3"]
    assert records["ofi-zh"] == []  # the default set has no direction 3


def test_a_bad_number_is_a_retcode(start_lab: StartLab) -> None:
    running = start_lab([NodeConfig("ofi-bad")])
    with MmlSession(running.host("ofi-bad", "tcp")) as session:
        response = session.run("LST OFI: ONO=x;")
        assert response.retcode == 1004
        response = session.run("LST OFI: NAME=x;")
        assert response.retcode == 1005


def test_a_line_the_template_does_not_know_is_an_error() -> None:
    raw = (
        "RETCODE = 0  Operation succeeded\n\nOffice direction\n----------------\n"
        "Office direction number  Office direction name  Peer type  Maximum calls  Status\n\n"
        "1                        TO-CCGW-1              CCGW       480            Normal\n"
        "2                        TO CCGW 2\n(Number of results = 2)\n\n---    END\n"
    )
    with pytest.raises(ParseError):
        parse_output("LST OFI:;", raw, "huawei_uap9600")


@pytest.mark.parametrize(
    ("offices", "expected"),
    [
        ("[{number: 1}]", "node uap-1: offices.0.name: give number and name"),
        ("[{number: 1, name: A, state: up}]", "node uap-1: unknown field 'offices.0.state' "
         "(did you mean 'status'?)"),
        ("[{number: one, name: A}]", "node uap-1: offices.0.number must be an integer, not str"),
        ("[{number: 1, name: A, status: up}]", "status must be one of normal, blocked, faulty"),
        ("[{number: 1, name: 'A B'}]", "name must be 1..32 letters"),
        ("[{number: 1, name: A, peer_type: X}]", "peer_type must be one of CCGW"),
        ("[{number: 70000, name: A}]", "number must be in 0..65535"),
        ("[{number: 1, name: A}, {number: 1, name: B}]", "office direction 1 twice"),
        ("{number: 1}", "node uap-1: offices must be a list, not dict"),
    ],
)  # fmt: skip
def test_bad_offices_are_named(tmp_path: Path, offices: str, expected: str) -> None:
    path = tmp_path / "LAB.yaml"
    path.write_text(f"nodes:\n  uap-1: {{offices: {offices}}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_lab_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)
    assert "pydantic" not in str(info.value)


def test_offices_built_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="status must be one of"):
        NodeConfig("n", offices=[OfficeConfig(1, "A", status="up")])
