"""Big check tables are printed without rich's per-cell layout, and look exactly the same."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

from mml_tool.fasttable import print_table
from mml_tool.policy import Finding
from mml_tool.report import Report, RunInfo, render_table
from mml_tool.report import terminal as report_mod


def finding(i: int, status: str, actual: str | None = "P978 bit 0 = 1") -> Finding:
    return Finding(
        host=f"uap-{i}",
        control_id="UAP-SFP-P978-B0",
        status=status,
        expected="P978 bit 0 = 0",
        actual=actual,
        evidence="",
        remediation=[],
        rollback=[],
        error="could not connect" if status == "error" else None,
        waiver_reason="ticket 7" if status == "waived" else None,
        before_bit_value=None,
        title="one-way video",
        severity="high",
    )


def fleet(count: int, actual: str | None = "P978 bit 0 = 1") -> Report:
    statuses = ("pass", "fail", "error", "waived")
    findings = [finding(i, statuses[i % 4], actual) for i in range(count)]
    return Report(RunInfo("check", "", "uap9600-[b]one-way[/b]", "x", None, "", "", ""), findings)


def rendered(report: Report, fast: bool, **console_args: object) -> list[tuple[str, str]]:
    """What the terminal shows: each character with its style (rich may split a styled run
    into several escape sequences; that does not show)."""
    out = io.StringIO()
    console = Console(file=out, **console_args)  # type: ignore[arg-type]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_mod, "FAST_TABLE_ROWS", 0 if fast else 10**9)
        render_table(report, console)
    text = Text.from_ansi(out.getvalue())
    return [(ch, str(text.get_style_at_offset(console, i))) for i, ch in enumerate(text.plain)]


@pytest.mark.parametrize(
    "console_args",
    [{"width": 80}, {"width": 200}, {"width": 80, "force_terminal": True}],
)
def test_the_fast_table_is_rich_s_table(console_args: dict[str, object]) -> None:
    report = fleet(120)
    fast = rendered(report, True, **console_args)
    assert fast == rendered(report, False, **console_args)
    console = Console(file=io.StringIO(), **console_args)  # type: ignore[arg-type]
    assert print_table(console, "t", "c", ["host"], [[Text("uap-1")]])  # the fast path is taken
    plain = "".join(ch for ch, _ in fast)
    assert "uap-119" in plain and "30 pass, 30 fail, 30 error, 30 waived" in plain


@pytest.mark.parametrize(
    ("actual", "width"),
    [("x" * 100, 80), ("two\nlines", 80), ("P978 bit 0 = 1", 40)],
)
def test_what_the_fast_table_cannot_do_goes_to_rich(actual: str, width: int) -> None:
    report = fleet(60, actual)
    if width == 80:  # one cell is enough to refuse
        assert not print_table(
            Console(file=io.StringIO(), width=80), "t", "c", ["a"], [[Text(actual)]]
        )
    assert rendered(report, True, width=width) == rendered(report, False, width=width)
