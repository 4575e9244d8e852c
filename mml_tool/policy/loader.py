"""Loading and validation of a policy file: every message names file, control and field."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mml_tool.errors import PolicyError
from mml_tool.policy.models import (
    _CONTROL_ID_RE,
    _PARAMETER_RE,
    BUILTIN_POLICY,
    MAX_BIT,
    SEVERITIES,
    Control,
    Policy,
    Ref,
    SfpBitRule,
    Waiver,
)
from mml_tool.yamlload import load_yaml, show

# --- loading and validation ------------------------------------------------------------------


class _Checker:
    """Validates one policy document; every message names file, control and field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, fld: str, problem: str, allowed: str) -> PolicyError:
        place = f"{where}, " if where else ""
        return PolicyError(f"{self.source}: {place}field {fld!r}: {problem}; {allowed}")

    def mapping(self, value: object, where: str, fld: str) -> dict[str, Any]:
        # Keys were checked against the models (schema.shape_error) before any value.
        if not isinstance(value, dict):
            raise self.fail(where, fld, f"is a {_kind(value)}", "expected a mapping")
        return value

    def text(self, value: object, where: str, fld: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, fld, f"is {_show(value)}", "expected non-empty text")
        return value.strip()

    def text_list(self, value: object, where: str, fld: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, fld, f"is a {_kind(value)}", "expected a list of names")
        return tuple(self.text(v, where, f"{fld}[{i}]") for i, v in enumerate(value))

    def integer(self, value: object, where: str, fld: str, allowed: Sequence[int]) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(
                where,
                fld,
                f"is {_show(value)} ({_kind(value)})",
                f"expected an integer in {_span(allowed)}",
            )
        if value not in allowed:
            raise self.fail(where, fld, f"is {value}", f"allowed: {_span(allowed)}")
        return value

    def day(self, value: object, where: str, fld: str) -> date:
        if isinstance(value, datetime):  # YAML reads "2026-12-31 10:00" as a datetime
            return value.date()
        if isinstance(value, date):
            return value
        try:
            if not isinstance(value, str):  # str() of a list may expand an alias bomb
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(
                where, fld, f"is {_show(value)}", "expected a date as YYYY-MM-DD"
            ) from None


def _kind(value: object) -> str:
    return {dict: "mapping", list: "list", str: "text", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _show(value: object) -> str:
    return show(value)  # never repr(): the value may be an alias bomb (see yamlload)


def _span(allowed: Sequence[int]) -> str:
    return f"{allowed[0]}..{allowed[-1]}" if len(allowed) > 2 else " or ".join(map(str, allowed))


def _control(check: _Checker, raw: object, index: int) -> Control:
    where = f"control #{index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        where = f"control {raw['id']}"
    data = check.mapping(raw, where, "")
    cid = check.text(data["id"], where, "id")
    if not _CONTROL_ID_RE.fullmatch(cid):
        raise check.fail(where, "id", f"is {cid!r}", "use letters, digits, '_', '.', '-'")
    severity = data["severity"]
    if severity not in SEVERITIES:
        raise check.fail(
            where, "severity", f"is {_show(severity)}", f"allowed: {', '.join(SEVERITIES)}"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise check.fail(where, "description", f"is a {_kind(description)}", "expected text")
    refs_raw = data.get("refs", [])
    if not isinstance(refs_raw, list):
        raise check.fail(where, "refs", f"is a {_kind(refs_raw)}", "expected a list")
    refs = []
    for i, ref in enumerate(refs_raw):
        r = check.mapping(ref, where, f"refs[{i}]")
        refs.append(
            Ref(
                check.text(r["title"], where, f"refs[{i}].title"),
                check.text(r["url_or_doc"], where, f"refs[{i}].url_or_doc"),
            )
        )
    targets = check.mapping(data.get("targets", {}), where, "targets")
    rule = check.mapping(data["rule"], where, "rule")
    sfp = check.mapping(rule["software_parameter"], where, "rule.software_parameter")
    parameter = sfp["id"]
    if not isinstance(parameter, str) or not _PARAMETER_RE.fullmatch(parameter):
        raise check.fail(
            where, "rule.software_parameter.id", f"is {_show(parameter)}", "expected P + digits"
        )
    return Control(
        id=cid,
        title=check.text(data["title"], where, "title"),
        severity=severity,
        description=description.strip(),
        refs=tuple(refs),
        rule=SfpBitRule(
            parameter=parameter,
            bit=check.integer(sfp["bit"], where, "rule.software_parameter.bit", range(MAX_BIT + 1)),
            value=check.integer(sfp["value"], where, "rule.software_parameter.value", (0, 1)),
        ),
        hosts=check.text_list(targets.get("hosts", []), where, "targets.hosts"),
        groups=check.text_list(targets.get("groups", []), where, "targets.groups"),
    )


def _waiver(check: _Checker, raw: object, index: int, control_ids: set[str]) -> Waiver:
    where = f"waiver #{index + 1}"
    data = check.mapping(raw, where, "")
    control = check.text(data["control"], where, "control")
    where = f"waiver #{index + 1} (control {control})"
    if control not in control_ids:
        raise check.fail(
            where, "control", f"names unknown control {control!r}", f"known: {sorted(control_ids)}"
        )
    return Waiver(
        host=check.text(data["host"], where, "host"),
        control=control,
        reason=check.text(data["reason"], where, "reason"),
        expires=check.day(data["expires"], where, "expires"),
    )


def parse_policy(content: bytes, source: str, path: Path) -> Policy:
    """Validate a policy document (``source`` names it in messages)."""
    check = _Checker(source)
    try:
        doc = load_yaml(content, source, PolicyError)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    # Imported here: pydantic takes ~0.1 s to import; `mml-tool --help` need not wait.
    from mml_tool.policy.schema import shape_error

    problem = shape_error(doc)  # unknown, missing and misplaced fields, by the models
    if problem is not None:
        raise check.fail(*problem)
    top = check.mapping(doc, "", "")
    meta = check.mapping(top["policy"], "", "policy")
    version = meta.get("version", "1")
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise check.fail("", "policy.version", f"is {_show(version)}", "expected text or number")
    raw_controls = top["controls"]
    if not isinstance(raw_controls, list) or not raw_controls:
        raise check.fail("", "controls", f"is {_show(raw_controls)}", "expected a non-empty list")
    controls: list[Control] = []
    for i, raw in enumerate(raw_controls):
        control = _control(check, raw, i)
        if any(c.id == control.id for c in controls):
            raise check.fail(
                f"control #{i + 1}", "id", f"repeats {control.id!r}", "control ids are unique"
            )
        controls.append(control)
    raw_waivers = top.get("waivers") or []
    if not isinstance(raw_waivers, list):
        raise check.fail("", "waivers", f"is a {_kind(raw_waivers)}", "expected a list")
    ids = {c.id for c in controls}
    waivers: list[Waiver] = []
    for i, raw in enumerate(raw_waivers):
        waiver = _waiver(check, raw, i, ids)
        if any((w.host, w.control) == (waiver.host, waiver.control) for w in waivers):
            raise check.fail(
                f"waiver #{i + 1}",
                "host",
                f"repeats {waiver.host}/{waiver.control}",
                "give one waiver per host and control",
            )
        waivers.append(waiver)
    return Policy(
        name=check.text(meta["name"], "", "policy.name"),
        version=str(version),
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        controls=tuple(controls),
        waivers=tuple(waivers),
    )


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the built-in P978 policy."""
    if path is None:
        resource = resources.files("mml_tool").joinpath("policies").joinpath(BUILTIN_POLICY)
        content = resource.read_bytes()
        return parse_policy(content, f"built-in policy {BUILTIN_POLICY}", Path(str(resource)))
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(content, str(path), Path(path))
