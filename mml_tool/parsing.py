"""Parse MML replies into records with TextFSM templates (ntc-templates conventions).

A template directory holds an ``index`` (columns Template, Hostname, Platform, Command) and the
``.textfsm`` files it names. User directories are searched in the order given, then the
built-in ``mml_tool/templates``; the first index row whose Platform and Command match wins, so a
user row overrides a built-in one. A reply a template cannot read is a ``ParseError`` naming the
template and the first line it rejected: never a silent fallback to raw text.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import textfsm
from textfsm import clitable

from mml_tool.errors import ParseError
from mml_tool.mml.command import mask_text

DEFAULT_PLATFORM = "huawei_uap9600"
TEMPLATES_ENV = "MML_TOOL_TEMPLATES"
INDEX_NAME = "index"
_COMPLETION_RE = re.compile(r"\[\[(.+?)\]\]")


@dataclass(frozen=True)
class IndexEntry:
    """One row of an ``index``: the template file and the patterns that select it."""

    template: Path
    platform: re.Pattern[str]
    command: re.Pattern[str]

    def matches(self, command: str, platform: str) -> bool:
        return bool(self.platform.match(platform) and self.command.match(command))


@functools.cache  # the package does not move during a run; a fleet check asks once per host
def builtin_templates_dir() -> Path:
    """The templates shipped inside the package (works from a plain wheel install)."""
    resource = resources.files("mml_tool").joinpath("templates")
    if not isinstance(resource, Path):
        raise ParseError(
            f"the built-in templates are not on the file system ({resource}); "
            "install mml-tool as a regular (unzipped) package"
        )
    return resource


def template_dirs_from_env(environ: Mapping[str, str]) -> list[Path]:
    """User template directories from ``MML_TOOL_TEMPLATES`` (``os.pathsep``-separated) in
    ``environ``, which the caller passes (``os.environ`` at a program's edge)."""
    value = environ.get(TEMPLATES_ENV, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def search_dirs(template_dirs: Sequence[Path] = ()) -> list[Path]:
    """The directories searched, in order: the user's first, the built-in last."""
    return [Path(d) for d in template_dirs] + [builtin_templates_dir()]


def _expand_completion(match: re.Match[str]) -> str:
    # Same expansion as textfsm.clitable: LS[[T]] -> LS(T)?, SF[[PX]] -> SF(P(X)?)?
    word = match.group(1)
    return "(" + "(".join(word) + ")?" * len(word)


def _no_compile(_key: str, _value: str) -> None:
    return None


def read_index(directory: Path) -> list[IndexEntry]:
    """Read ``directory/index`` the way ``textfsm.clitable`` does (CSV, ``#`` comments)."""
    index_path = directory / INDEX_NAME
    if not index_path.is_file():
        raise ParseError(
            f"template directory {directory} has no {INDEX_NAME} file; create one with the "
            "header 'Template, Hostname, Platform, Command' (see mml_tool/templates/index)"
        )
    try:
        # precompile -> None: keep cells as text; we compile Command ourselves (ignoring case).
        table = clitable.IndexTable(precompile=_no_compile, file_path=str(index_path)).index
    except Exception as exc:  # textfsm raises several unrelated types for a bad CSV
        raise ParseError(f"{index_path}: cannot read the index: {exc}") from exc
    missing = {"Template", "Platform", "Command"} - set(table.header)
    if missing:
        raise ParseError(f"{index_path}: the header lacks {', '.join(sorted(missing))}")
    entries = []
    for row in table:
        try:
            command = re.compile(_COMPLETION_RE.sub(_expand_completion, row["Command"]), re.I)
            platform = re.compile(row["Platform"])
        except re.error as exc:
            raise ParseError(f"{index_path}: bad pattern in row {row.row}: {exc}") from exc
        if ":" in row["Template"]:
            raise ParseError(
                f"{index_path}: row {row.row} names several templates ({row['Template']}); "
                "mml-tool takes one template per row"
            )
        entries.append(IndexEntry(directory / row["Template"].strip(), platform, command))
    return entries


class _Compiled:
    """Index rows and compiled templates, re-read only when their file changes.

    Reading the index and compiling a template cost several times more than parsing a reply;
    a fleet check parses the same command hundreds of times. A TextFSM object carries parse
    state, so a parse borrows a compiled copy no other parse holds, and gives it back: copies
    outlive the threads (a check's pool is its own).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[Path, tuple[tuple[int, int], list[IndexEntry]]] = {}
        self._free: dict[Path, tuple[tuple[int, int], list[textfsm.TextFSM]]] = {}

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        stat = path.stat()
        return stat.st_mtime_ns, stat.st_size

    def index(self, directory: Path) -> list[IndexEntry]:
        try:
            stamp = self._stamp(directory / INDEX_NAME)
        except OSError:
            return read_index(directory)  # raises the error that says what is missing
        with self._lock:
            cached = self._indexes.get(directory)
        if cached is None or cached[0] != stamp:
            cached = (stamp, read_index(directory))
            with self._lock:
                self._indexes[directory] = cached
        return cached[1]

    @contextlib.contextmanager
    def fsm(self, template: Path) -> Iterator[textfsm.TextFSM]:
        """A compiled ``template``, reset, for one parse; compiled again once the file changed."""
        try:
            stamp = self._stamp(template)
        except OSError:
            yield _load_fsm(template)
            return
        with self._lock:
            kept = self._free.get(template)
            fsm = kept[1].pop() if kept is not None and kept[0] == stamp and kept[1] else None
        if fsm is None:
            fsm = _load_fsm(template)
        fsm.Reset()
        try:
            yield fsm
        finally:
            with self._lock:
                kept = self._free.get(template)
                if kept is None or kept[0] != stamp:
                    kept = self._free[template] = (stamp, [])
                kept[1].append(fsm)


_compiled = _Compiled()


def _normalise(command: str) -> str:
    return " ".join(command.split())


def find_template(
    command: str, platform: str = DEFAULT_PLATFORM, template_dirs: Sequence[Path] = ()
) -> Path:
    """The template for ``command`` on ``platform``: first match in the user dirs, then built-in."""
    wanted = _normalise(command)
    dirs = search_dirs(template_dirs)
    for directory in dirs:
        for entry in _compiled.index(directory):
            if entry.matches(wanted, platform):
                if not entry.template.is_file():
                    raise ParseError(
                        f"{directory / INDEX_NAME} names {entry.template.name}, which does not "
                        "exist: add the template or fix the index row"
                    )
                return entry.template
    searched = ", ".join(str(d) for d in dirs)
    raise ParseError(
        f"no template for {mask_text(wanted)!r} on platform {platform!r} "
        f"(searched {searched}); add a row to the index of a directory given with "
        f"--templates or {TEMPLATES_ENV}"
    )


def _load_fsm(template: Path) -> textfsm.TextFSM:
    try:
        with template.open(encoding="utf-8") as handle:
            return textfsm.TextFSM(handle)
    except (OSError, textfsm.TextFSMTemplateError) as exc:
        raise ParseError(f"{template}: the template is invalid: {exc}") from exc


def _first_rejected_line(template: Path, raw: str) -> tuple[int, str]:
    """Re-run the template one line at a time to find the line it rejects (1-based)."""
    fsm = _load_fsm(template)
    lines = raw.splitlines()  # TextFSM splits the same way
    for number, line in enumerate(lines, start=1):
        try:
            # A trailing newline keeps an empty line from being skipped as "no text".
            fsm.ParseText(line + "\n", eof=False)
        except textfsm.TextFSMError:
            return number, line
    return len(lines), lines[-1] if lines else ""


def parse_with_template(template: Path, raw: str) -> list[dict[str, str]]:
    """Parse ``raw`` with one template; keys are the template's Value names."""
    failure: str | None = None
    with _compiled.fsm(template) as fsm:
        try:
            rows = fsm.ParseText(raw)
        except textfsm.TextFSMError as exc:
            failure = str(exc)
        header = fsm.header  # a property that builds a new list at every call
    if failure is not None:
        number, line = _first_rejected_line(template, raw)
        # An Error rule with a message ("-> Error \"why\"") says why; a bare one does not.
        why = failure.split(". Rule Line")[0].removeprefix("Error: ")
        why = "" if why.startswith("State Error") else f" ({why})"
        raise ParseError(
            f"{template.name}: line {number} of the reply could not be read{why}: "
            f"{mask_text(line)!r}. The reply differs from what {template} expects; save it "
            "as a sample and adapt or override the template (--templates)"
        ) from None  # TextFSM's own message repeats the input line unmasked
    records = []
    for row in rows:
        record = {}
        for name, value in zip(header, row, strict=True):
            if not isinstance(value, str):
                raise ParseError(
                    f"{template}: Value {name} uses the List option; mml-tool records hold "
                    "one string per Value"
                )
            record[name] = value
        records.append(record)
    _refuse_foreign_digits(template, raw, records)
    _check_hex_agrees(template, raw, records)
    return records


def _check_hex_agrees(template: Path, raw: str, records: list[dict[str, str]]) -> None:
    """A value printed both in decimal (VALUE) and in hex (HEX) must be the same number."""
    lines = raw.splitlines()
    start = 0
    for record in records:
        hex_text, value = record.get("HEX", "").strip(), record.get("VALUE", "").strip()
        if not hex_text:
            continue
        number = next((n for n in range(start, len(lines)) if hex_text in lines[n]), start)
        start = number + 1
        digits = hex_text.removeprefix("0x").removeprefix("0X").removesuffix("h").removesuffix("H")
        hex_ok = re.fullmatch(r"[0-9A-Fa-f]{1,16}", digits) is not None
        dec_ok = re.fullmatch(r"[0-9]{1,20}", value) is not None
        if value and not (hex_ok and dec_ok and int(digits, 16) == int(value)):
            shown = mask_text(lines[number]) if number < len(lines) else ""
            raise ParseError(
                f"{template.name}: line {number + 1} of the reply: {record.get('ID', '')} is "
                f"{value} in decimal but {hex_text} in hex: {shown!r}. The two must agree; "
                "check the capture or the template"
            )


def _is_foreign_number(value: str) -> bool:
    """A value made only of digits (``str.isdigit``) that are not all ASCII: ``٠``, ``０``,
    ``²``. int() reads most of them as a number; mml-tool never does."""
    if value.isascii():  # O(1) in CPython: the common case costs nothing
        return False
    text = value.strip()
    return bool(text) and not text.isascii() and all(c.isdigit() or c in "+-" for c in text)


def _refuse_foreign_digits(template: Path, raw: str, records: list[dict[str, str]]) -> None:
    """ParseError naming the line when a captured value is a number in non-ASCII digits: a
    user template's ``\\S+`` must not hand one on to be read as a value (or crash on it)."""
    if raw.isascii():  # values are cut from the reply: none can hold a non-ASCII digit
        return
    for record in records:
        for name, value in record.items():
            if not _is_foreign_number(value):
                continue
            lines = raw.splitlines()
            number, line = next(
                ((n, text) for n, text in enumerate(lines, start=1) if value.strip() in text),
                (0, ""),
            )
            where = f"line {number} of the reply" if number else "the reply"
            raise ParseError(
                f"{template.name}: {where}: {mask_text(line)!r}: {name} = {value.strip()!r} is "
                "not written in ASCII digits (0-9); mml-tool reads no other digits as numbers"
            )


def parse_output(
    command: str,
    raw: str,
    platform: str = DEFAULT_PLATFORM,
    template_dirs: Sequence[Path] = (),
) -> list[dict[str, str]]:
    """Parse the reply ``raw`` to ``command`` into records (ParseError if it cannot)."""
    return parse_with_template(find_template(command, platform, template_dirs), raw)
