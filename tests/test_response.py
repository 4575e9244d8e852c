"""Reply frames: the public samples, the SFP layouts, paging, autonomous reports, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mml_tool.errors import ParseError, RetcodeError
from mml_tool.mml.command import MmlCommand, quoted
from mml_tool.mml.response import END_RE, echo_matches, parse_report, parse_response

MSOFTX = """\
+++    MSOFTX/*MEID:5 MENAME:SCCGTMSS01*/        2026-02-11 20:27:39+03:00
O&M    #63447
%%/*1879106888 MEID=005*/LST RT:RN="QOA_RT_TATA ",SSR=YES,QR=LOCAL;%%
RETCODE = 0  Operation succeeded

Basic parameter
---------------
              Route name  =  QOA_RT_TATA
             Server name  =  SCC
            Route Number  =  206
(Number of results = 1)

Select sub-route 1 by percentage
--------------------------------
               Route name  =  QOA_RT_TATA
Percentage of sub-route 1  =  100
(Number of results = 1)

---    END
"""

BSC_MESSAGE = (
    "Cabinet No., Subrack No., and Slot No. must be specified for SingleRAN BTSs or BTS3012 "
    "series that support numbering normalization of cabinet, subrack, and slot."
)
BSC = f"""\
+++    HUAWEI        2016-10-21 08:33:17 DST
O&M    #25245049
%%241299DSP BTSETHPORT: IDTYPE=BYID,BTSID=547,SN=6,SRN=0;%%
RETCODE = 235670946  {BSC_MESSAGE}

---    END
"""

UNC_TABLE = """\
+++    UNC/*MEID:0 MENAME:unc*/        2023-05-17 10:36:41+8:00
O&M    #7521
%%LST DNNTAISSP:;%%
RETCODE = 0  Operation succeeded

The result is as follows
------------------------
DNN网络标识  MCC  MNC  跟踪区起始编码  跟踪区结束编码  服务范围

BEIJING.CY   460  03   000800          000999          pudong:puxi
HUAWEI.COM   460  03   000112          000700          puxi:pudong
(结果个数 = 2)

---    END
"""

UNC_ADD = """\
+++    UNC/*MEID:0 MENAME:UNC_VNF_ncg001*/        2022-06-11 15:10:05+8:00
O&M    #3544
%%ADD CDFTOKENWEIGHT: PODNAME="cgfb-pod-0", TOKENWEIGHT=50, CONFIRM=Y;%%
RETCODE = 0  操作成功

---    END
"""


def frame(body: str, serial: int = 7, echo: str = "LST SFP: ID=P978;", tail: str = "") -> str:
    return (
        f"+++    UAP-1        2024-03-01 10:00:00\nO&M    #{serial}\n%%{echo}%%\n"
        f"RETCODE = 0  Operation succeeded\n\n{body}\n{tail}---    END\n"
    )


SFP_TABLE = """\
Software parameter
------------------
Parameter ID  Bit  Bit value

P978          0    1
P978          1    0
(Number of results = 2)
"""

SFP_VERTICAL = """\
Software parameter
------------------
Parameter ID  =  P978
         Bit  =  0
   Bit value  =  1
(Number of results = 1)
"""

SFP_VALUE = """\
Software parameter
------------------
   Parameter ID  =  P978
Parameter value  =  1
(Number of results = 1)
"""


def test_msoftx_vertical() -> None:
    resp = parse_response(MSOFTX)
    (rep,) = resp.reports
    assert rep.ne == "MSOFTX/*MEID:5 MENAME:SCCGTMSS01*/"
    assert rep.timestamp == "2026-02-11 20:27:39+03:00"
    assert (rep.kind, rep.serial, rep.autonomous) == ("O&M", 63447, False)
    assert rep.echo == '/*1879106888 MEID=005*/LST RT:RN="QOA_RT_TATA ",SSR=YES,QR=LOCAL;'
    assert (rep.retcode, rep.message, rep.continued, rep.empty_text) == (
        0,
        "Operation succeeded",
        False,
        "",
    )
    assert [b.title for b in rep.blocks] == ["Basic parameter", "Select sub-route 1 by percentage"]
    assert [(b.layout, b.count) for b in rep.blocks] == [("vertical", 1), ("vertical", 1)]
    assert resp.records == [
        {"Route name": "QOA_RT_TATA", "Server name": "SCC", "Route Number": "206"},
        {"Route name": "QOA_RT_TATA", "Percentage of sub-route 1": "100"},
    ]
    assert resp.ok and not resp.failed
    resp.raise_for_retcode()
    cmd = MmlCommand.create("LST", "RT", RN=quoted("QOA_RT_TATA "), SSR="YES", QR="LOCAL")
    assert echo_matches(rep.echo, cmd.render())


def test_bsc_failure() -> None:
    resp = parse_response(BSC.replace("\n", "\r\n"))
    rep = resp.reports[0]
    assert (rep.ne, rep.timestamp, rep.serial) == ("HUAWEI", "2016-10-21 08:33:17 DST", 25245049)
    assert rep.echo == "241299DSP BTSETHPORT: IDTYPE=BYID,BTSID=547,SN=6,SRN=0;"
    assert echo_matches(rep.echo, "DSP BTSETHPORT: IDTYPE=BYID, BTSID=547, SN=6, SRN=0;")
    assert not echo_matches(rep.echo, "DSP BTSETHPORT: IDTYPE=BYID, BTSID=547, SN=6, SRN=1;")
    assert (resp.retcode, resp.message) == (235670946, BSC_MESSAGE)
    assert resp.failed and rep.blocks == [] and resp.records == []
    resp.command, resp.host = "DSP BTSETHPORT: ...;", "bsc-1"
    with pytest.raises(RetcodeError) as info:
        resp.raise_for_retcode()
    err = info.value
    assert (err.code, err.message, err.host) == (235670946, BSC_MESSAGE, "bsc-1")
    assert "bsc-1" in str(err) and "235670946" in str(err)


def test_unc_chinese_table() -> None:
    rep = parse_report(UNC_TABLE)
    assert (rep.ne, rep.timestamp, rep.serial, rep.echo) == (
        "UNC/*MEID:0 MENAME:unc*/",
        "2023-05-17 10:36:41+8:00",
        7521,
        "LST DNNTAISSP:;",
    )
    (block,) = rep.blocks
    assert (block.title, block.layout, block.count) == ("The result is as follows", "table", 2)
    assert block.records[0] == {
        "DNN网络标识": "BEIJING.CY",
        "MCC": "460",
        "MNC": "03",
        "跟踪区起始编码": "000800",
        "跟踪区结束编码": "000999",
        "服务范围": "pudong:puxi",
    }
    assert block.records[1]["服务范围"] == "puxi:pudong"


def test_unc_add_without_body() -> None:
    resp = parse_response(UNC_ADD)
    assert (resp.retcode, resp.message, resp.blocks) == (0, "操作成功", [])
    assert resp.reports[0].ne == "UNC/*MEID:0 MENAME:UNC_VNF_ncg001*/"
    assert echo_matches(
        resp.reports[0].echo, 'ADD CDFTOKENWEIGHT: PODNAME="cgfb-pod-0", TOKENWEIGHT=50, CONFIRM=Y;'
    )


@pytest.mark.parametrize(
    ("body", "layout", "records"),
    [
        (
            SFP_TABLE,
            "table",
            [
                {"Parameter ID": "P978", "Bit": "0", "Bit value": "1"},
                {"Parameter ID": "P978", "Bit": "1", "Bit value": "0"},
            ],
        ),
        (SFP_VERTICAL, "vertical", [{"Parameter ID": "P978", "Bit": "0", "Bit value": "1"}]),
        (SFP_VALUE, "vertical", [{"Parameter ID": "P978", "Parameter value": "1"}]),
    ],
)
def test_sfp_layouts(body: str, layout: str, records: list[dict[str, str]]) -> None:
    resp = parse_response(frame(body))
    (block,) = resp.blocks
    assert (block.title, block.layout, block.count) == ("Software parameter", layout, len(records))
    assert resp.records == records


def test_vertical_blocks_per_bit_and_records_split() -> None:
    body = SFP_VERTICAL + "\n" + SFP_VERTICAL.replace("=  0", "=  1").replace("=  1\n(", "=  0\n(")
    resp = parse_response(frame(body))
    assert [r["Bit"] for r in resp.records] == ["0", "1"]
    two = "T\n-\n A  =  1\n B  =  \n\n A  =  2\n B  =  x y\n(Number of results = 2)\n"
    (block,) = parse_response(frame(two)).blocks
    assert block.records == [{"A": "1", "B": ""}, {"A": "2", "B": "x y"}]


def test_paged_response_and_reports_in_total() -> None:
    page1 = frame(SFP_TABLE, serial=8, tail="To be continued...\n\n")
    page2 = frame(SFP_TABLE.replace("P978", "P979"), serial=9)
    resp = parse_response(page1 + "\n" + page2 + "2 reports in total\n")
    assert [r.continued for r in resp.reports] == [True, False]
    assert [r.serial for r in resp.reports] == [8, 9]
    assert len(resp.blocks) == 2
    assert [r["Parameter ID"] for r in resp.records] == ["P978", "P978", "P979", "P979"]
    with pytest.raises(ParseError, match="one report"):
        parse_report(page1 + page2)


def test_autonomous_report_set_aside() -> None:
    alarm = (
        "+++    UAP-1        2024-03-01 10:00:01\n"
        "ALARM  #123     Fault     Major     Device\n"
        "     Alarm name  =  Board fault\n"
        "  Weird text without structure\n"
        "---    END\n"
    )
    resp = parse_response(alarm + frame(SFP_VALUE))
    first, answer = resp.reports
    assert (first.kind, first.serial, first.autonomous, first.retcode) == ("ALARM", 123, True, None)
    assert "Board fault" in first.raw
    assert not answer.autonomous
    assert resp.retcode == 0 and resp.records[0]["Parameter value"] == "1"
    only_alarm = parse_response(alarm)
    assert only_alarm.retcode is None and only_alarm.failed
    with pytest.raises(ParseError, match="no O&M report"):
        only_alarm.raise_for_retcode()
    framed = alarm.replace("  Weird text without structure\n", "   Location  =  Slot=3, Port=1\n\n")
    (block,) = parse_report(framed).blocks
    assert (block.title, block.layout, block.count) == ("", "vertical", None)
    assert block.records == [{"Alarm name": "Board fault", "Location": "Slot=3, Port=1"}]
    event = parse_report("+++    X        2024-03-01 10:00:01\nEVENT\n---    END\n")
    assert (event.kind, event.serial, event.serial_text, event.blocks) == ("EVENT", None, "", [])


def test_empty_results_and_blocks_without_count() -> None:
    resp = parse_response(frame("No matching result is found\n"))
    assert resp.blocks == [] and resp.reports[0].empty_text == "No matching result is found"
    under = parse_response(frame("Software parameter\n------------------\nNo matching result\n"))
    assert under.blocks[0].layout == "empty" and under.records == []
    assert under.reports[0].empty_text == "No matching result"
    no_count = "A\n-\nX  =  1\n\nB\n-\nH1  H2\n\nv 1  v2\n"
    blocks = parse_response(frame(no_count)).blocks
    assert [(b.title, b.layout, b.count) for b in blocks] == [
        ("A", "vertical", None),
        ("B", "table", None),
    ]
    assert blocks[1].records == [{"H1": "v 1", "H2": "v2"}]
    zero = parse_response(frame("T\n-\n(Number of results = 0)\n")).blocks[0]
    assert (zero.layout, zero.count, zero.records) == ("empty", 0, [])
    wide = parse_response(frame("结果\n----\nA  =  1\n")).blocks[0]
    assert wide.title == "结果" and wide.records == [{"A": "1"}]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "'+++'"),
        ("hello\n", "report header"),
        (MSOFTX.replace("---    END\n", ""), "'---    END'"),
        (MSOFTX.replace("RETCODE = 0", "RETCODE = x"), "number after 'RETCODE ='"),
        (MSOFTX.replace("RETCODE = 0  Operation succeeded\n", ""), "RETCODE"),
        (MSOFTX.replace("O&M    #63447", "O&M"), "O&M"),
        (MSOFTX.replace("%%/*", "/*"), "echo"),
        (MSOFTX.replace("2026-02-11 20:27:39", "yesterday"), "+++"),
        (MSOFTX.replace("---------------\n", "----\n", 1), "dashes under the title"),
        (UNC_TABLE.replace("000999  ", "", 1), "6 columns"),
        (MSOFTX + MSOFTX.replace("---    END\n", ""), "'---    END'"),
        (MSOFTX.replace("---    END", "") + MSOFTX, "before the next report"),
    ],
)
def test_malformed(text: str, needle: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_response(text)
    assert needle in str(info.value)


def test_error_lines_are_masked_and_truncated() -> None:
    bad = frame("T\n-\nA  B\n\n" + 'PWD="s3cret"  x' + " y" * 200 + "  z\n")
    with pytest.raises(ParseError) as info:
        parse_response(bad)
    assert "s3cret" not in str(info.value) and len(str(info.value)) < 250


def test_end_re_and_echo_matches() -> None:
    assert END_RE.search("x\n---    END\n") and END_RE.search("---\tEND  ")
    assert not END_RE.search("---END")
    assert echo_matches('LGI:OP="u",PWD="secret";', 'LGI: OP="u", PWD="*****";')
    assert echo_matches('LGI:OP="u",PWD=******;', 'LGI: OP="u", PWD="*****";')  # bare mask
    assert not echo_matches('LGI:OP="v",PWD="secret";', 'LGI: OP="u", PWD="*****";')
    assert echo_matches("/*1 MEID=5*/ lst sfp: id=p978;", "LST SFP: ID=P978;")
    assert not echo_matches("MOD SFP: ID=P978;", "LST SFP: ID=P978;")
    assert not echo_matches("XLST SFP: ID=P978;", "LST SFP: ID=P978;")


SAMPLES = [MSOFTX, BSC, UNC_TABLE, UNC_ADD, frame(SFP_TABLE), frame(SFP_VERTICAL)]


def _parse_only_parse_error(text: str) -> None:
    try:
        parse_response(text)
    except ParseError as exc:
        assert len(str(exc)) < 400


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_parse_error(text: str) -> None:
    _parse_only_parse_error(text)
    _parse_only_parse_error("+++    X        2024-03-01 10:00:00\n" + text + "\n---    END\n")


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.lists(
        st.tuples(
            st.floats(0, 1),
            st.integers(0, 12),
            st.sampled_from(["", " ", "  ", "\n", "\r\n", "-", "=", "%%", "#", "(", ")", "\x00"])
            | st.text(max_size=6),
        ),
        max_size=6,
    ),
)
def test_mutated_frames_raise_only_parse_error(
    sample: str, edits: list[tuple[float, int, str]]
) -> None:
    text = sample
    for where, cut, insert in edits:
        pos = int(where * len(text))
        text = text[:pos] + insert + text[pos + cut :]
    _parse_only_parse_error(text)


@pytest.mark.parametrize(
    ("echo", "sent", "same"),
    [
        (
            "241299DSP BTSETHPORT: IDTYPE=BYID,BTSID=547;",
            "DSP BTSETHPORT: IDTYPE=BYID, BTSID=547;",
            True,
        ),
        ('/*1879106888 MEID=005*/LST RT:RN="QOA_RT_TATA ";', 'LST RT: RN="QOA_RT_TATA ";', True),
        ("123/*c*/LST SFP: ID=P978;", "LST SFP: ID=P978;", True),
        ('LGI:OP="admin",PWD=*****;', 'LGI: OP="admin", PWD="secret";', True),
        # Only a leading prefix is skipped, and quoted text must match exactly.
        ('REG NE: NAME="a/*x*/b";', 'REG NE: NAME="ab";', False),
        ('REG NE: NAME="X ";', 'REG NE: NAME="x";', False),
        ("XLST SFP: ID=P978;", "LST SFP: ID=P978;", False),
        ("LST SFP: ID=P979;", "LST SFP: ID=P978;", False),
    ],
)
def test_echo_matching_is_exact_but_for_prefix_spacing_and_case(
    echo: str, sent: str, same: bool
) -> None:
    assert echo_matches(echo, sent) is same


# --- the one-pattern reader of simple reports agrees with the general reader ---------------

_SPACE = st.sampled_from(["", " ", "  ", "\t", "\u3000"])
_EOL = st.sampled_from(["\r\n", "\n", "\r\r\n", "\r", "  \r\n"])


@st.composite
def _simple_frames(draw: st.DrawFn) -> str:
    """Replies shaped like (and around) a report with an empty body: header with or without a
    time (or a DST one), a serial, an echo, a RETCODE with or without text, blank lines, END;
    with indentation, CR CR LF and lone CRs, an NMS pair, a stray body line or an echo that
    does not close, which the general reader must take over."""
    eol, pad = draw(_EOL), draw(_SPACE)
    ne = draw(st.sampled_from(["UAP-1", "UAP 1", "华为-UAP", "NE_9"]))
    when = draw(st.sampled_from(["", "2026-11-30 12:23:53", "2026-03-29 02:30:00 DST"]))
    head = f"{pad}+++    {ne}" + (f"        {when}" if when else "") + draw(_SPACE) + eol
    if draw(st.booleans()) and draw(st.booleans()):
        head = f"+++    NMS-1        2026-11-30 12:00:00{eol}O&M    #7{eol}" + head
    serial = draw(st.sampled_from(["#14890", "#0123", "#HWHandle=174", "12"]))
    echo = draw(st.sampled_from(['LGI: OP="admin", PWD="*****";', "LGO:;", 'REG NE: NAME="a%%b";']))
    close = draw(st.sampled_from(["%%", "%%", "%"]))
    retcode = draw(st.sampled_from(["0  Operation succeeded", "0", "1009  Not found", "x  bad"]))
    body = draw(st.sampled_from(["", eol, eol + eol, f"{eol}No matching result is found{eol}"]))
    return (
        f"{head}{pad}O&M    {serial}{eol}{pad}%%{echo}{close}{eol}{pad}RETCODE = {retcode}"
        f"{draw(_SPACE)}{eol}{body}{pad}---    END{draw(_SPACE)}{draw(st.sampled_from([eol, '']))}"
    )


@settings(max_examples=400)
@given(_simple_frames())
def test_simple_reports_read_alike_by_both_readers(text: str) -> None:
    from mml_tool.mml.reports import _lines, _parse_lines

    def general() -> object:
        reports = _parse_lines(_lines(text))
        if len(reports) != 1:
            raise ParseError(f"MML reply: expected one report, found {len(reports)}")
        return reports[0]

    try:
        expected: object = general()
    except ParseError as exc:
        expected = ("ParseError", str(exc))
    try:
        got: object = parse_report(text)
    except ParseError as exc:
        got = ("ParseError", str(exc))
    assert got == expected


@pytest.mark.parametrize("indent", ["    ", "\t", "\u3000", "\u3000\u3000"])
def test_an_evenly_indented_reply_reads_as_the_plain_one(indent: str) -> None:
    """Manual excerpts indent every line alike, with spaces, tabs or a full-width space
    (U+3000, in Chinese documents): the common indentation is not part of the reply."""
    plain = (
        "+++    UAP-1        2026-11-30 12:23:53\nO&M    #7\n%%LST SFP: ID=P978;%%\n"
        "RETCODE = 0  Operation succeeded\n\nSoftware parameter\n------------------\n"
        "Parameter ID  Bit  Bit value\n\nP978          0    1\n\n---    END\n"
    )
    indented = "".join(indent + line if line else line for line in plain.splitlines(True))
    want, got = parse_report(plain), parse_report(indented)
    assert got.blocks == want.blocks and got.retcode == 0 and got.ne == "UAP-1"
