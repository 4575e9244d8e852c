"""Real-world fidelity: GB18030 and Chinese paging over SSH and TCP, the software-parameter
templates' hex and bit-base rules, and the simulator's settings for both."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TRANSPORTS, RunningLab, StartLab

from mml_tool.errors import ConfigError, InventoryError, ParseError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import load_lab_config
from mml_tool.lab.uap import NodeConfig
from mml_tool.mml.command import MmlCommand, quoted
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output
from mml_tool.policy import bit_from_records, parameter_state

TEMPLATES = Path(__file__).parent / "templates"
PARAMS = {f"P{i:03d}": i for i in range(1, 8)} | {"P978": 0b101}


@pytest.fixture(scope="module")
def zh(start_lab: StartLab) -> RunningLab:
    def node(name: str, encoding: str, paging: str, layout: str) -> NodeConfig:
        return NodeConfig(
            name, language="zh", params=PARAMS, page_size=3, encoding=encoding, paging=paging,
            layout=layout,
        )  # fmt: skip

    return start_lab(
        [
            node("gb-bare", "gb18030", "zh-bare", "table"),
            node("gb-value", "gb18030", "zh", "value"),
            node("utf-zh", "utf-8", "zh", "vertical"),
            NodeConfig("gb-name", ne_name="华为-UAP", encoding="gb18030", language="zh"),
        ]
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("node", ["gb-bare", "gb-value", "utf-zh"])
@pytest.mark.parametrize("encoding", ["auto", "gb18030"])
def test_chinese_paged_list_is_read_whole(
    zh: RunningLab, node: str, transport: str, encoding: str
) -> None:
    if encoding == "gb18030" and node == "utf-zh":
        encoding = "utf-8"
    host = zh.host(node, transport, encoding=encoding, ne_name=None)
    with MmlSession(host) as session:
        response = session.run("LST SFP:;")
        response.raise_for_retcode()
        assert len(response.reports) == 3  # 8 parameters, 3 per page
        assert response.reports[-1].total == 3 and response.reports[0].continued
        if node == "gb-bare":
            assert [r.raw.lstrip().startswith("+++") for r in response.reports] == [
                True,
                False,
                False,
            ]
            assert [r.ne for r in response.reports] == ["GB-BARE"] * 3  # inherited
        records = parse_output("LST SFP:;", response.raw, host.platform)
        per_bit = "0=1,1=0,2=1,3=0,4=0,5=0,6=0,7=0,8=0,9=0,10=0,11=0,12=0,13=0,14=0,15=0"
        assert parameter_state(records, "P978") in ("value=5", per_bit)
        assert bit_from_records(records, "P978", 0) == 1
        assert bit_from_records(records, "P978", 1) == 0
        assert {r["ID"] for r in records} == set(PARAMS)
        one = session.run(MmlCommand.parse("LST SFP: ID=P978;")).raise_for_retcode()
        assert one.message == "操作成功"


@pytest.mark.parametrize("transport", ["ssh", "tcp"])
def test_auto_switches_to_gb18030_for_sending_too(zh: RunningLab, transport: str) -> None:
    host = zh.host("gb-name", transport, encoding="auto", ne_name=None)
    with MmlSession(host) as session:  # LGI's reply is GB18030: auto sends GB18030 from then on
        session.run(MmlCommand.create("REG", "NE", NAME=quoted("华为-UAP"))).raise_for_retcode()
    wrong = zh.host("gb-name", transport, encoding="utf-8", ne_name=None)
    with MmlSession(wrong) as session:
        reply = session.run(MmlCommand.create("REG", "NE", NAME=quoted("华为-UAP")))
        assert reply.retcode == 1009  # UTF-8 bytes read as GB18030: another name


def test_utf8_setting_on_a_gb18030_element_fails_loudly(zh: RunningLab) -> None:
    host = zh.host("gb-bare", "tcp", encoding="utf-8", ne_name=None)
    with MmlSession(host) as session, pytest.raises(ParseError, match=r"line \d+: '\(\ufffd"):
        session.run("LST SFP: ID=P978;")  # the count line is unreadable: never a guess


def test_inventory_encoding(tmp_path: Path) -> None:
    def inventory(encoding: object) -> Path:
        path = tmp_path / "inv.yaml"
        path.write_text(
            "hosts:\n  uap-1:\n    hostname: 127.0.0.1\n    username: u\n    password: p\n"
            f"    encoding: {encoding}\n",
            encoding="utf-8",
        )
        return path

    assert load_inventory(inventory("GB18030")).hosts["uap-1"].encoding == "gb18030"
    assert load_inventory(inventory("gbk")).hosts["uap-1"].encoding == "gb18030"
    path = inventory("auto").read_text(encoding="utf-8").replace("    encoding: auto\n", "")
    (tmp_path / "inv.yaml").write_text(path, encoding="utf-8")
    assert load_inventory(tmp_path / "inv.yaml").hosts["uap-1"].encoding == "auto"
    with pytest.raises(InventoryError, match=r"uap-1.*'encoding'.*latin-1.*auto, utf-8, gb18030"):
        load_inventory(inventory("latin-1"))


def test_lab_config_encoding_and_paging(tmp_path: Path) -> None:
    path = tmp_path / "LAB.yaml"
    path.write_text(
        "nodes:\n  uap-1: {language: zh, encoding: gb18030, paging: zh-bare}\n", encoding="utf-8"
    )
    (node,) = load_lab_config(path)
    assert (node.encoding, node.paging) == ("gb18030", "zh-bare")
    path.write_text("nodes:\n  uap-1: {encoding: latin-1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"uap-1.*encoding must be one of utf-8, gb18030"):
        load_lab_config(path)
    path.write_text("nodes:\n  uap-1: {paging: fr}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="paging must be one of en, zh, zh-bare"):
        load_lab_config(path)


# -- templates: hex with decimal, sibling labels, bit bases ------------------------------------

VALUE = """\
+++    UAP-1        2026-03-02 10:20:40
O&M    #1047
%%LST SFP: ID=P978;%%
RETCODE = 0  Operation succeeded

Software parameter
------------------
   Parameter ID  =  P978
Parameter value  =  {value}
{extra}(Number of results = 1)

---    END
"""


@pytest.mark.parametrize(
    ("value", "extra", "line"),
    [
        ("0x0005(4)", "", 9),
        ("0x0010(10)", "", 9),
        ("5", "      Hex value  =  0x0006\n", 10),
        ("5", "      Hex value  =  6h\n", 10),
    ],
)
def test_hex_and_decimal_must_agree(value: str, extra: str, line: int) -> None:
    with pytest.raises(ParseError, match=f"line {line} of the reply: P978 is .* must agree"):
        parse_output("LST SFP: ID=P978;", VALUE.format(value=value, extra=extra))


@pytest.mark.parametrize(
    ("value", "extra", "hex_text"),
    [("0x0005(5)", "", "0x0005"), ("5", "      Hex value  =  5h\n", "5h"), ("12", "", "")],
)
def test_hex_and_decimal_agree(value: str, extra: str, hex_text: str) -> None:
    (record,) = parse_output("LST SFP: ID=P978;", VALUE.format(value=value, extra=extra))
    assert (record["VALUE"], record["HEX"]) == (value.split("(")[-1].rstrip(")"), hex_text)


def test_uap_template_refuses_a_bit_position_of_unknown_base() -> None:
    text = VALUE.format(value="0", extra="").replace(
        "Parameter value  =  0\n", "  软参BIT位位置  =  1\n软件参数比特位的值  =  0\n"
    )
    with pytest.raises(ParseError, match=r"line 9 .*base this template does not know"):
        parse_output("LST SFP: ID=P978;", text)


def test_bit_from_1_is_read_only_where_a_template_states_it() -> None:
    raw = (TEMPLATES / "huawei_udg" / "lst_softparaofbit" / "udg_reference_bit.raw").read_text(
        encoding="utf-8"
    )
    records = parse_output("LST SOFTPARAOFBIT: DT=BYTE, PARANUM=1, POSITION=1;", raw, "huawei_udg")
    assert records == [{"TYPE": "BYTE", "ID": "1", "BIT_FROM_1": "1", "BIT_VALUE": "0"}]
    assert bit_from_records(records, "1", 0) == 0  # position 1 is bit 0
    with pytest.raises(ParseError, match="bit 1 is not in the reply"):
        bit_from_records(records, "1", 1)
    assert parameter_state(records, "1") == "0=0"
    with pytest.raises(ParseError, match="both BIT and BIT_FROM_1"):
        bit_from_records([{"ID": "1", "BIT": "0", "BIT_FROM_1": "1", "BIT_VALUE": "0"}], "1", 0)
    with pytest.raises(ParseError, match="positions start at 1"):
        bit_from_records([{"ID": "1", "BIT_FROM_1": "0", "BIT_VALUE": "0"}], "1", 0)


# -- the session on real replies that the simulator does not print ------------------------------


class ScriptedTransport:
    """Replays canned bytes in small chunks: the public samples as an element would send them
    (the simulator prints neither progress reports nor manual layouts)."""

    def __init__(self, replies: list[bytes], chunk: int = 7) -> None:
        self.data = [r[i : i + chunk] for r in replies for i in range(0, len(r), chunk)]
        self.written: list[bytes] = []

    def open(self) -> None: ...

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def read(self, deadline: float) -> bytes:
        return self.data.pop(0) if self.data else b""

    def close(self) -> None: ...


def _ok(echo: str = 'LGI: OP="admin", PWD="x";') -> bytes:
    return (
        f"+++    CSP        2026-01-01 00:00:00\r\nO&M    #1\r\n%%{echo}%%\r\n"
        "RETCODE = 0  操作成功\r\n\r\n---    END\r\n"
    ).encode("gb18030")


@pytest.mark.parametrize(
    ("sample", "command", "records"),
    [
        ("csp_clr_activealarm_progress_reports.txt", "CLR ACTIVEALARM: MEID=0, SNO=663;", 1),
        ("unc_dsp_offload_3reports_3space_end.txt", "DSP OFFLOAD:;", 3),
    ],
)
def test_session_reads_progress_reports_and_headerless_pages(
    zh: RunningLab, sample: str, command: str, records: int
) -> None:
    text = (Path(__file__).parent / "samples" / "mml" / sample).read_text(encoding="utf-8")
    host = zh.host("gb-bare", "tcp", ne_name=None, timeout=5)
    transport = ScriptedTransport(
        [_ok(), text.replace("\n", "\r\n").encode("gb18030"), _ok("LGO:;")]
    )
    with MmlSession(host, transport=transport) as session:
        response = session.run(command).raise_for_retcode()
        assert session.encoding == "gb18030" and not session.stale
    assert response.complete and len(response.records) == records
    assert len(response.reports) == 3


def test_session_waits_for_the_final_report_after_99999(zh: RunningLab) -> None:
    def rep(retcode: str, body: str) -> bytes:
        return (
            "+++    CSP        2026-01-01 00:00:00\r\nO&M    #2\r\n%%DSP TASK:;%%\r\n"
            f"RETCODE = {retcode}\r\n\r\n{body}---    END\r\n"
        ).encode("gb18030")

    progress = rep("99999  实时上报成功", "进度报告\r\n--------\r\n已完成 = 50%\r\n\r\n")
    final = rep("0  执行成功", "结果\r\n----\r\n状态  =  完成\r\n(结果个数 = 1)\r\n\r\n")
    host = zh.host("gb-bare", "tcp", ne_name=None, timeout=5)
    with MmlSession(
        host, transport=ScriptedTransport([_ok(), progress, final, _ok("LGO:;")])
    ) as session:
        response = session.run("DSP TASK:;").raise_for_retcode()
    assert [r.retcode for r in response.reports] == [99999, 0]
    assert response.records == [{"状态": "完成"}]


SINGLE = (TEMPLATES / "huawei_uap9600" / "lst_sfp" / "vertical_single_bit.raw").read_text(
    encoding="utf-8"
)
HEAD = "+++    UAP/*MEID:5 MENAME:UAP-3*/        2026-03-02 10:19:30+08:00\nO&M    #5021\n"
PROGRESS = (
    "+++    UAP-3\nO&M    #5021\n%%LST SFP: ID=P978, BIT=0;%%\nRETCODE = 99999  实时上报成功\n\n"
    "进度报告\n--------\n已完成 = 50%\n(结果个数 = 1)\n\n---    END\n"
)


@pytest.mark.parametrize(
    "text",
    [
        SINGLE.replace(HEAD, "+++    UAP-3\nO&M   #HWHandle=174\n"),
        SINGLE.replace(
            HEAD, "+++     NMS SERVER        2026-03-02 10:19:30\nO&M     #2304\n" + HEAD
        ),
        SINGLE.replace("LST SFP: ID=P978, BIT=0;%%", "LST SFP: ID=P978,\n BIT=0;%%"),
        SINGLE.replace(HEAD, "").replace("(Number of results = 1)", "（结果个数 = 1）"),
        "".join("  " + line for line in SINGLE.replace("---    END", "---   END").splitlines(True)),
        PROGRESS + SINGLE,
        "LST SFP: ID=P978, BIT=0;\nUAP-3\n" + SINGLE,
    ],
    ids=["no-time", "nms-pair", "wrapped-echo", "no-header", "manual", "progress", "terminal"],
)
def test_the_builtin_template_reads_the_frame_variants(text: str) -> None:
    from mml_tool.capture import parse_capture

    parsed = parse_capture(text)
    assert parsed.command == "LST SFP: ID=P978, BIT=0;"  # from the echo, prefix dropped
    assert parsed.records == [{"ID": "P978", "BIT": "0", "BIT_VALUE": "0", "VALUE": "", "HEX": ""}]


def test_a_value_printed_in_hex_alone_is_read_as_hex() -> None:
    records = parse_output("LST SFP: ID=P978;", VALUE.format(value="0x0005", extra=""))
    assert records == [{"ID": "P978", "BIT": "", "BIT_VALUE": "", "VALUE": "", "HEX": "0x0005"}]
    assert [bit_from_records(records, "P978", b) for b in (0, 1, 2)] == [1, 0, 1]
    assert parameter_state(records, "P978") == "value=5"
    with pytest.raises(ParseError, match="line 9 of the reply could not be read"):
        parse_output("LST SFP: ID=P978;", VALUE.format(value="0005h", extra=""))  # which base?


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"ID": "P978", "VALUE": "²"}, "not a decimal number"),
        ({"ID": "P978", "VALUE": "9" * 30}, "not a decimal number"),
        ({"ID": "P978", "HEX": "0xZZ"}, "not a hexadecimal number"),
        ({"ID": "P978", "BIT": "٣", "BIT_VALUE": "1"}, "not a decimal number"),
    ],
)
def test_odd_digits_are_parse_errors(record: dict[str, str], error: str) -> None:
    with pytest.raises(ParseError, match=error):
        bit_from_records([record], "P978", 0)


def test_a_user_templates_hex_that_is_no_number_is_a_parse_error(tmp_path: Path) -> None:
    (tmp_path / "index").write_text(
        "Template, Hostname, Platform, Command\n\nt.textfsm, .*, huawei_uap9600, LST SFP\n",
        encoding="utf-8",
    )
    (tmp_path / "t.textfsm").write_text(
        "Value VALUE (\\S+)\nValue HEX (\\S+)\n\nStart\n"
        "  ^\\s*Parameter value\\s*=\\s*${VALUE}\\s*$$\n  ^\\s*Hex value\\s*=\\s*${HEX}\\s*$$\n"
        "  ^.*\n",
        encoding="utf-8",
    )
    text = VALUE.format(value="5", extra="      Hex value  =  0xGG\n")
    with pytest.raises(ParseError, match=r"line 10 .* must agree"):
        parse_output("LST SFP: ID=P978;", text, template_dirs=[tmp_path])


def test_session_reads_nms_pair_handle_serial_and_terminal_preamble(zh: RunningLab) -> None:
    reply = (
        b"UAP-3\r\n"  # the element's name, printed by a terminal before the report
        b"+++     NMS SERVER        2026-03-02 10:19:30\r\nO&M     #2304\r\n"
        b"+++    UAP-3\r\nO&M   #HWHandle=174\r\n%%LST SFP: ID=P978, BIT=0;%%\r\n"
        b"RETCODE = 0  Operation succeeded\r\n\r\nSoftware parameter\r\n------------------\r\n"
        b"Parameter ID  =  P978\r\n         Bit  =  0\r\n   Bit value  =  1\r\n"
        b"(Number of results = 1)\r\n\r\n---    END\r\n"
    )
    host = zh.host("gb-bare", "tcp", ne_name=None, timeout=5)
    transport = ScriptedTransport([_ok(), reply, _ok("LGO:;")])
    with MmlSession(host, transport=transport) as session:
        response = session.run("LST SFP: ID=P978, BIT=0;").raise_for_retcode()
    (report,) = response.reports
    assert (report.ne, report.nms, report.serial, report.serial_text) == (
        "UAP-3",
        "NMS SERVER #2304",
        None,
        "HWHandle=174",
    )
    records = parse_output("LST SFP: ID=P978, BIT=0;", response.text)
    assert bit_from_records(records, "P978", 0) == 1
