"""Captured replies: read one offline (``mml-tool parse``), or capture one from a host as a
template test sample (``mml-tool capture``).

The path from a real device to a template: capture the reply a template cannot read; the
``.raw`` (the reply's bytes, secrets masked, optionally anonymised) and the ``.yml`` (what the
current templates make of it, or the parse error and its line) land in
``DIR/<platform>/<verb>_<object>/`` as in ``tests/templates``; write or adjust a template in
your own folder with its own ``index``; check it with ``mml-tool parse``; run with
``--templates``.

The ``.raw`` holds the reports as the session framed them (from the first report's first line
to the last ``---    END``, CR/LF as received), re-encoded in the encoding the element used:
what a terminal printed before a report (blank lines, the echo of the typed command) is not in
it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import yaml

from mml_tool import __version__
from mml_tool.errors import ConfigError, MmlToolError
from mml_tool.inventory import HostConfig
from mml_tool.mml.command import MmlCommand, mask_text
from mml_tool.mml.encoding import decode
from mml_tool.mml.response import MmlResponse, command_from_echo, echo_matches, parse_response
from mml_tool.mml.session import MmlSession
from mml_tool.parsing import parse_output
from mml_tool.secret import scrub

# A real reply is kilobytes; a 50 MB file once took minutes and gigabytes to refuse.
MAX_CAPTURE_BYTES = 16 * 1024 * 1024
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def read_capture(source: BinaryIO, name: str, encoding: str = "auto") -> tuple[str, str]:
    """The text of a captured reply and the encoding it was read in; ConfigError beyond
    ``MAX_CAPTURE_BYTES`` (read no further than that)."""
    data = source.read(MAX_CAPTURE_BYTES + 1)
    if len(data) > MAX_CAPTURE_BYTES:
        raise ConfigError(
            f"{name}: more than {MAX_CAPTURE_BYTES // (1024 * 1024)} MiB; a reply to one MML "
            "command is far smaller: cut the file to the reply you want to parse"
        )
    return decode(data, encoding)


@dataclass(frozen=True)
class Parsed:
    """What the frame parser and the templates make of a captured reply."""

    response: MmlResponse
    command: str  # the command the reply answers (from its echo, or as given)
    records: list[dict[str, str]]


def reply_command(response: MmlResponse, given: str | None) -> str:
    """The command ``response`` answers: from its echo, or ``given`` when it has none.

    ConfigError when neither says, or when they disagree (which template would be right?).
    """
    echoes = [r.echo for r in response.reports if not r.autonomous and r.echo]
    others = [e for e in echoes if not echo_matches(e, command_from_echo(echoes[0]))]
    if others:  # a whole session pasted: which reply is meant?
        shown = ", ".join(repr(mask_text(command_from_echo(e))) for e in (echoes[0], others[0]))
        raise ConfigError(
            f"the capture holds replies to several commands ({shown}, ...): keep the reply "
            "to one command in the file"
        )
    if given is not None:
        command = MmlCommand.parse(given).render()
        if echoes and not echo_matches(echoes[0], command):
            raise ConfigError(
                f"--command {command!r} is not the command the reply echoes "
                f"({mask_text(command_from_echo(echoes[0]))!r}): drop --command or fix it"
            )
        return command
    if not echoes:
        raise ConfigError(
            "the capture has no command echo ('%%<command>%%'): say which command it answers "
            'with --command "LST SFP: ID=P978;"'
        )
    return mask_text(command_from_echo(echoes[0]))


def parse_capture(
    text: str,
    command: str | None = None,
    platform: str = "huawei_uap9600",
    template_dirs: Sequence[Path] = (),
) -> Parsed:
    """Frame-parse ``text``, find its command, raise for its RETCODE, read it with the
    templates. ParseError / RetcodeError / ConfigError say why not."""
    response = parse_response(text)
    cmd = reply_command(response, command)
    response.command = cmd
    response.raise_for_retcode()
    return Parsed(response, cmd, parse_output(cmd, response.text, platform, template_dirs))


@dataclass(frozen=True)
class Capture:
    raw_path: Path
    yml_path: Path
    records: list[dict[str, str]] | None
    error: str | None  # why the reply could not be read (RETCODE or parse error)


_ECHO_PREFIX = re.compile(r"^(?:\s*(?:[0-9]+|/\*.*?\*/))*")  # as mml.reports reads an echo
_ECHO_COMMENT = re.compile(r"/\*.*?\*/")  # the NMS's id of the element: "/*1879106888 MEID=5*/"
# Documentation ranges (RFC 5737, RFC 3849): a pseudonym never names a real host.
_V4_POOL = [f"{net}.{i}" for net in ("192.0.2", "198.51.100", "203.0.113") for i in range(1, 255)]


class Anonymizer:
    """One mapping from what identifies an element (host and element names, the NMS's ids of
    it, IPv4/IPv6 addresses) to neutral pseudonyms, applied alike to the ``.raw``, the records
    and the parse error: the same original always becomes the same pseudonym, so the sample
    still reads back to its records, and two addresses stay two addresses."""

    def __init__(self, host: HostConfig, response: MmlResponse) -> None:
        names = {host.name: "uap-x", host.hostname: "element.example"}
        if host.jump is not None:
            names[host.jump.hostname] = "jump.example"
        if host.ne_name:
            names[host.ne_name] = "NE-X"
        comments: list[str] = []
        for report in response.reports:
            if report.ne:
                names[report.ne] = "NE-X"
            if report.nms:
                names[report.nms.split(" #")[0]] = "NMS-X"
            prefix = _ECHO_PREFIX.match(report.echo)
            for comment in _ECHO_COMMENT.findall(prefix.group(0) if prefix else ""):
                if comment not in comments:
                    comments.append(comment)
        names.update((c, f"/*ID-{i}*/") for i, c in enumerate(comments, 1))
        # The longest first, so that a name holding another is replaced whole.
        self.pairs = sorted(((k, v) for k, v in names.items() if k), key=lambda kv: -len(kv[0]))
        self._addresses: dict[str, str] = {}

    def _address(self, original: str, version: int) -> str:
        """The pseudonym of ``original`` when it is an IPv4 (``version`` 4) or IPv6 address,
        else ``original`` (the pattern also matches what only looks like one)."""
        try:
            (ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address)(original)
        except ValueError:
            return original
        if original not in self._addresses:
            n = sum(1 for a in self._addresses if (":" in a) == (version == 6))
            # Past the 762 documentation IPv4 addresses pseudonyms repeat: still anonymous.
            self._addresses[original] = (
                _V4_POOL[n % len(_V4_POOL)] if version == 4 else f"2001:db8::{n + 1:x}"
            )
        return self._addresses[original]

    def __call__(self, text: str) -> str:
        for old, new in self.pairs:
            text = text.replace(old, new)
        text = _IPV4.sub(lambda m: self._address(m.group(0), 4), text)
        return _IPV6.sub(lambda m: self._address(m.group(0), 6), text)

    def records(self, records: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: self(v) if isinstance(v, str) else v for k, v in r.items()} for r in records]


def _scrub(text: str, host: HostConfig) -> str:
    """Masked password parameters, and any secret of the host wherever it appears."""
    return scrub(mask_text(text), host.secrets())


def sample_dir(out: Path, platform: str, command: str) -> Path:
    """``out/<platform>/<verb>_<object>``, as tests/templates lays samples out."""
    head = command.split(":", 1)[0].split(";", 1)[0]
    name = "_".join(head.lower().split()) or "command"
    return out / platform / re.sub(r"[^a-z0-9_]", "", name)


def capture(
    host: HostConfig,
    command: MmlCommand,
    out: Path,
    *,
    anonymized: bool = False,
    template_dirs: Sequence[Path] = (),
    session_factory: type[MmlSession] = MmlSession,
) -> Capture:
    """Run one read-only command on ``host`` and write its reply as a template test sample.

    Raises ConfigError for a write command (before connecting) and the session's errors when no
    reply arrives; a reply that the templates cannot read is written all the same.
    """
    if not command.is_read_only:
        raise ConfigError(
            f"capture runs read-only commands only (LST, DSP), not {command.verb}: nothing was sent"
        )
    with session_factory(host) as session:
        response = session.run(command)
        encoding = session.encoding
    anonymize = Anonymizer(host, response) if anonymized else None
    hide: Callable[[str], str] = anonymize or (lambda text: text)
    rendered = hide(command.masked())  # a read command may name an address too
    raw_text = hide(_scrub(response.raw, host))
    records: list[dict[str, str]] | None = None
    error: str | None = None
    try:
        response.raise_for_retcode()
        records = parse_output(command.render(), response.text, host.platform, template_dirs)
        if anonymize is not None:  # a template may read names and addresses into its records
            records = anonymize.records(records)
    except MmlToolError as exc:
        error = hide(_scrub(str(exc), host))
    folder = sample_dir(out, host.platform, rendered)
    folder.mkdir(parents=True, exist_ok=True)
    when = datetime.now(timezone.utc)
    who = "uap-x" if anonymized else host.name
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', who)}_{when.strftime('%Y%m%dT%H%M%SZ')}"
    raw_path, yml_path = folder / f"{stem}.raw", folder / f"{stem}.yml"
    raw_path.write_bytes(raw_text.encode(encoding if encoding != "auto" else "utf-8"))
    doc: dict[str, object] = {
        "command": rendered,
        "platform": host.platform,
        "host": who,
        "encoding": encoding,
        "captured": when.isoformat(timespec="seconds"),
        "mml_tool": __version__,
    }
    if records is not None:
        doc["parsed_sample"] = records
    else:
        doc["parse_error"] = error
    header = (
        f"# Captured with `mml-tool capture` from {who} ({host.platform}); the .raw beside this\n"
        "# file holds the reply's bytes, passwords masked"
        + (", names and addresses anonymised" if anonymized else "")
        + ".\n# parsed_sample: what the templates read; fix it to what they should read.\n"
    )
    if records is None:
        header += "# The templates could not read it: write parsed_sample, then a template.\n"
    yml_path.write_text(
        header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    readme = folder / "README.md"
    line = (
        f"- `{stem}`: captured with `mml-tool capture` from {who} (platform {host.platform}) "
        f"on {when.date().isoformat()}: `{rendered}`, {encoding}.\n"
    )
    with readme.open("a", encoding="utf-8") as handle:
        if handle.tell() == 0:
            handle.write(f"# Samples: {rendered.split(':')[0]} on {host.platform}\n\n")
        handle.write(line)
    return Capture(raw_path, yml_path, records, error)
