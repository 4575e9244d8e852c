"""Build, validate, parse and render MML commands; mask the secrets they carry.

A command is ``VERB OBJECT: NAME=value, NAME="text";``. Every value that reaches the wire goes
through ``MmlCommand`` validation, so nothing taken from an inventory, a policy or the command
line can end the command early (``;``), open a string (``"``), escape a closing quote (``\\``),
fake a frame (``%%``) or start a new line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mml_tool.errors import CommandError
from mml_tool.secret import MASK

WORD_RE = re.compile(r"[A-Z][A-Z0-9_]*")
BARE_RE = re.compile(r"[A-Za-z0-9_.+-]+")
INT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)")
READ_ONLY_VERBS = frozenset({"LST", "DSP", "LGI", "LGO", "REG", "UNREG", "USE"})
PASSWORD_NAMES = ("PWD", "PASSW", "PSWD")
# A password-like name, "=", then a quoted (possibly unterminated) or bare value.
_MASK_RE = re.compile(
    r"""\b([A-Za-z0-9_]*(?:PWD|PASSW|PSWD)[A-Za-z0-9_]*)([ \t]*=[ \t]*)("[^"\r\n]*"?|[^\s,;"%]+)""",
    re.IGNORECASE,
)
# Cheap first test, same case rules: most text holds no password-like name at all, and the
# full pattern tries a match at every word boundary.
_MASK_HINT_RE = re.compile(r"PWD|PASSW|PSWD", re.IGNORECASE)
_PARAM_RE = re.compile(r' *([^ =,"]+) *= *(?:"([^"]*)"|([^ ,"]*)) *')


@dataclass(frozen=True)
class Quoted:
    """A double-quoted string value (names, descriptions, passwords)."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise CommandError(f"a quoted value must be a str, not {type(self.value).__name__}")


def quoted(value: str) -> Quoted:
    """Mark ``value`` to be sent between double quotes."""
    return Quoted(value)


ParamValue = str | int | Quoted  # str: bare word (P978, YES); int: number; Quoted: text


def is_password_name(name: str) -> bool:
    """True for parameter names whose values are secrets (PWD, NEWPWD, PASSWORD, ...)."""
    upper = name.upper()
    return any(part in upper for part in PASSWORD_NAMES)


def mask_text(text: str) -> str:
    """Replace the values of password-like parameters in free text with ``*****``."""
    if _MASK_HINT_RE.search(text) is None:
        return text

    def repl(m: re.Match[str]) -> str:
        value = f'"{MASK}"' if m.group(3).startswith('"') else MASK
        return f"{m.group(1)}{m.group(2)}{value}"

    return _MASK_RE.sub(repl, text)


def _show(value: str, secret: bool) -> str:
    """A value for an error message: repr (control characters visible), never a secret."""
    if secret:
        return "(hidden)"
    return repr(value if len(value) <= 60 else value[:60] + "...")


def _check_word(part: str, word: object, hint: str) -> str:
    if not isinstance(word, str):
        raise CommandError(f"{part} must be a str, not {type(word).__name__}")
    if WORD_RE.fullmatch(word):
        return word
    if WORD_RE.fullmatch(word.upper()):
        raise CommandError(f"{part} {word!r} must be upper case: use {word.upper()!r}")
    raise CommandError(
        f"{part} {_show(word, False)} is not allowed: {hint} must be an upper-case word "
        "(A-Z, then A-Z, 0-9 or _)"
    )


def _check_value(name: str, value: object) -> ParamValue:
    """Validate one value; a bare word that is a canonical integer becomes an int."""
    secret = is_password_name(name)
    if isinstance(value, bool) or not isinstance(value, (str, int, Quoted)):
        raise CommandError(
            f"parameter {name}: value of type {type(value).__name__} is not allowed: "
            "use str (bare word), int or quoted(text)"
        )
    if isinstance(value, int):
        return value
    if isinstance(value, Quoted):
        bad = [c for c in value.value if c in '";%\\' or not c.isprintable()]
        if bad:
            raise CommandError(
                f"parameter {name}: quoted value {_show(value.value, secret)} contains "
                f"{_show(bad[0], False)}: quoted text may hold printable characters except "
                '" ; % and \\ (a backslash could escape the closing quote)'
            )
        return value
    if not BARE_RE.fullmatch(value):
        raise CommandError(
            f"parameter {name}: bare value {_show(value, secret)} is not allowed: a bare value "
            "is letters, digits, _ . + - only (at least one); use quoted(...) for text"
        )
    return int(value) if INT_RE.fullmatch(value) else value


def _render_value(value: ParamValue) -> str:
    return f'"{value.value}"' if isinstance(value, Quoted) else str(value)


@dataclass(frozen=True)
class MmlCommand:
    """One MML command, validated on creation; ``render()`` gives the text to send."""

    verb: str
    obj: str = ""
    params: tuple[tuple[str, ParamValue], ...] = ()

    def __post_init__(self) -> None:
        _check_word("verb", self.verb, "the verb")
        if self.obj != "":
            _check_word("object", self.obj, "the object")
        if not isinstance(self.params, (tuple, list)):
            raise CommandError("params must be a tuple of (NAME, value) pairs")
        seen: set[str] = set()
        clean: list[tuple[str, ParamValue]] = []
        for item in self.params:
            if not isinstance(item, tuple) or len(item) != 2:
                raise CommandError(f"parameter {item!r} must be a (NAME, value) pair")
            name = _check_word("parameter name", item[0], "a parameter name")
            if name in seen:
                raise CommandError(f"parameter {name} is given twice: give each name once")
            seen.add(name)
            clean.append((name, _check_value(name, item[1])))
        object.__setattr__(self, "params", tuple(clean))

    @classmethod
    def create(cls, verb: str, obj: str = "", **params: ParamValue) -> MmlCommand:
        """``MmlCommand.create("MOD", "SFP", ID="P978", MODTYPE="P1", BIT=0, BITVAL=0)``."""
        return cls(verb, obj, tuple(params.items()))

    @classmethod
    def parse(cls, text: str) -> MmlCommand:
        """Read ``LST SFP: ID=P978;`` (spaces after ``:`` and ``,`` optional, ``;`` required)."""
        body = text.rstrip(" \r\n")
        _check_one_command(body)
        head, colon, rest = body[:-1].partition(":")
        if not colon:
            raise CommandError(
                f"command {mask_text(body)[:80]!r} needs ':' after the verb and object, "
                "e.g. 'LST ERRORCODE:;'"
            )
        words = head.split()
        if not words or len(words) > 2 or any(c in head for c in '"=,'):
            raise CommandError(
                f"command head {mask_text(head)[:80]!r} must be 'VERB' or 'VERB OBJECT', "
                "e.g. 'LST SFP'"
            )
        return cls(words[0], words[1] if len(words) == 2 else "", _parse_params(rest))

    def _render(self, mask: bool) -> str:
        head = f"{self.verb} {self.obj}" if self.obj else self.verb
        parts = []
        for name, value in self.params:
            if mask and is_password_name(name):
                value = Quoted(MASK) if isinstance(value, Quoted) else MASK
            parts.append(f"{name}={_render_value(value)}")
        return f"{head}: {', '.join(parts)};" if parts else f"{head}:;"

    def render(self) -> str:
        """The canonical text, e.g. ``MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;``."""
        return self._render(mask=False)

    def masked(self) -> str:
        """``render()`` with password values shown as ``*****``: safe to log and report."""
        return self._render(mask=True)

    @property
    def is_read_only(self) -> bool:
        return self.verb in READ_ONLY_VERBS

    def param(self, name: str) -> ParamValue | None:
        """The value of parameter ``name`` (any case), or None."""
        upper = name.upper()
        return next((v for n, v in self.params if n == upper), None)

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:  # masked: a repr in a traceback or log must not leak a password
        return f"MmlCommand({self.masked()!r})"


def _check_one_command(body: str) -> None:
    """``body`` is one line of printable text ending in its only ``;``."""
    for c in body:
        if not c.isprintable():
            raise CommandError(
                f"command {mask_text(body)[:80]!r} contains {c!r}: "
                "a command is one line of printable text"
            )
    if not body.endswith(";"):
        raise CommandError(f"command {mask_text(body)[:80]!r} must end with ';'")
    if ";" in body[:-1]:
        raise CommandError(
            f"command {mask_text(body)[:80]!r} holds ';' before its end: "
            "send one command at a time, and ';' never inside a value"
        )


def _parse_params(rest: str) -> tuple[tuple[str, ParamValue], ...]:
    """The parameters after the ``:`` (``NAME=value`` or ``NAME="text"``, comma-separated)."""
    params: list[tuple[str, ParamValue]] = []
    pos = 0
    while rest.strip(" "):  # an empty parameter list ("LST ERRORCODE:;") skips the loop
        m = _PARAM_RE.match(rest, pos)
        if m is None:
            raise CommandError(
                f"cannot read parameters at {mask_text(rest[pos:])[:60]!r}: "
                'expected NAME=value or NAME="text" separated by commas'
            )
        name, qval, bare = m.groups()
        params.append((name, Quoted(qval) if qval is not None else bare))
        pos = m.end()
        if pos == len(rest):
            break
        if rest[pos] == '"':
            raise CommandError(f"parameter {name}: a quoted value is not closed with '\"'")
        if rest[pos] != ",":
            raise CommandError(f"expected ',' between parameters at {mask_text(rest[pos:])[:60]!r}")
        pos += 1
    return tuple(params)
