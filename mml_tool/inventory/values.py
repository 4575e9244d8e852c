"""Checks and conversions of single inventory values (the loader's building blocks): every
error names the file, the place and the field, and never carries a secret value."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mml_tool.errors import InventoryError
from mml_tool.inventory.models import (
    _DEFERRED,
    _VAR_RE,
    PASSPHRASE_SOURCES,
    PASSWORD_SOURCES,
    GatewayConfig,
    HostConfig,
    Prompt,
)
from mml_tool.secret import Secret


@dataclass
class _Value:
    """A raw inventory value and where it was set (for error messages)."""

    value: Any
    origin: str


class _Values:
    def __init__(
        self, path: Path, env: Mapping[str, str], prompt: Prompt | None, defer: bool = False
    ) -> None:
        self.path = path
        self.base = path.parent
        self.env = env
        self.prompt = prompt
        self.defer = defer  # check where each secret comes from, but read none
        self._prompted: dict[str, Secret] = {}  # one prompt per place it is asked for
        self._builders: dict[tuple[str, str], Callable[[], HostConfig | GatewayConfig]] = {}

    def fail(self, where: str, what: str) -> InventoryError:
        return InventoryError(f"{self.path}: {where}: {what}")

    # -- structure -------------------------------------------------------------------------

    def mapping(self, value: object, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping (key: value), not {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, _key_not_text(key))
        return value

    def password_level(self, data: Mapping[str, Any], where: str, prefix: str = "") -> None:
        for sources in (PASSWORD_SOURCES, () if prefix else PASSPHRASE_SOURCES):
            names = [f"{prefix}{k}" for k in sources]
            given = [n for n in names if n in data and data[n] not in (None, False)]
            if len(given) > 1:
                raise self.fail(where, f"{' and '.join(given)} are both set: keep only one of them")

    # -- values ----------------------------------------------------------------------------

    def expand(self, raw: _Value, where: str, name: str) -> Any:
        if not isinstance(raw.value, str):
            return raw.value

        def repl(m: re.Match[str]) -> str:
            var, fallback = m.group(1), m.group(2)
            if var in self.env:
                return self.env[var]
            if fallback is not None:
                return fallback
            raise self.fail(
                f"{where}: field {name!r} (set in {raw.origin})",
                f"environment variable {var} is not set: export {var}=... before running, "
                "or change the inventory",
            )

        return _VAR_RE.sub(repl, raw.value)

    def text(self, value: Any, where: str, name: str, safe: re.Pattern[str] | None = None) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"field {name!r} must be a non-empty string, not {_kind(value)}")
        if safe is not None and not safe.fullmatch(value):
            raise self.fail(where, f"field {name!r} = {value!r} holds characters not allowed there")
        return value

    def safe_label(self, value: Any, where: str, name: str) -> str:
        """A value rendered between quotes in an MML command (ne_name, username)."""
        text = self.text(value, where, name)
        bad = [c for c in text if c in "\"';%\\" or not c.isprintable()]
        if bad:
            raise self.fail(
                where,
                f"field {name!r} contains {bad[0]!r}: quotes, ';', '%', '\\' and control "
                "characters are not allowed (they could end the MML command early)",
            )
        return text

    def integer(self, value: Any, where: str, name: str, low: int, high: int | None) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"field {name!r} must be a whole number, not {_kind(value)}")
        if value < low or (high is not None and value > high):
            limits = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.fail(where, f"field {name!r} = {value} must be {limits}")
        return value

    def port(self, value: Any, where: str, name: str = "port") -> int:
        return self.integer(value, where, name, 1, 65535)

    def seconds(self, value: Any, where: str, name: str) -> float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)  # nan would never pass a deadline: a hang
            or value <= 0
        ):
            raise self.fail(where, f"field {name!r} must be a number of seconds above 0")
        return float(value)

    def boolean(self, value: Any, where: str, name: str) -> bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise self.fail(where, f"field {name!r} must be true or false, not {_kind(value)}")
        return value

    def encoding(self, value: Any, where: str) -> str:
        from mml_tool.mml.encoding import check_encoding  # lazy: mml imports this module

        try:
            return check_encoding(self.text(value, where, "encoding"))
        except ValueError as exc:
            raise self.fail(where, f"field 'encoding': {exc}") from None

    def file(self, value: Any, where: str, name: str) -> Path:
        text = self.text(value, where, name)
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    def secret(
        self,
        data: Mapping[str, _Value],
        where: str,
        prefix: str,
        question: str,
        base: str = "password",
    ) -> Secret | None:
        """The secret set by ``{prefix}{base}``, ``..._file`` or ``..._prompt``."""
        name = f"{prefix}{base}"
        file_field, prompt_field = f"{name}_file", f"{name}_prompt"
        if self.defer:
            given = [data[k].value for k in (name, file_field, prompt_field) if k in data]
            off = (None, False, "false", "no", "0")
            return _DEFERRED if any(v not in off for v in given) else None
        if name in data and data[name].value is not None:
            return self._secret_value(data[name], where, name)
        if file_field in data and data[file_field].value is not None:
            return self._secret_file(data[file_field], where, file_field, base)
        raw = data.get(prompt_field)
        if raw is not None and self.boolean(
            self.expand(raw, where, prompt_field), where, prompt_field
        ):
            return self._secret_prompt(raw, where, name, question, base)
        return None

    def _secret_value(self, raw: _Value, where: str, name: str) -> Secret:
        value = self.expand(raw, where, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(where, f"field {name!r} must be a string, not {_kind(value)}")
        return Secret(value)

    def _secret_file(self, raw: _Value, where: str, file_field: str, base: str) -> Secret:
        path = self.file(self.expand(raw, where, file_field), where, file_field)
        try:
            return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise self.fail(
                where,
                f"field {file_field!r}: cannot read {path} ({exc.strerror}): create it with "
                f"the {base} on one line, readable by you only (chmod 600)",
            ) from None

    def _secret_prompt(
        self, raw: _Value, where: str, name: str, question: str, base: str
    ) -> Secret:
        """Asked once per file and field, however many hosts share it."""
        prompt_field = f"{name}_prompt"
        key = f"{raw.origin}/{name}"
        if key not in self._prompted:
            if self.prompt is None:
                raise self.fail(
                    where,
                    f"field {prompt_field!r} asks for the {base} on the terminal, but "
                    f"there is none: run interactively, or set the {base} through an "
                    f"environment variable ({name}: ${{VAR}}) or a {name}_file",
                )
            self._prompted[key] = Secret(self.prompt(f"{question} ({raw.origin}): "))
        return self._prompted[key]


def _kind(value: object) -> str:
    """A value's type for an error message (the value itself might be a secret)."""
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _merge_levels(levels: list[tuple[str, dict[str, Any]]]) -> dict[str, _Value]:
    """defaults, then groups, then the host: each level's values over the one before."""
    merged: dict[str, _Value] = {}
    for origin, data in levels:
        for sources in (PASSWORD_SOURCES, PASSPHRASE_SOURCES):
            if any(k in data for k in sources):
                for k in sources:  # the level that sets a secret replaces all its sources
                    merged.pop(k, None)
        for key, value in data.items():
            if key != "groups":
                merged[key] = _Value(value, origin)
    return merged


def _key_not_text(key: object) -> str:
    """Host names such as ``010`` or ``on`` are read by YAML 1.1 as a number or a boolean."""
    return (
        f"key {key!r} must be a string: YAML read the name written there as {_kind(key)} "
        f'{key!r}; quote it (e.g. "010", "on")'
    )
