"""Template samples and meta-tests (ntc-templates conventions).

Samples live in tests/templates/<platform>/<command>/<name>.raw with the expected records in
<name>.yml (``parsed_sample:`` list of dicts, every Value as a string). A template
``<platform>_<command>.textfsm`` must have at least one sample directory of that name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import textfsm
import yaml
from textfsm import clitable

from mml_tool.mml.encoding import decode
from mml_tool.parsing import builtin_templates_dir, parse_output, read_index

SAMPLES = Path(__file__).parent / "templates"
TEMPLATES = builtin_templates_dir()
RAW_FILES = sorted(SAMPLES.glob("*/*/*.raw"))


def _read(path: Path) -> str:
    # Bytes as on the wire (CRLF kept), decoded as mml-tool does: UTF-8, else GB18030.
    return decode(path.read_bytes(), "auto")[0]


def _command(raw_file: Path) -> str:
    return raw_file.parent.name.replace("_", " ").upper() + ":;"


def _expected(raw_file: Path) -> list[dict[str, str]]:
    data = yaml.safe_load(raw_file.with_suffix(".yml").read_text(encoding="utf-8"))
    records: list[dict[str, str]] = data["parsed_sample"]
    return records


def _fsm(name: str) -> textfsm.TextFSM:
    with (TEMPLATES / name).open(encoding="utf-8") as handle:
        return textfsm.TextFSM(handle)


@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("raw_file", RAW_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample(raw_file: Path, line_end: str) -> None:
    raw = line_end.join(_read(raw_file).splitlines()) + line_end
    platform = raw_file.parent.parent.name
    assert parse_output(_command(raw_file), raw, platform) == _expected(raw_file)


def test_samples_cover_both_line_endings_on_disk() -> None:
    texts = [_read(p) for p in RAW_FILES]
    assert any("\r\n" in t for t in texts)
    assert any("\r\n" not in t for t in texts)


def test_every_raw_has_yml_and_every_yml_has_raw() -> None:
    raws = {p.with_suffix("") for p in RAW_FILES}
    ymls = {p.with_suffix("") for p in SAMPLES.glob("*/*/*.yml")}
    assert raws == ymls


@pytest.mark.parametrize("raw_file", RAW_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_sample_states_its_provenance(raw_file: Path) -> None:
    readme = raw_file.parent / "README.md"
    assert readme.is_file(), (
        f"{raw_file.parent}: add a README.md saying where the samples come from"
    )
    assert f"`{raw_file.stem}" in readme.read_text(encoding="utf-8"), (
        f"{raw_file.name}: not in README"
    )


def test_every_index_entry_has_samples() -> None:
    for entry in read_index(TEMPLATES):
        assert entry.template.is_file(), entry.template
        platform = entry.platform.pattern
        command = entry.template.stem.removeprefix(f"{platform}_")
        samples = list((SAMPLES / platform / command).glob("*.raw"))
        assert samples, f"{entry.template.name}: add samples under tests/templates/{platform}/"


def test_every_template_file_is_in_the_index() -> None:
    listed = {entry.template.name for entry in read_index(TEMPLATES)}
    assert {p.name for p in TEMPLATES.glob("*.textfsm")} == listed


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.textfsm")))
def test_template_values_upper_case_and_states_end_in_error(name: str) -> None:
    fsm = _fsm(name)
    for value in fsm.values:
        assert value.name == value.name.upper(), f"{name}: Value {value.name} is not UPPERCASE"
    for state, rules in fsm.states.items():
        last = rules[-1]
        assert (last.match, last.line_op) == ("^.*", "Error"), f"{name}: state {state}"


@pytest.mark.parametrize("raw_file", RAW_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_yml_lists_every_value_as_a_string(raw_file: Path) -> None:
    header = _fsm(f"{raw_file.parent.parent.name}_{raw_file.parent.name}.textfsm").header
    for record in _expected(raw_file):
        assert list(record) == header
        assert all(isinstance(v, str) for v in record.values())


def test_clitable_reads_the_index_as_it_is() -> None:
    raw = _read(SAMPLES / "huawei_uap9600" / "lst_sfp" / "table_en.raw")
    table = clitable.CliTable("index", str(TEMPLATES))
    table.ParseCmd(raw, {"Command": "LST SFP: ID=P978;", "Platform": "huawei_uap9600"})
    assert list(table.header) == ["ID", "BIT", "BIT_VALUE", "VALUE", "HEX"]
    rows = [list(row.values) for row in table]
    assert rows[0] == ["P978", "0", "1", "", ""]
    assert len(rows) == 4


@pytest.mark.parametrize(
    "line",
    [
        "Parameter name  =  VIDEO_SWITCH",  # a field the template does not know
        "Some other title",
        "P978  0  1  extra",
    ],
)
def test_unknown_line_fails_loudly(line: str) -> None:
    raw = _read(SAMPLES / "huawei_uap9600" / "lst_sfp" / "vertical_en.raw")
    raw = raw.replace("         Bit  =  1\n", f"         Bit  =  1\n{line}\n")
    assert line in raw  # the sample still has the anchor line: the test parses what it says
    with pytest.raises(textfsm.TextFSMError):
        _fsm("huawei_uap9600_lst_sfp.textfsm").ParseText(raw)
