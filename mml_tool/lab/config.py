"""LAB.yaml: the settings of a lab, validated by pydantic models, resolved to ``NodeConfig``.

Format (``load_lab_config``)::

    defaults:                 # optional; any node key below, applied to every node
      layout: table
    nodes:                    # mapping: node (inventory host) name -> settings
      uap-1:
        ne_name: UAP-1        # default: the node name upper-cased
        meid: 1               # default: position in the file, from 1
        layout: table         # table | vertical | value
        language: en          # en | zh
        hex_line: false       # value layout: add "Hexadecimal value  =  0x0001"
        unknown_param: error  # error (RETCODE 1006) | empty (No matching result is found)
        page_size: 20         # parameters per report of LST SFP:;
        ssh_echo: false       # echo typed characters on SSH shells with a pty
        serial_start: 1000    # first O&M serial on each connection (default: random)
        authorized_keys: ["ssh-ed25519 AAAA... me@host"]   # SSH public-key auth (default: none);
                              # a shell opened with a key is logged in to MML (no LGI needed)
        echo_prefix: ""       # text before the echoed command in %%...%%: literal, e.g.
                              # "/*1879106888 MEID=005*/", and/or the token "{serial}", a
                              # running number per connection (%%241299LST SFP: ID=P978;%%);
                              # quote it: unquoted, YAML reads {serial} as a mapping
        encoding: utf-8       # utf-8 | gb18030 (replies and commands, as Chinese elements)
        paging: en            # en (To be continued...) | zh (仍有后续报告输出, 共有N个报告) |
                              # zh-bare (zh, later pages without header, echo, RETCODE)
        state_file: state/uap-1.json   # relative to the LAB.yaml folder
        params: {P978: 1, P001: 0}     # merged over the default parameter set
        replace_params: false          # true: params replace the default set
        offices:                       # LST OFI rows (default: four invented directions);
          - {number: 1, name: TO-CCGW-1, peer_type: CCGW, max_calls: 480, status: normal}
                              # peer_type CCGW | SOFTX | SIP | PSTN (default CCGW),
                              # max_calls default 120, status normal | blocked | faulty
                              # (default normal); [] lists none
        faults: {latency: 0.2, drop_after: 5, drop_mid_response: "LST SFP",
                 garbage_reply: null, never_end: null, alarms: false,
                 login_refused: false, drop_after_mod: false, times: null}

    gateway:                  # optional: the CC-Gateway simulator (load_gateway_settings)
      event_shape: documented # documented: AgentEvent_MediaSwith and
                              # AgentMediaEvent_StopRecordDone bare (no envelope, jsonKey arrays),
                              # the others wrapped with eventGenTime, as the vendor's pages print
                              # them; wrapped: every event in {message, retcode, event}, numbers
                              # in content as strings

The models check the shape (known keys, types); ``NodeConfig`` and ``FaultConfig`` check the
values (choices, ranges), as they do for nodes built in code. Every error is a ``ConfigError``
naming the file, the node and the field. Messages are written here, not taken from pydantic,
whose texts carry the input value.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic_core import ErrorDetails

from mml_tool.errors import ConfigError
from mml_tool.lab.uap import FaultConfig, NodeConfig, OfficeConfig, default_params
from mml_tool.yamlload import load_yaml, show

EventShape = Literal["documented", "wrapped"]
EVENT_SHAPES: tuple[EventShape, ...] = ("documented", "wrapped")


class _Model(BaseModel):
    # strict: YAML gives real types, so "yes" is not a boolean and 1 is not text.
    model_config = ConfigDict(extra="forbid", strict=True)


class FaultSettings(_Model):
    """``faults:`` of a node; the fields of ``FaultConfig``."""

    latency: float = 0.0
    drop_after: int | None = None
    drop_mid_response: str | None = None
    garbage_reply: str | None = None
    never_end: str | None = None
    alarms: bool = False
    login_refused: bool = False
    drop_after_mod: bool = False
    times: int | None = None


class OfficeSettings(_Model):
    """One entry of ``offices:``; the fields of ``OfficeConfig`` (values checked there)."""

    number: int
    name: str
    peer_type: str = "CCGW"
    max_calls: int = 120
    status: str = "normal"


class NodeSettings(_Model):
    """The settings of one node (or ``defaults:``); unset keys take ``NodeConfig``'s defaults."""

    ne_name: str | None = None
    meid: int | None = None
    layout: str = "table"
    language: str = "en"
    hex_line: bool = False
    unknown_param: str = "error"
    page_size: int = 20
    ssh_echo: bool = False
    serial_start: int | None = None
    authorized_keys: list[str] = []
    echo_prefix: str = ""
    encoding: str = "utf-8"
    paging: str = "en"
    state_file: str | None = None
    # Keys and values are checked by NodeConfig (P-number ids, 16-bit integers).
    params: dict[Any, Any] | None = None
    replace_params: bool = False
    offices: list[OfficeSettings] | None = None
    faults: FaultSettings | None = None


class GatewaySettings(_Model):
    """``gateway:``: the CC-Gateway simulator."""

    event_shape: EventShape = "documented"


class LabFile(_Model):
    """A whole LAB.yaml."""

    defaults: NodeSettings | None = None
    nodes: dict[str, NodeSettings | None]
    gateway: GatewaySettings | None = None

    @field_validator("nodes", mode="before")
    @classmethod
    def _names_as_text(cls, value: Any) -> Any:
        # YAML reads a node called 1 as an integer; its name is still "1", as before.
        if isinstance(value, dict):
            return {str(k) if isinstance(k, int | float) else k: v for k, v in value.items()}
        return value


_KINDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}
_HINTS = {
    "echo_prefix": f' (quote it in LAB.yaml: echo_prefix: "{"{serial}"}")',
    "params": " like {P978: 1}",
    "state_file": " (a path, as text)",
}


def load_lab_config(path: Path) -> list[NodeConfig]:
    """Read a LAB.yaml (format in the module docstring)."""
    data = _read(path)
    lab = _validate(path, data)
    defaults = lab.defaults.model_dump(exclude_unset=True) if lab.defaults else {}
    nodes = []
    for index, (name, settings) in enumerate(lab.nodes.items()):
        merged = {**defaults, **(settings.model_dump(exclude_unset=True) if settings else {})}
        nodes.append(_node_from(path, name, index, merged))
    return nodes


def load_gateway_settings(path: Path) -> EventShape:
    """The ``gateway:`` section of a LAB.yaml: the simulator's event shape."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the lab config: {exc}") from exc
    section = data.get("gateway") if isinstance(data, dict) else None
    if section is None:
        return "documented"
    try:
        return GatewaySettings.model_validate(section).event_shape
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_message(exc.errors()[0], ('gateway',))}") from None


def _read(path: Path) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"), str(path), ConfigError)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the lab config: {exc}") from exc


def _validate(path: Path, data: Any) -> LabFile:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'nodes:'")
    try:
        lab = LabFile.model_validate(data)
    except ValidationError as exc:
        # from None: pydantic's error holds the input values
        raise ConfigError(f"{path}: {_message(_first(exc.errors()))}") from None
    if not lab.nodes:
        raise ConfigError(f"{path}: 'nodes' must be a non-empty mapping of node name -> settings")
    return lab


def _first(errors: list[ErrorDetails]) -> ErrorDetails:
    # The gateway section is checked first, as the file is read top-down by people.
    return min(errors, key=lambda e: 0 if e["loc"][:1] == ("gateway",) else 1)


def _message(error: ErrorDetails, prefix: tuple[str | int, ...] = ()) -> str:
    """Our words for one pydantic error: where (top level, gateway, node, field), then what."""
    loc = prefix + tuple(error["loc"])
    kind = error["type"]
    top = str(loc[0]) if loc else ""
    if kind == "extra_forbidden" and len(loc) == 1:
        return f"unknown top-level field {top!r} (expected defaults, nodes, gateway)"
    if top == "gateway":
        return _gateway_message(loc[1:], error)
    if top == "nodes" and len(loc) == 1:
        return "'nodes' must be a non-empty mapping of node name -> settings"
    if top == "nodes" and len(loc) == 2 and kind != "extra_forbidden":
        if kind == "string_type":
            return f"node {show(loc[1])}: the node name must be text"
        return f"node {loc[1]}: settings must be a mapping"
    if top == "defaults" and len(loc) == 1:
        return "'defaults' must be a mapping"
    node, field = (loc[1], loc[2:]) if top == "nodes" else ("defaults", loc[1:])
    return f"node {node}: {_field_message(field, error)}"


def _gateway_message(field: tuple[str | int, ...], error: ErrorDetails) -> str:
    if not field:
        return "'gateway' must be a mapping like {event_shape: wrapped}"
    if error["type"] == "extra_forbidden":
        return f"gateway: unknown field {str(field[0])!r} (expected event_shape)"
    return (
        f"gateway.event_shape is {show(error['input'])}: use documented (as the vendor's pages "
        "print events) or wrapped (every event in the envelope)"
    )


def _field_message(field: tuple[str | int, ...], error: ErrorDetails) -> str:
    name = ".".join(str(part) for part in field)
    if error["type"] == "extra_forbidden":
        known: type[_Model] = NodeSettings
        if field[:1] == ("faults",):
            known = FaultSettings
        elif field[:1] == ("offices",):
            known = OfficeSettings
        close = difflib.get_close_matches(str(field[-1]), list(known.model_fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field {name!r}{hint}"
    if field == ("faults",):
        return "'faults' must be a mapping"
    if field[:1] == ("offices",) and error["type"] == "missing":
        return f"{name}: give number and name (e.g. {{number: 1, name: TO-CCGW-1}})"
    kind = _KINDS.get(error["type"], "of another type")
    got = type(error["input"]).__name__
    return f"{name} must be {kind}{_HINTS.get(name, '')}, not {got}"


def _node_from(path: Path, name: str, index: int, s: dict[str, Any]) -> NodeConfig:
    where = f"{path}: node {name}"
    params_in = s.pop("params", None) or {}
    params = {} if s.pop("replace_params", False) else default_params()
    params.update({str(k).upper(): v for k, v in params_in.items()})
    faults_in = s.pop("faults", None) or {}
    offices_in = s.pop("offices", None)
    if offices_in is not None:
        s["offices"] = tuple(OfficeConfig(**o) for o in offices_in)
    state = s.pop("state_file", None)
    meid = s.pop("meid", None)
    if s.get("ne_name") is None:
        s.pop("ne_name", None)
    try:
        return NodeConfig(
            name,
            params=params,
            faults=FaultConfig(**faults_in),
            state_file=(path.parent / state) if state else None,
            meid=index + 1 if meid is None else meid,
            **s,
        )
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
