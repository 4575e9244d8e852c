"""parsing.py: template lookup (user dirs first), records, and errors that say where."""

from __future__ import annotations

import os
import traceback
from fnmatch import fnmatch
from pathlib import Path

import pytest

from mml_tool.errors import ParseError
from mml_tool.parsing import (
    builtin_templates_dir,
    find_template,
    parse_output,
    template_dirs_from_env,
)

SAMPLES = Path(__file__).parent / "templates" / "huawei_uap9600" / "lst_sfp"
ROOT = Path(__file__).parent.parent
CUSTOM_TEMPLATE = """\
Value ID (\\S+)
Value VALUE (\\d+)

Start
  ^PARAM ${ID} IS ${VALUE}\\s*$$ -> Record
  ^BAD.* -> Error "the element reports a fault"
  ^\\s*$$
  ^.* -> Error
"""


def _sample(name: str) -> str:
    return (SAMPLES / f"{name}.raw").read_text(encoding="utf-8")


def _user_dir(tmp_path: Path, command: str = "LST SFP", template: str = CUSTOM_TEMPLATE) -> Path:
    (tmp_path / "index").write_text(
        f"Template, Hostname, Platform, Command\n\nmy_sfp.textfsm, .*, huawei_uap9600, {command}\n",
        encoding="utf-8",
    )
    (tmp_path / "my_sfp.textfsm").write_text(template, encoding="utf-8")
    return tmp_path


def test_builtin_dir_is_inside_the_package() -> None:
    assert builtin_templates_dir() == ROOT / "mml_tool" / "templates"
    assert (ROOT / "templates").resolve() == builtin_templates_dir().resolve()


@pytest.mark.parametrize(
    "command",
    ["LST SFP: ID=P978;", "LST SFP:;", "lst sfp: id=p978;", "LST   SFP:ID=P978;", "LS SF:;"],
)
def test_find_builtin_template(command: str) -> None:
    assert find_template(command).name == "huawei_uap9600_lst_sfp.textfsm"


def test_no_template_names_command_platform_and_dirs(tmp_path: Path) -> None:
    user = _user_dir(tmp_path, command="DSP NOTHING")
    with pytest.raises(ParseError) as info:
        find_template("LST SFPX: ID=P978;", "huawei_uap9600", [user])
    message = str(info.value)
    assert "LST SFPX: ID=P978;" in message
    assert "huawei_uap9600" in message
    assert str(user) in message and str(builtin_templates_dir()) in message


def test_no_template_for_other_platform() -> None:
    with pytest.raises(ParseError, match="'huawei_msoftx3000'"):
        parse_output("LST SFP: ID=P978;", _sample("table_en"), "huawei_msoftx3000")


def test_user_template_dir_wins(tmp_path: Path) -> None:
    user = _user_dir(tmp_path)
    assert find_template("LST SFP: ID=P978;", template_dirs=[user]) == user / "my_sfp.textfsm"
    records = parse_output("LST SFP: ID=P978;", "PARAM P978 IS 6\n", template_dirs=[user])
    assert records == [{"ID": "P978", "VALUE": "6"}]


def test_user_dir_without_a_matching_row_falls_back_to_builtin(tmp_path: Path) -> None:
    user = _user_dir(tmp_path, command="DSP OTHER")
    records = parse_output("LST SFP: ID=P978;", _sample("value_zh"), template_dirs=[user])
    assert records == [{"ID": "P978", "BIT": "", "BIT_VALUE": "", "VALUE": "0", "HEX": ""}]


def test_user_dir_without_index_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="has no index file"):
        find_template("LST SFP:;", template_dirs=[tmp_path])


def test_index_row_naming_a_missing_template(tmp_path: Path) -> None:
    user = _user_dir(tmp_path)
    (user / "my_sfp.textfsm").unlink()
    with pytest.raises(ParseError, match=r"names my_sfp\.textfsm, which does not exist"):
        find_template("LST SFP:;", template_dirs=[user])


def test_invalid_template(tmp_path: Path) -> None:
    user = _user_dir(tmp_path, template="Value ID (\\S+\n\nStart\n  ^.* -> Error\n")
    with pytest.raises(ParseError, match=r"my_sfp\.textfsm: the template is invalid"):
        parse_output("LST SFP:;", "x\n", template_dirs=[user])


def test_template_dirs_from_env(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    env = {"MML_TOOL_TEMPLATES": f"{a}{os.pathsep}{b}{os.pathsep}"}
    assert template_dirs_from_env(env) == [a, b]
    assert template_dirs_from_env({}) == []


def test_env_dirs_reach_parse_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MML_TOOL_TEMPLATES", str(_user_dir(tmp_path)))
    records = parse_output(
        "LST SFP:;", "PARAM P1 IS 2\n", template_dirs=template_dirs_from_env(os.environ)
    )
    assert records == [{"ID": "P1", "VALUE": "2"}]


def test_rejected_reply_names_template_and_line() -> None:
    raw = _sample("vertical_en").replace("   Bit value  =  0\n", "  Bit status  =  off\n")
    with pytest.raises(ParseError) as info:
        parse_output("LST SFP: ID=P978;", raw)
    message = str(info.value)
    assert "huawei_uap9600_lst_sfp.textfsm" in message
    assert "line 17 " in message
    assert "'  Bit status  =  off'" in message


def test_rejected_blank_sensitive_line_number_with_crlf() -> None:
    raw = (
        _sample("table_en").replace("P978          2    0", "P978          2").replace("\n", "\r\n")
    )
    with pytest.raises(ParseError, match=r"line 12 .*'P978          2'"):
        parse_output("LST SFP: ID=P978;", raw)


def test_rejected_line_is_masked() -> None:
    raw = _sample("table_en").replace("%%LST SFP: ID=P978;%%", 'LGI: OP="admin", PWD="s3cret";')
    with pytest.raises(ParseError) as info:
        parse_output("LST SFP: ID=P978;", raw)
    assert "s3cret" not in "".join(traceback.format_exception(info.value))  # chain included
    assert "line 3 " in str(info.value) and "*****" in str(info.value)


def test_error_rule_message_is_reported(tmp_path: Path) -> None:
    user = _user_dir(tmp_path)
    with pytest.raises(ParseError, match=r"line 2 .*the element reports a fault.*'BAD news'"):
        parse_output("LST SFP:;", "PARAM P1 IS 2\nBAD news\n", template_dirs=[user])


def test_retcode_failure_gives_no_records() -> None:
    assert parse_output("LST SFP: ID=P999;", _sample("retcode_failure")) == []


def test_package_data_ships_templates_and_policies() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["mml_tool"]
    package = ROOT / "mml_tool"
    for folder in ("templates", "policies"):
        for path in (package / folder).iterdir():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch(relative, p) for p in patterns), f"{relative} is not shipped"


def test_a_template_is_compiled_once_for_threads_that_come_and_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each watch round runs on a fresh pool of threads: compiled templates outlive them (the
    per-thread cache compiled the template again for nearly every host of every round), and an
    edited template is compiled again."""
    import threading

    from mml_tool import parsing

    compiled: list[Path] = []
    real = parsing._load_fsm

    def counting(template: Path) -> object:
        compiled.append(template)
        return real(template)

    monkeypatch.setattr(parsing, "_load_fsm", counting)
    user = _user_dir(tmp_path)
    raw = "PARAM P978 IS 1\n"

    def parse_in_a_new_thread() -> list[dict[str, str]]:
        out: list[list[dict[str, str]]] = []
        thread = threading.Thread(
            target=lambda: out.append(parse_output("LST SFP", raw, template_dirs=[user]))
        )
        thread.start()
        thread.join()
        return out[0]

    for _ in range(5):
        assert parse_in_a_new_thread() == [{"ID": "P978", "VALUE": "1"}]
    assert len(compiled) == 1
    (user / "my_sfp.textfsm").write_text(CUSTOM_TEMPLATE.replace("IS", "EQUALS"), "utf-8")
    assert parse_output("LST SFP", "PARAM P978 EQUALS 0\n", template_dirs=[user]) == [
        {"ID": "P978", "VALUE": "0"}
    ]
    assert len(compiled) == 2
