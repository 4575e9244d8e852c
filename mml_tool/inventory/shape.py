"""A cheap test that an inventory document has the shape ``schema`` checks, without pydantic.

Importing pydantic and validating with it costs start-up time on every command that reads an
inventory, and almost every file is well-formed. ``clean`` only answers "certainly no shape
problem": every mapping is a mapping (or empty) and every key is a string the models know.
Anything else goes to ``schema.structure_error``, which words the problem; so the messages are
the models' own. ``tests/test_inventory_shape.py`` keeps the key sets equal to the models'.
"""

from __future__ import annotations

from typing import Any

JUMP_KEYS = frozenset(
    [
        "hostname",
        "port",
        "username",
        "password",
        "password_file",
        "password_prompt",
        "key_file",
        "key_passphrase",
        "key_passphrase_file",
        "key_passphrase_prompt",
        "known_hosts",
    ]
)
HOST_SETTINGS_KEYS = JUMP_KEYS | frozenset(
    [
        "transport",
        "trust_on_first_use",
        "connect_timeout",
        "timeout",
        "platform",
        "ne_name",
        "meid",
        "gateway",
        "jump",
        "encoding",
    ]
)
HOST_KEYS = HOST_SETTINGS_KEYS | {"groups"}
GROUP_KEYS = frozenset({"vars", "description"})
GATEWAY_KEYS = frozenset(
    [
        "url",
        "ca_bundle",
        "verify_tls",
        "agent_id",
        "agent_password",
        "agent_password_file",
        "agent_password_prompt",
        "phone_number",
        "called",
        "skill_id",
        "timeout",
    ]
)
HISTORY_KEYS = frozenset({"url", "password", "password_file"})
INVENTORY_KEYS = frozenset(
    [
        "name",
        "defaults",
        "groups",
        "hosts",
        "gateways",
        "lock_dir",
        "plan_signing_key",
        "plan_signing_key_file",
        "history",
        "audit",
    ]
)


def _keys_known(doc: dict[Any, Any], known: frozenset[str]) -> bool:
    return all(isinstance(key, str) and key in known for key in doc)


def _settings(doc: Any, known: frozenset[str]) -> bool:
    """None, or a mapping of known keys whose ``jump`` is None or a mapping of known keys."""
    if doc is None:
        return True
    if not isinstance(doc, dict) or not _keys_known(doc, known):
        return False
    jump = doc.get("jump")
    return jump is None or (isinstance(jump, dict) and _keys_known(jump, JUMP_KEYS))


def _entries(doc: Any, check: Any) -> bool:
    """None, or a mapping of string names to entries that pass ``check``."""
    if doc is None:
        return True
    if not isinstance(doc, dict):
        return False
    return all(isinstance(name, str) and check(entry) for name, entry in doc.items())


def _group(doc: Any) -> bool:
    if doc is None:
        return True
    if not isinstance(doc, dict) or not _keys_known(doc, GROUP_KEYS):
        return False
    return _settings(doc.get("vars"), HOST_SETTINGS_KEYS)


def _host(doc: Any) -> bool:
    return _settings(doc, HOST_KEYS)


def _gateway(doc: Any) -> bool:
    return doc is None or (isinstance(doc, dict) and _keys_known(doc, GATEWAY_KEYS))


def clean(doc: Any) -> bool:
    """True when ``schema.structure_error(doc)`` is certainly None; False when it may not be."""
    if not isinstance(doc, dict) or not _keys_known(doc, INVENTORY_KEYS):
        return False
    history = doc.get("history")
    if not (
        history is None
        or isinstance(history, str)
        or (isinstance(history, dict) and _keys_known(history, HISTORY_KEYS))
    ):
        return False
    return (
        _settings(doc.get("defaults"), HOST_SETTINGS_KEYS)
        and _entries(doc.get("groups"), _group)
        and _entries(doc.get("hosts"), _host)
        and _entries(doc.get("gateways"), _gateway)
    )
