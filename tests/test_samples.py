"""The frame parser against real public MML replies (tests/samples/mml, provenance in its
README) and against every variant reference/mml-protocol.md lists under "Variants seen in real
replies": strict about meaning, liberal about layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mml_tool.errors import ParseError, RetcodeError
from mml_tool.mml.encoding import decode
from mml_tool.mml.response import echo_matches, parse_report, parse_response

SAMPLES = Path(__file__).parent / "samples" / "mml"
FILES = sorted(SAMPLES.glob("*.txt"))


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def test_every_sample_is_here_and_documented() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert len(FILES) == 12
    for path in FILES:
        assert f"`{path.name}`" in readme, f"{path.name}: add its provenance to the README"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_every_sample_reads_in_both_encodings_and_line_ends(
    path: Path, encoding: str, line_end: str
) -> None:
    text = path.read_text(encoding="utf-8")
    data = text.replace("\n", line_end).encode(encoding)
    decoded, used = decode(data, "auto")
    assert used == ("utf-8" if encoding == "utf-8" or text.isascii() else "gb18030")
    response = parse_response(decoded)
    assert response.ok and response.complete and response.retcode == 0
    assert response.records or path.stem.startswith("unc_stp")


def test_csp_progress_reports_with_one_serial() -> None:
    response = parse_response(sample("csp_clr_activealarm_progress_reports.txt"))
    assert [r.serial for r in response.reports] == [3883, 3883, 3883]
    assert [r.ne for r in response.reports] == ["CSP/*MEID:0 MENAME:superom07-v4*/"] * 3
    assert [r.progress for r in response.reports] == [True, True, False]
    assert response.records == [{"已完成": "100%"}]  # the final report's; progress aside
    assert response.blocks[0].title == "进度报告" and response.message == "操作成功"
    first = sample("csp_clr_activealarm_progress_reports.txt").split("\n\n+++")[0]
    assert not parse_response(first).complete  # 0% done: the final report is still to come
    assert echo_matches(response.reports[0].echo, "CLR ACTIVEALARM: MEID=0, SNO=663;")


def test_enodeb_table_cells_with_single_spaces_and_request_tag() -> None:
    (report,) = parse_response(sample("enodeb_dsp_clksrc_nms.txt")).reports
    assert report.ne == "HS4570_42J_哈香坊水利工程局-H5H(华为)"
    assert (report.serial, report.timestamp) == (56485, "2020-10-27 15:10:38")
    assert echo_matches(report.echo, "DSP CLKSRC:;") and report.message == "执行成功"
    (block,) = report.blocks
    assert (block.title, block.layout, block.count) == ("查询参考时钟源状态", "table", 3)
    assert [r["参考时钟源类型"] for r in block.records] == ["GPS Clock", "IP Clock", "Peer Clock"]
    assert block.records[2] == {
        "参考时钟源编号": "0",
        "参考时钟源类型": "Peer Clock",
        "参考时钟源优先级": "4",
        "参考时钟源状态": "不可用",
        "参考时钟源激活状态": "未激活",
        "许可授权": "未受限",
    }


def test_enodeb_gps_labels_with_digits_and_parentheses() -> None:
    response = parse_response(sample("enodeb_dsp_gps_nms.txt"))
    (record,) = response.records
    assert len(record) == 18
    assert record["天线经度(1e-6度)"] == "114315833"
    assert record["GPS版本号"] == "6.02 (36023)-00040005"
    assert record["跟踪的GLONASS卫星数目"] == "0"


def test_udg_no_header_tabs_and_single_space_field() -> None:
    (report,) = parse_response(sample("udg_dsp_rulematchctrl_tabs_nested_kv.txt")).reports
    assert (report.ne, report.serial, report.echo, report.retcode) == ("", None, "", 0)
    assert report.blocks[0].records == [
        {
            "Match Control Type": "policy infomation",
            "Rule Matching Control Plane Information Installation Status": "done",
            "Rule matching result": "The result is as follows",
            "Userprofile1": "userprofile_test",
        }
    ]


def test_udg_softpara_untitled_block_without_blank_lines() -> None:
    response = parse_response(sample("udg_lst_softpara_byte.txt"))
    (block,) = response.blocks
    assert (block.title, block.layout, block.count) == ("", "vertical", 1)
    assert block.records == [{"软参记录数据类型": "字节", "软参记录索引": "1", "软参记录值": "0"}]
    assert response.message == "操作成功。"


def test_udg_softparaofbit_keeps_the_printed_position() -> None:
    (record,) = parse_response(sample("udg_lst_softparaofbit.txt")).records
    assert record["软参BIT位位置"] == "1"  # as printed: its base is the template's to state


def test_unc_offload_pages_without_header_three_space_end() -> None:
    response = parse_response(sample("unc_dsp_offload_3reports_3space_end.txt"))
    assert [r.continued for r in response.reports] == [True, True, False]
    assert [r.total for r in response.reports] == [None, None, 3]
    assert [r.echo for r in response.reports] == ["DSP OFFLOAD:;"] * 3  # inherited
    assert [r.retcode for r in response.reports] == [0, 0, 0]
    assert [b.count for b in response.blocks] == [None, None, 3]
    assert [len(r) for r in response.records] == [5, 4, 3]
    assert response.records[1]["已经卸载用户数"] == "0"  # trailing tabs dropped
    assert response.ok and response.message == "执行成功。"


def test_unc_kv_plus8_indented() -> None:
    (report,) = parse_response(sample("unc_lst_dnntaissp_kv_tz_plus8.txt")).reports
    assert report.timestamp == "2023-05-17 10:36:34+8:00" and report.serial == 7520
    assert report.blocks[0].title == "输出结果如下"  # under a rule longer than the title
    assert report.blocks[0].records[0]["服务范围"] == "puxi:pudong"


def test_unc_table_and_mixed_language() -> None:
    perf = parse_response(sample("unc_dsp_paeperfmode_table.txt"))
    assert len(perf.records) == 5 and perf.records[4]["Pod类型"] == "lbpod"
    mixed = parse_response(sample("unc_lst_dnntaissp_mixed_language_table.txt"))
    assert [r["DNN网络标识"] for r in mixed.records] == ["BEIJING.CY", "HUAWEI.COM"]
    assert mixed.blocks[0].count == 2


def test_unc_softpara_hex_value_kept_as_printed() -> None:
    response = parse_response(sample("unc_lst_softpara_byte.txt"))
    assert response.blocks[0].title == "查询软件参数表"
    assert response.records == [{"参数类型": "单字节类型", "参数索引": "1", "参数值": "0x00(0)"}]


def test_unc_meid_header_without_body() -> None:
    response = parse_response(sample("unc_stp_paefabdetect_meid_header.txt"))
    assert response.reports[0].ne == "UNC/*MEID:0 MENAME:UNC_z30062954_X86_20241226_1001*/"
    assert response.blocks == [] and response.ok


# -- variants the reference lists that no sample file shows ------------------------------------

BODY = "Software parameter\n------------------\nParameter ID  =  P978\n   Bit value  =  1\n"


def report(
    *,
    header: str = "+++    UAP-1        2024-03-01 10:00:00\nO&M    #7\n",
    echo: str = "%%LST SFP: ID=P978;%%\n",
    retcode: str = "RETCODE = 0  Operation succeeded\n",
    body: str = BODY + "(Number of results = 1)\n",
    tail: str = "",
    end: str = "---    END\n",
) -> str:
    return f"{header}{echo}{retcode}\n{body}\n{tail}{end}"


def test_header_without_time_and_non_numeric_serial() -> None:
    text = report(header="+++    UAP-1\nO&M   #HWHandle=174\n")
    (rep,) = parse_response(text).reports
    assert (rep.ne, rep.timestamp, rep.serial, rep.serial_text) == (
        "UAP-1",
        "",
        None,
        "HWHandle=174",
    )
    assert parse_response(text).records == [{"Parameter ID": "P978", "Bit value": "1"}]


@pytest.mark.parametrize("serial", ["²", "١٢", "9" * 21, "HWHandle=174"])
def test_serials_that_are_not_plain_numbers_are_kept_as_text(serial: str) -> None:
    (rep,) = parse_response(report(header=f"+++    UAP-1\nO&M    #{serial}\n")).reports
    assert (rep.serial, rep.serial_text) == (None, serial)


def test_nms_header_pair_before_the_elements() -> None:
    nms = "+++     NMS SERVER        2024-03-01 10:00:00\nO&M     #2304\n"
    (rep,) = parse_response(
        report(header=nms + "+++    UAP-1        2024-03-01 10:00:00+8:00\nO&M    #7\n")
    ).reports
    assert (rep.ne, rep.serial, rep.timestamp, rep.nms) == (
        "UAP-1",
        7,
        "2024-03-01 10:00:00+8:00",
        "NMS SERVER #2304",
    )


def test_an_alarm_never_swallows_the_next_report() -> None:
    alarm = "+++    UAP-1        2024-03-01 10:00:00\nALARM  #5  Major  Fault\n"
    with pytest.raises(ParseError, match="before the next report"):
        parse_response(alarm + report())


def test_replies_starting_at_the_echo_or_at_retcode() -> None:
    at_echo = parse_response(report(header=""))
    assert (at_echo.reports[0].ne, at_echo.reports[0].echo) == ("", "LST SFP: ID=P978;")
    at_retcode = parse_response(report(header="", echo=""))
    assert at_retcode.ok and at_retcode.records[0]["Bit value"] == "1"


@pytest.mark.parametrize("indent", ["  ", "    ", "\t"])
def test_manual_excerpt_indented_uniformly(indent: str) -> None:
    text = "".join(indent + line if line.strip() else line for line in report().splitlines(True))
    assert parse_response(text).records == parse_response(report()).records


def test_terminal_text_before_the_first_report_is_skipped() -> None:
    text = "LST SFP: ID=P978;\nUAP-1\n\n" + report()
    response = parse_response(text)
    assert response.records == [{"Parameter ID": "P978", "Bit value": "1"}]
    assert response.text.startswith("+++")


@pytest.mark.parametrize(
    "before",
    [
        "(Number of results = 1)\n---    END\n",  # the end of a report cut off at its start
        "  Bit value  =  1\n(结果个数 = 1)\n",
        "x\n" * 11,
    ],
)
def test_what_looks_like_a_cut_report_is_not_skipped(before: str) -> None:
    with pytest.raises(ParseError, match=r"line (1|2|11):"):
        parse_response(before + report())


@pytest.mark.parametrize(
    ("more", "total"),
    [
        ("仍有后续报告输出\n", "共有2个报告\n"),
        ("仍有后续报告输出...\n", "共有2个报告\n"),
        ("To be continued...\n", "2 reports in total\n"),
        ("More report continuing ...\n", "--- 2 reports in total\n"),
    ],
)
def test_paging_markers_in_both_languages(more: str, total: str) -> None:
    page2 = BODY.replace("P978", "P979")
    text = report(tail=more) + report(body=page2 + "（结果个数 = 2）\n", tail=total)
    response = parse_response(text)
    assert [r.continued for r in response.reports] == [True, False]
    assert response.reports[1].total == 2 and response.blocks[1].count == 2
    assert [r["Parameter ID"] for r in response.records] == ["P978", "P979"]
    assert response.ok


def test_later_pages_without_header_or_echo_and_no_blank_between_pages() -> None:
    first = report(tail="仍有后续报告输出\n", end="---   END\n")
    later = BODY.replace("P978", "P979") + "仍有后续报告输出\n---    END\n"
    last = BODY.replace("P978", "P980") + "(结果个数 = 3)\n共有3个报告\n---    END\n"
    response = parse_response(first + later + last)
    assert [r["Parameter ID"] for r in response.records] == ["P978", "P979", "P980"]
    assert [r.serial for r in response.reports] == [7, 7, 7]
    assert response.ok and response.message == "Operation succeeded"


def test_an_alarm_between_pages_is_set_aside() -> None:
    alarm = "+++    UAP-1        2024-03-01 10:00:00\nALARM  #5  Major\n  Name  =  x\n---    END\n"
    last = BODY + "共有2个报告\n---    END\n"
    response = parse_response(report(tail="仍有后续报告输出\n") + alarm + last)
    assert [(r.kind, r.echo, r.page) for r in response.reports] == [
        ("O&M", "LST SFP: ID=P978;", 1),
        ("ALARM", "", 1),
        ("O&M", "LST SFP: ID=P978;", 2),
    ]
    assert response.complete and len(response.records) == 2


def test_a_total_that_disagrees_with_the_pages_is_refused() -> None:
    text = report(tail="仍有后续报告输出\n") + BODY + "共有3个报告\n---    END\n"
    with pytest.raises(ParseError, match="2 report"):
        parse_response(text)


def test_a_reply_cut_after_a_continued_page_is_incomplete() -> None:
    response = parse_response(report(tail="To be continued...\n"))
    assert not response.complete and not response.ok
    with pytest.raises(ParseError, match="incomplete"):
        response.raise_for_retcode()


def test_body_without_header_after_a_final_report_is_refused() -> None:
    with pytest.raises(ParseError, match="report header"):
        parse_response(report() + BODY + "---    END\n")


def test_echo_wrapped_over_several_lines() -> None:
    echo = "%%MOD SFP: ID=P978, MODTYPE=P1,\nBIT=0, BITVAL=0;%%\n"
    rep = parse_report(report(echo=echo, body=""))
    assert echo_matches(rep.echo, "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;")
    with pytest.raises(ParseError, match="end of the command echo"):
        parse_report(report(echo="%%MOD SFP: ID=P978,\n", body=""))


def test_untitled_block_colon_title_and_uneven_equals() -> None:
    body = (
        "----------\nA = 1\n  Long name =   x y\n(Number of results = 1)\n\n结果如下：\nB  =  2\n"
    )
    blocks = parse_response(report(body=body)).blocks
    assert [(b.title, b.records) for b in blocks] == [
        ("", [{"A": "1", "Long name": "x y"}]),
        ("结果如下：", [{"B": "2"}]),
    ]


def test_table_without_blank_under_header_and_cjk_cells() -> None:
    body = "结果\n----\n名称  状态\n甲 乙  正常\nB     故障\n(结果个数 = 2)\n"
    (block,) = parse_response(report(body=body)).blocks
    assert block.records == [{"名称": "甲 乙", "状态": "正常"}, {"名称": "B", "状态": "故障"}]


def test_free_text_lines_are_the_reports_text() -> None:
    body = (
        "Ping result\n-----------\n  Sent  =  3\nReply from 10.0.0.1: bytes=56 time=1 ms\n"
        "Reply from 10.0.0.1: bytes=56 time=2 ms\n  Received  =  2\n(Number of results = 1)\n"
    )
    rep = parse_report(report(body=body))
    assert rep.blocks[0].records == [{"Sent": "3", "Received": "2"}]
    assert rep.empty_text.splitlines() == [
        "Reply from 10.0.0.1: bytes=56 time=1 ms",
        "Reply from 10.0.0.1: bytes=56 time=2 ms",
    ]
    bit = parse_report(report(body=BODY.replace("Bit value  =  1", "Bit value: 1")))
    assert bit.blocks[0].records == [{"Parameter ID": "P978"}] and bit.empty_text == "Bit value: 1"


def test_progress_reports_final_retcode_decides() -> None:
    progress = report(
        retcode="RETCODE = 99999  实时上报成功\n", body="进度报告\n--------\n已完成 = 50%\n"
    )
    ok = parse_response(progress + progress + report())
    assert [r.progress for r in ok.reports] == [True, True, False]
    assert ok.ok and ok.retcode == 0
    assert ok.records == [{"Parameter ID": "P978", "Bit value": "1"}]  # progress bodies aside
    failed = parse_response(progress + report(retcode="RETCODE = 1006  Failed\n", body=""))
    assert failed.retcode == 1006 and failed.failed
    with pytest.raises(RetcodeError):
        failed.raise_for_retcode()
    cut = parse_response(progress)
    assert not cut.ok
    with pytest.raises(ParseError, match="RETCODE 99999"):
        cut.raise_for_retcode()


def test_a_reply_must_still_carry_a_retcode() -> None:
    with pytest.raises(ParseError, match="RETCODE"):
        parse_response(report(retcode=""))
    with pytest.raises(ParseError, match="report header"):
        parse_response(BODY + "---    END\n")  # no header, echo or RETCODE: whose reply?


TEXTS = [p.read_text(encoding="utf-8") for p in FILES]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(TEXTS),
    st.lists(
        st.tuples(
            st.floats(0, 1),
            st.integers(0, 12),
            st.sampled_from(
                ["", " ", "  ", "\n", "\t", "-", "=", "%%", "（", "）", "仍有后续报告输出\n"]
            )
            | st.text(max_size=6),
        ),
        max_size=6,
    ),
)
def test_mutated_public_samples_raise_only_parse_error(
    text: str, edits: list[tuple[float, int, str]]
) -> None:
    for where, cut, insert in edits:
        pos = int(where * len(text))
        text = text[:pos] + insert + text[pos + cut :]
    try:
        response = parse_response(text)
        response.raise_for_retcode()
    except (ParseError, RetcodeError) as exc:
        assert len(str(exc)) < 600
