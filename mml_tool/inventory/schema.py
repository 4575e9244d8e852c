"""The inventory file as pydantic models: its shape, checked first, and its JSON Schema.

The models say which keys exist where (``extra="forbid"``) and what each value may be before
``${VAR}`` expansion, so an editor can check a file against ``mml-tool schema inventory``. The
loader checks the rest (merging, variables, secrets, references between sections) with its own
messages. Pydantic's own error texts are never shown: they quote the input, which may be a
secret; ``structure_error`` words the first problem the way the loader words its own.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mml_tool.inventory.values import _key_not_text

Var = Annotated[
    str,
    Field(
        pattern=r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
        description="a ${VAR} or ${VAR:-fallback} replaced from the environment",
    ),
]
Text = str | int  # a number is taken as its text (a username 1001, a port "22")
Flag = bool | Literal["true", "yes", "1", "false", "no", "0"] | Var
Seconds = Annotated[float, Field(gt=0)] | str
Port = Annotated[int, Field(ge=1, le=65535)] | str
SecretText = Annotated[
    str | int, Field(description="a secret: give it as ${VAR}, never in clear in the file")
]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JumpDoc(_Doc):
    """The SSH jump host of an ``ssh-tunnel`` host; unset credentials are the host's own."""

    hostname: Text | None = None
    port: Port | None = None
    username: Text | None = None
    password: SecretText | None = None
    password_file: str | None = None
    password_prompt: Flag | None = None
    key_file: str | None = None
    key_passphrase: SecretText | None = None
    key_passphrase_file: str | None = None
    key_passphrase_prompt: Flag | None = None
    known_hosts: str | None = None


class HostSettingsDoc(_Doc):
    """What ``defaults``, a group's ``vars`` and a host may set (later levels win)."""

    transport: Literal["ssh", "ssh-tunnel", "tcp"] | Var | None = None
    hostname: Text | None = None
    port: Port | None = None
    username: Text | None = None
    password: SecretText | None = None
    password_file: str | None = None
    password_prompt: Flag | None = None
    key_file: str | None = None
    key_passphrase: SecretText | None = None
    key_passphrase_file: str | None = None
    key_passphrase_prompt: Flag | None = None
    known_hosts: str | None = None
    trust_on_first_use: Flag | None = None
    connect_timeout: Seconds | None = None
    timeout: Seconds | None = None
    platform: str | None = None
    ne_name: Text | None = None
    meid: Annotated[int, Field(ge=0)] | str | None = None
    gateway: str | None = None
    jump: JumpDoc | None = None
    encoding: str | None = Field(None, description="auto (default), utf-8, gb18030, ...")


class HostDoc(HostSettingsDoc):
    """One network element."""

    groups: list[str] | str | None = None


class GroupDoc(_Doc):
    vars: HostSettingsDoc | None = None
    description: str | None = None


class GatewayDoc(_Doc):
    """A CC-Gateway and the test agent the end-to-end verification signs in."""

    url: str | None = Field(None, description="https://host:port")
    ca_bundle: str | None = None
    verify_tls: Flag | None = None
    agent_id: Text | None = None
    agent_password: SecretText | None = None
    agent_password_file: str | None = None
    agent_password_prompt: Flag | None = None
    phone_number: Text | None = None
    called: Text | None = None
    skill_id: Annotated[int, Field(ge=0)] | str | None = None
    timeout: Seconds | None = None


class HistoryDoc(_Doc):
    """Where runs are recorded (read by mml_tool.history.config): a database URL and its
    password from ${VAR} or a file, never in clear."""

    url: str = Field(description="a path (SQLite) or postgresql://USER@HOST:PORT/DB")
    password: SecretText | None = None
    password_file: str | None = None


class InventoryDoc(_Doc):
    """An mml-tool inventory file."""

    defaults: HostSettingsDoc | None = None
    groups: dict[str, GroupDoc | None] | None = None
    hosts: dict[str, HostDoc | None] | None = None
    gateways: dict[str, GatewayDoc | None] | None = None
    lock_dir: str | None = None
    audit: str | None = Field(
        None, description="the audit trail (JSON lines) for everyone using this inventory"
    )
    plan_signing_key: SecretText | None = None
    plan_signing_key_file: str | None = None
    history: str | HistoryDoc | None = Field(
        None, description="history store: an SQLite path or a {url, password} mapping"
    )
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", max_length=128)] | None = (
        Field(
            None,
            description="what the history keys this inventory's runs by (since the last run), "
            "whatever folder it is checked out in; default: the file's absolute path",
        )
    )


# Errors that are about the file's shape; the loader words every other one itself.
_SHAPE_ERRORS = {"extra_forbidden", "model_type", "model_attributes_type", "dict_type"}


def _where(loc: Sequence[Any], mapping: bool) -> str:
    """The loader's name for a place: "host 'uap-1': jump", "group 'east'", "defaults"."""
    if not loc:
        return "top level"
    section, rest = loc[0], list(loc[1:])
    if section in ("groups", "hosts", "gateways") and rest:
        place = f"{section[:-1]} {rest[0]!r}"
        if len(rest) > 1 and (mapping or rest[1] == "jump"):
            place += f": {rest[1]}"  # a group's vars (as a mapping), a host's jump
        return place
    return str(section)


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _at(doc: Any, loc: Sequence[Any]) -> Any:
    for part in loc:
        doc = doc[part] if isinstance(doc, dict) else None
    return doc


_ENTRIES: dict[str, type[_Doc]] = {"groups": GroupDoc, "hosts": HostDoc, "gateways": GatewayDoc}
_SECTIONS: dict[str, type[_Doc]] = {
    "defaults": HostSettingsDoc,
    "vars": HostSettingsDoc,
    "jump": JumpDoc,
    "history": HistoryDoc,
}


def _model_at(loc: Sequence[Any]) -> type[_Doc]:
    model: type[_Doc] = InventoryDoc
    path = list(loc)
    while path:
        part = path.pop(0)
        if part == HistoryDoc.__name__:
            continue  # pydantic names the member of `history: str | HistoryDoc` it tried
        if model is InventoryDoc and part in ("groups", "hosts", "gateways") and path:
            path.pop(0)  # the group, host or gateway name
            model = _ENTRIES[part]
        else:
            model = _SECTIONS[part]
    return model


def structure_error(doc: Any) -> str | None:
    """The first problem with the file's shape, as "<where>: <what to do>", or None."""
    try:
        InventoryDoc.model_validate(doc)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            loc = [p for p in err["loc"] if p != "[key]"]
            if err["type"] == "string_type" and err["loc"][-1:] == ("[key]",):
                return f"{_where(loc[:-1], True)}: {_key_not_text(loc[-1])}"
            if err["type"] not in _SHAPE_ERRORS:
                continue  # a value: the loader checks it with the field's own message
            if err["type"] != "extra_forbidden":
                kind = _kind(_at(doc, loc))
                return f"{_where(loc, True)}: must be a mapping (key: value), not {kind}"
            key, where = loc[-1], _where(loc[:-1], False)
            if not isinstance(key, str):
                return f"{where}: {_key_not_text(key)}"
            known = list(_model_at(loc[:-1]).model_fields)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
            return f"{where}: unknown key {key!r}: {hint}"
    return None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an inventory file (draft 2020-12), for editors and CI linters."""
    schema = InventoryDoc.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }
