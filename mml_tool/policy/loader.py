"""Loading and validation of a policy file: every message names file, control and field."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mml_tool.errors import PolicyError
from mml_tool.policy.checker import _Checker, _kind, _show
from mml_tool.policy.command_loader import _command_rule, _number, _templates
from mml_tool.policy.models import (
    _CONTROL_ID_RE,
    _PARAMETER_RE,
    BUILTIN_POLICY,
    MAX_BIT,
    SEVERITIES,
    Control,
    Policy,
    Ref,
    Rule,
    SfpBitRule,
    Waiver,
)
from mml_tool.policy.rules import (
    MAX_VALUE,
    SfpMaskRule,
    SfpValueRule,
)
from mml_tool.policy.written import Written
from mml_tool.yamlload import load_yaml_nodes

# --- loading and validation ------------------------------------------------------------------


def _control(check: _Checker, raw: object, index: int) -> Control:
    where = f"control #{index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        where = f"control {raw['id']}"
    data = check.mapping(raw, where, "")
    check.misread(data, "id", where, "id")
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
    return Control(
        id=cid,
        title=check.text(data["title"], where, "title"),
        severity=severity,
        description=description.strip(),
        refs=tuple(refs),
        rule=_rule(check, rule, where),
        hosts=check.text_list(targets.get("hosts", []), where, "targets.hosts"),
        groups=check.text_list(targets.get("groups", []), where, "targets.groups"),
    )


def _rule(check: _Checker, rule: dict[str, Any], where: str) -> Rule:
    kinds = [k for k in ("software_parameter", "command") if rule.get(k) is not None]
    if len(kinds) != 1:
        raise check.fail(
            where,
            "rule",
            f"names {' and '.join(kinds) or 'no rule kind'}",
            "give exactly one of software_parameter, command",
        )
    if kinds[0] == "command":
        return _command_rule(check, check.mapping(rule["command"], where, "rule.command"), where)
    sfp = check.mapping(rule["software_parameter"], where, "rule.software_parameter")
    return _sfp_rule(check, sfp, where)


def _sfp_rule(check: _Checker, sfp: dict[str, Any], where: str) -> Rule:
    """A software parameter rule: one bit, bits under a mask, or the whole value."""
    f = "rule.software_parameter"
    parameter = sfp["id"]
    if not isinstance(parameter, str) or not _PARAMETER_RE.fullmatch(parameter):
        raise check.fail(where, f"{f}.id", f"is {_show(parameter)}", "expected P + digits")
    bit, mask = sfp.get("bit"), sfp.get("mask")
    for key in ("bit", "mask", "value"):
        _number(check, sfp, key, where, f"{f}.{key}")
    if bit is not None and mask is not None:
        raise check.fail(where, f"{f}.mask", "is given with bit", "give bit or mask, not both")
    templates = _templates(check, sfp, where, f, SfpValueRule.PLACEHOLDERS)
    if (bit is not None or mask is not None) and templates != ((), ()):
        which = "remediation" if templates[0] else "rollback"
        raise check.fail(
            where,
            f"{f}.{which}",
            "is given for a bit or mask rule",
            "bit and mask rules are remediated with MOD SFP ... MODTYPE=P1, one bit a "
            "command; remove it",
        )
    if bit is not None:
        return SfpBitRule(
            parameter=parameter,
            bit=check.integer(bit, where, f"{f}.bit", range(MAX_BIT + 1)),
            value=check.integer(sfp["value"], where, f"{f}.value", (0, 1)),
        )
    value = check.integer(sfp["value"], where, f"{f}.value", range(MAX_VALUE + 1))
    if mask is not None:
        return _mask_rule(check, parameter, mask, value, where)
    return SfpValueRule(parameter, value, *templates)


def _mask_rule(check: _Checker, parameter: str, mask: object, value: int, where: str) -> Rule:
    f = "rule.software_parameter"
    mask = check.integer(mask, where, f"{f}.mask", range(1, MAX_VALUE + 1))
    if value & ~mask:
        raise check.fail(
            where,
            f"{f}.value",
            f"is 0x{value:04X}, with bits outside mask 0x{mask:04X}",
            "set only bits the mask names",
        )
    return SfpMaskRule(parameter=parameter, mask=mask, value=value)


def _waiver(check: _Checker, raw: object, index: int) -> Waiver:
    where = f"waiver #{index + 1}"
    data = check.mapping(raw, where, "")
    for key in ("control", "host"):  # compared with control ids and host names
        check.misread(data, key, where, key)
    control = check.text(data["control"], where, "control")
    where = f"waiver #{index + 1} (control {control})"
    # A control the policy does not have is not refused: the waiver waives nothing, and the
    # commands that use the policy warn about it (cli._common.waiver_warnings).
    return Waiver(
        host=check.text(data["host"], where, "host"),
        control=control,
        reason=check.text(data["reason"], where, "reason"),
        expires=check.day(data["expires"], where, "expires"),
    )


def parse_policy(content: bytes, source: str, path: Path, *, shape: bool = True) -> Policy:
    """Validate a policy document (``source`` names it in messages). ``shape=False`` skips
    the models' field check, for the built-in policy only: a test runs it on that file, and
    pydantic is a tenth of a second of `check`'s start-up (issue 14)."""
    try:
        doc, root = load_yaml_nodes(content, source, PolicyError)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    check = _Checker(source, Written(root, doc))
    del root  # the tree is not kept while the policy is checked: see Written
    if not isinstance(doc, dict):  # said plainly: "field '': is a list" named nothing to fix
        what = "empty" if doc is None else f"a {_kind(doc)}"
        raise PolicyError(
            f"{source}: the file is {what}, not a policy: a policy is a mapping with `policy:` "
            "(name, version) and `controls:` (a list of controls), as in "
            "inventories/policy-rules.example.yaml"
        )
    if shape:
        # Imported here: pydantic takes ~0.1 s to import; `mml-tool --help` need not wait.
        from mml_tool.policy.schema import shape_error

        problem = shape_error(doc)  # unknown, missing and misplaced fields, by the models
        if problem is not None:
            raise check.fail(*problem)
    top = check.mapping(doc, "", "")
    meta = check.mapping(top["policy"], "", "policy")
    version = meta.get("version", "1")
    if "version" in meta:  # shown and recorded as text: 1.10 must not become 1.1
        check.misread(meta, "version", "", "policy.version")
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
    waivers: list[Waiver] = []
    for i, raw in enumerate(raw_waivers):
        waiver = _waiver(check, raw, i)
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
        where = f"built-in policy {BUILTIN_POLICY}"
        return parse_policy(content, where, Path(str(resource)), shape=False)
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    return parse_policy(content, str(path), Path(path))
