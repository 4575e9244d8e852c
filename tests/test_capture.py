"""`mml-tool parse` of captured replies and `mml-tool capture` from a (lab) element: the path
from a reply nobody has seen to a template, without touching code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import RunningLab, StartLab, lab_env

from mml_tool.capture import MAX_CAPTURE_BYTES
from mml_tool.cli import cli
from mml_tool.lab.uap import NodeConfig, OfficeConfig
from mml_tool.parsing import builtin_templates_dir

SAMPLES = Path(__file__).parent / "templates"
UAP = SAMPLES / "huawei_uap9600" / "lst_sfp"
MML = Path(__file__).parent / "samples" / "mml"
PARAMS = {"P001": 3, "P002": 0, "P017": 4096, "P978": 1}


def invoke(*args: object, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(
        cli, [str(a) for a in args], env={"COLUMNS": "250", **(env or {})}, input=stdin
    )


def records_of(path: Path) -> list[dict[str, str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    records: list[dict[str, str]] = data["parsed_sample"]
    return records


# -- parse --------------------------------------------------------------------------------------


def test_parse_finds_the_command_in_the_echo() -> None:
    result = invoke("parse", UAP / "value_hex_decimal.raw", "--json")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == records_of(UAP / "value_hex_decimal.yml")


def test_parse_needs_command_only_without_an_echo() -> None:
    raw = SAMPLES / "huawei_udg" / "lst_softpara" / "udg_reference_byte.raw"
    result = invoke("parse", "--platform", "huawei_udg", raw, "--json")
    assert result.exit_code == 2
    assert "no command echo" in result.output and "--command" in result.output
    result = invoke(
        "parse", "--platform", "huawei_udg", "--command", "LST SOFTPARA: DT=BYTE;", raw, "--json"
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == [{"TYPE": "字节", "ID": "1", "VALUE": "0"}]


def test_parse_refuses_a_command_the_echo_contradicts() -> None:
    result = invoke("parse", "--command", "LST SFP: ID=P979;", UAP / "value_en.raw")
    assert result.exit_code == 2
    assert "LST SFP: ID=P979;" in result.output and "echoes" in result.output


def test_parse_nonzero_retcode_exits_1_with_code_and_message() -> None:
    result = invoke("parse", UAP / "retcode_failure.raw")
    assert result.exit_code == 1
    assert "RETCODE = 20101  The software parameter does not exist." in result.output
    assert "(no records)" not in result.output


def test_parse_reads_gb18030_and_terminal_captures(tmp_path: Path) -> None:
    text = "LST SFP: ID=P978;\nUAP-1\n" + (UAP / "vertical_zh.raw").read_text(encoding="utf-8")
    gb = tmp_path / "gb.raw"
    gb.write_bytes(text.encode("gb18030"))
    expected = records_of(UAP / "vertical_zh.yml")
    for encoding in ("auto", "gb18030", "GB18030"):
        result = invoke("parse", "--encoding", encoding, gb, "--json")
        assert result.exit_code == 0, result.output
        assert yaml.safe_load(result.output) == expected
    wrong = invoke("parse", "--encoding", "utf-8", gb, "--json")
    assert wrong.exit_code == 1 and "line" in wrong.output
    stdin = invoke("parse", "-", "--json", stdin=text.encode("gb18030"))
    assert stdin.exit_code == 0 and yaml.safe_load(stdin.output) == expected


def test_parse_refuses_a_huge_capture_at_once(tmp_path: Path) -> None:
    big = tmp_path / "big.raw"
    with big.open("wb") as handle:
        handle.truncate(MAX_CAPTURE_BYTES + 1)  # sparse: cheap to make, 16 MiB + 1 to read
    result = invoke("parse", big)
    assert result.exit_code == 2
    assert "16 MiB" in result.output and "big.raw" in result.output


def test_parse_of_a_real_public_reply_without_template_names_the_command() -> None:
    result = invoke("parse", MML / "unc_dsp_paeperfmode_table.txt")
    assert result.exit_code == 1
    assert "no template for 'DSP PAEPERFMODE:;'" in result.output


# -- capture ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cap(start_lab: StartLab) -> RunningLab:
    return start_lab(
        [
            NodeConfig("uap-gb", language="zh", encoding="gb18030", paging="zh-bare",
                       page_size=3, params=PARAMS, layout="value"),
            NodeConfig("uap-en", ne_name="SITE-7 UAP", params=PARAMS),
            NodeConfig("uap-id", ne_name="SITE-9 UAP", echo_prefix="/*1879106888 MEID=5*/",
                       offices=[OfficeConfig(1, "10.20.30.40"), OfficeConfig(2, "10.20.30.41"),
                                OfficeConfig(3, "SITE-9-UAP-LINK")]),
        ]
    )  # fmt: skip


def test_capture_writes_a_template_sample(cap: RunningLab, tmp_path: Path) -> None:
    out = tmp_path / "captures"
    env = lab_env(cap.inventory_path)
    result = invoke("capture", "-i", cap.inventory_path, "uap-gb", "LST SFP:;", "-o", out, env=env)
    assert result.exit_code == 0, result.output
    (raw,) = (out / "huawei_uap9600" / "lst_sfp").glob("*.raw")
    data = raw.read_bytes()
    assert "仍有后续报告输出".encode("gb18030") in data  # the bytes as the element sent them
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    yml = yaml.safe_load(raw.with_suffix(".yml").read_text(encoding="utf-8"))
    assert (yml["command"], yml["platform"], yml["encoding"]) == (
        "LST SFP:;",
        "huawei_uap9600",
        "gb18030",
    )
    assert [r["ID"] for r in yml["parsed_sample"]] == list(PARAMS)
    assert f"`{raw.stem}`" in (raw.parent / "README.md").read_text(encoding="utf-8")
    again = invoke("parse", raw, "--json")  # the sample reads back the same
    assert again.exit_code == 0 and yaml.safe_load(again.output) == yml["parsed_sample"]
    assert env["MML_LAB_PASSWORD"].encode() not in data


def test_capture_anonymized(cap: RunningLab, tmp_path: Path) -> None:
    env = lab_env(cap.inventory_path)
    args = ("capture", "-i", cap.inventory_path, "uap-en", "LST SFP: ID=P978;", "-o", tmp_path)
    result = invoke(*args, "--anonymize", env=env)
    assert result.exit_code == 0, result.output
    (raw,) = tmp_path.glob("huawei_uap9600/lst_sfp/*.raw")
    written = "".join(p.read_text(encoding="utf-8") for p in raw.parent.iterdir())
    for secret in ("SITE-7 UAP", "uap-en", "127.0.0.1", env["MML_LAB_PASSWORD"]):
        assert secret not in written
    assert raw.name.startswith("uap-x_") and "+++    NE-X" in raw.read_text(encoding="utf-8")


# A user's template that reads the element's name, the NMS's identifier of it (the echo's
# /*...*/ prefix) and the office directions' names (here addresses) into its records.
_IDENTIFYING_TEMPLATE = """Value Filldown NE (\\S+(?: \\S+)*?)
Value Filldown ECHO (.+)
Value Required NUMBER ([0-9]+)
Value NAME (\\S+)

Start
  ^\\+\\+\\+\\s+${NE}\\s{2,}
  ^%%${ECHO}%%
  ^\\s*${NUMBER}\\s{2,}${NAME}\\s{2,} -> Record
"""


def test_capture_anonymizes_the_records_too(cap: RunningLab, tmp_path: Path) -> None:
    mine = tmp_path / "my-templates"
    mine.mkdir()
    (mine / "index").write_text(
        "Template, Hostname, Platform, Command\n\nmine.textfsm, .*, huawei_uap9600, LST OFI\n",
        encoding="utf-8",
    )
    (mine / "mine.textfsm").write_text(_IDENTIFYING_TEMPLATE, encoding="utf-8")
    env = lab_env(cap.inventory_path)
    out = tmp_path / "captures"
    args = ("capture", "-i", cap.inventory_path, "uap-id", "LST OFI:;", "-o", out)
    plain = invoke("--templates", mine, *args, env=env)
    assert plain.exit_code == 0, plain.output
    (yml,) = out.glob("huawei_uap9600/lst_ofi/*.yml")
    assert records_of(yml)[0]["NE"] == "SITE-9 UAP"  # the template does read them
    shutil.rmtree(out)
    result = invoke("--templates", mine, *args, "--anonymize", env=env)
    assert result.exit_code == 0, result.output
    (raw,) = out.glob("huawei_uap9600/lst_ofi/*.raw")
    files = list(out.rglob("*"))
    written = "".join(p.read_text(encoding="utf-8") for p in files if p.is_file())
    originals = ["SITE-9 UAP", "uap-id", "127.0.0.1", "10.20.30.4", "1879106888", "MEID=5"]
    for original in [*originals, env["MML_LAB_PASSWORD"]]:
        assert original not in written and original not in "".join(map(str, files))
    records = records_of(raw.with_suffix(".yml"))
    assert [r["NUMBER"] for r in records] == ["1", "2", "3"]
    # The same pseudonyms as in the .raw: the sample still reads back to its records; two
    # addresses stay two addresses.
    again = invoke("--templates", mine, "parse", raw, "--json")
    assert again.exit_code == 0, again.output
    assert yaml.safe_load(again.output) == records
    names = [r["NAME"] for r in records]
    assert len(set(names)) == 3 and names[2] == "SITE-9-UAP-LINK"
    assert all(r["NE"] == "NE-X" for r in records)


def test_capture_refuses_writes_before_connecting(cap: RunningLab, tmp_path: Path) -> None:
    before = cap.lab.node("uap-en").store.snapshot()
    result = invoke(
        "capture", "-i", cap.inventory_path, "uap-en",
        "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;", "-o", tmp_path,
        env=lab_env(cap.inventory_path),
    )  # fmt: skip
    assert result.exit_code == 2 and "read-only" in result.output
    assert cap.lab.node("uap-en").store.snapshot() == before and not any(tmp_path.iterdir())


def test_capture_into_a_file_as_folder_is_a_usage_error(cap: RunningLab, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("", encoding="utf-8")
    result = invoke(
        "capture", "-i", cap.inventory_path, "uap-en", "LST SFP:;", "-o", tmp_path / "afile" / "c",
        env=lab_env(cap.inventory_path),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "afile" in result.output and "not a folder" in result.output


def test_from_capture_to_a_users_template(cap: RunningLab, tmp_path: Path) -> None:
    """The README's path: a reply the templates cannot read, captured, then a template in the
    user's own folder with its own index, checked with parse, used with --templates."""
    mine = tmp_path / "my-templates"
    mine.mkdir()
    (mine / "index").write_text(
        "Template, Hostname, Platform, Command\n\n"
        "my_lst_sfp.textfsm, .*, huawei_uap9600, LST SFP\n",
        encoding="utf-8",
    )
    strict = "Value ID (\\S+)\n\nStart\n  ^\\+\\+\\+\n  ^.* -> Error\n"
    (mine / "my_lst_sfp.textfsm").write_text(strict, encoding="utf-8")
    env = lab_env(cap.inventory_path)
    args = ("capture", "-i", cap.inventory_path, "uap-en", "LST SFP: ID=P978;", "-o", tmp_path)
    result = invoke("--templates", mine, *args, env=env)
    assert result.exit_code == 1
    assert "could not read" in result.output and "line 2" in result.output
    (raw,) = tmp_path.glob("huawei_uap9600/lst_sfp/*.raw")
    yml = yaml.safe_load(raw.with_suffix(".yml").read_text(encoding="utf-8"))
    assert "line 2" in yml["parse_error"] and "parsed_sample" not in yml
    shutil.copy(
        builtin_templates_dir() / "huawei_uap9600_lst_sfp.textfsm", mine / "my_lst_sfp.textfsm"
    )
    fixed = invoke("--templates", mine, "parse", raw, "--json")
    assert fixed.exit_code == 0, fixed.output
    assert [r["ID"] for r in yaml.safe_load(fixed.output)] == ["P978"] * 16
    check = invoke(
        "--templates", mine, "check", "-i", cap.inventory_path, "--limit", "uap-en", env=env
    )
    assert check.exit_code == 100, check.output  # P978 bit 0 is 1: non-compliant, read by mine


def test_parse_refuses_a_capture_of_several_commands(tmp_path: Path) -> None:
    login = (
        '+++    UAP-1        2026-03-02 10:20:40\nO&M    #1\n%%LGI: OP="admin", PWD="*****";%%\n'
        "RETCODE = 0  Operation succeeded\n\n---    END\n"
    )
    session = tmp_path / "session.txt"
    session.write_text(login + (UAP / "value_en.raw").read_text(encoding="utf-8"), encoding="utf-8")
    result = invoke("parse", session)
    assert result.exit_code == 2
    assert "several commands" in result.output and "LST SFP: ID=P978;" in result.output
