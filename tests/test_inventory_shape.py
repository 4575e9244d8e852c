"""inventory.shape.clean skips pydantic for well-formed files (issue 14): it may only say
"clean" where the models find no shape problem, so every message stays the models' own."""

from __future__ import annotations

from typing import Any

import pytest

from mml_tool.inventory import schema, shape


def test_the_key_sets_are_the_models_fields() -> None:
    assert set(schema.InventoryDoc.model_fields) == shape.INVENTORY_KEYS
    assert set(schema.HostSettingsDoc.model_fields) == shape.HOST_SETTINGS_KEYS
    assert set(schema.HostDoc.model_fields) == shape.HOST_KEYS
    assert set(schema.JumpDoc.model_fields) == shape.JUMP_KEYS
    assert set(schema.GroupDoc.model_fields) == shape.GROUP_KEYS
    assert set(schema.GatewayDoc.model_fields) == shape.GATEWAY_KEYS
    assert set(schema.HistoryDoc.model_fields) == shape.HISTORY_KEYS


GOOD: list[Any] = [
    {},
    {"hosts": None, "groups": None, "gateways": None, "defaults": None, "history": None},
    {
        "defaults": {"username": "u", "password": "${P}", "jump": {"hostname": "j", "port": 22}},
        "groups": {"east": {"vars": {"port": 22, "jump": None}, "description": "d"}, "w": None},
        "hosts": {"uap-1": {"hostname": "127.0.0.1", "groups": ["east"]}, "uap-2": None},
        "gateways": {"gw": {"url": "https://127.0.0.1:1", "timeout": 5}, "gw2": None},
        "history": {"url": "h.db", "password_file": "p"},
        "lock_dir": "locks",
    },
    {"history": "runs.db"},
    # wrong values (not shapes) are the loader's to word: clean, and the models agree
    {"hosts": {"uap-1": {"port": "x", "hostname": {"a": 1}, "groups": {"a": 1}}}},
    {"history": {"password": "x"}},  # url missing: the loader's message
]
BAD: list[Any] = [
    [],
    "text",
    None,
    {"host": {}},
    {1: {}},
    {"hosts": []},
    {"hosts": {1: {}}},
    {"hosts": {"uap-1": {"hostnme": "x"}}},
    {"hosts": {"uap-1": "x"}},
    {"hosts": {"uap-1": {"jump": "x"}}},
    {"hosts": {"uap-1": {"jump": {"groups": "x"}}}},
    {"groups": {"g": {"vars": {"groups": ["x"]}}}},
    {"groups": {"g": {"vars": []}}},
    {"groups": {"g": {"hostname": "x"}}},
    {"groups": ["g"]},
    {"defaults": {"groups": "x"}},
    {"defaults": "x"},
    {"gateways": {"gw": {"jump": {}}}},
    {"gateways": {"gw": []}},
    {"history": ["x"]},
    {"history": {"url": "x", "user": "y"}},
    {"history": 5},
]


@pytest.mark.parametrize("doc", GOOD)
def test_clean_documents_have_no_shape_problem(doc: Any) -> None:
    assert shape.clean(doc)
    assert schema.structure_error(doc) is None


@pytest.mark.parametrize("doc", BAD)
def test_anything_else_goes_to_the_models(doc: Any) -> None:
    assert not shape.clean(doc)  # the models word it (or, like {1: {}}, let the loader)
