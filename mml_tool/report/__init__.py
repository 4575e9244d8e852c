"""Reports from a run: JSON (stable schema), JUnit XML, Markdown for a change ticket, terminal.

The JSON layout is documented in docs/report-schema.md; within one ``schema_version`` fields
are only ever added, never renamed or removed.

    model.py     Report, RunInfo, Outcome; what every format shares
    json.py junit.py markdown.py terminal.py   one module per format
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mml_tool._io import write_text_atomic
from mml_tool.errors import ConfigError
from mml_tool.report.model import SCHEMA_VERSION as SCHEMA_VERSION
from mml_tool.report.model import STATUSES as STATUSES
from mml_tool.report.model import Outcome as Outcome
from mml_tool.report.model import Report as Report
from mml_tool.report.model import RunInfo as RunInfo
from mml_tool.report.model import gateway_results as gateway_results
from mml_tool.report.model import natural_key as natural_key
from mml_tool.report.model import summary as summary
from mml_tool.report.model import tls_verification as tls_verification
from mml_tool.report.terminal import render_table as render_table
from mml_tool.results import exit_code_for as exit_code_for  # decided in results

if TYPE_CHECKING:
    from mml_tool.report.json import json_schema as json_schema
    from mml_tool.report.json import to_dict as to_dict
    from mml_tool.report.json import to_json as to_json
    from mml_tool.report.junit import to_junit as to_junit
    from mml_tool.report.markdown import to_markdown as to_markdown

# The writers load on first use: a `check` that writes no report file (the common case, and
# a fleet check's start-up time) does not import JSON Schema, XML and Markdown writers.
_LAZY = {
    "json_schema": "json",
    "to_dict": "json",
    "to_json": "json",
    "to_junit": "junit",
    "to_markdown": "markdown",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"mml_tool.report.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


STDOUT = "-"  # --report FORMAT:- writes that report to standard output


def _lazy(name: str) -> Callable[[Report], str]:
    """The writer ``name`` of ``_LAZY``, imported when it first renders."""

    def render(report: Report) -> str:
        writer: Callable[[Report], str] = __getattr__(name)
        return writer(report)

    return render


RENDERERS: Mapping[str, Callable[[Report], str]] = {
    "json": _lazy("to_json"),
    "junit": _lazy("to_junit"),
    "md": _lazy("to_markdown"),
}


def parse_report_targets(spec: str) -> list[tuple[str, Path]]:
    """``json:PATH,junit:PATH,md:PATH`` -> [(format, path), ...]; PATH ``-`` is stdout.

    Strict, because it is checked before anything is sent and a typo must not cost a report
    after the change: no spaces, no empty item, a known format, each path once, and at most
    one report on stdout. Paths cannot contain ','."""
    accepted = ", ".join(RENDERERS)
    example = "(example: json:out/report.json,junit:out/junit.xml, or json:- for stdout)"
    if not spec:
        raise ConfigError(f"--report is empty; give FORMAT:PATH items with FORMAT in {accepted}")
    if any(c.isspace() for c in spec):
        raise ConfigError(
            f"--report {spec!r} holds a space; give FORMAT:PATH items separated by ',' only "
            + example
        )
    targets: list[tuple[str, Path]] = []
    for item in spec.split(","):
        fmt, sep, path = item.partition(":")
        if not item or not sep or fmt.lower() not in RENDERERS or not path:
            what = f"item {item!r}" if item else "an empty item (a stray ',')"
            raise ConfigError(
                f"--report {spec!r}: {what} is not FORMAT:PATH with FORMAT one of {accepted} "
                + example
            )
        target = Path(path).expanduser() if path != STDOUT else Path(STDOUT)
        if any(target == seen for _, seen in targets):
            where = "standard output" if path == STDOUT else path
            raise ConfigError(f"--report names {where} twice; give each format its own file")
        targets.append((fmt.lower(), target))
    return targets


def to_stdout(targets: Iterable[tuple[str, Path]]) -> bool:
    """Whether one of the targets is standard output (then nothing else may go there)."""
    return any(str(path) == STDOUT for _, path in targets)


def write_reports(report: Report, targets: Iterable[tuple[str, Path]]) -> None:
    """Render and write each target; a file is either complete or untouched, never partial."""
    for fmt, path in targets:
        text = RENDERERS[fmt](report)
        if str(path) == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
            continue
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the {fmt} report {path}: {exc.strerror or exc}; "
                "choose a writable path with --report"
            ) from exc
