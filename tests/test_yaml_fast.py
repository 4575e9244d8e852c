"""load_yaml uses libyaml when PyYAML has it, with the same bounds as the pure-Python loader."""

from __future__ import annotations

import pytest
import yaml

from mml_tool import yamlload
from mml_tool.errors import ConfigError
from mml_tool.yamlload import MAX_DEPTH, load_yaml

LOADERS = ["libyaml", "python"]


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(yamlload, "_CSafeLoader", None)
    return str(request.param)


def nested(levels: int) -> str:
    """A document whose deepest node is at nesting level ``levels`` (the root is level 1)."""
    return "[" * (levels - 1) + "x" + "]" * (levels - 1)


def test_libyaml_is_used_when_pyyaml_has_it() -> None:
    assert (yamlload._CSafeLoader is not None) == yaml.__with_libyaml__


def test_the_depth_bound_is_the_same_for_both(loader: str) -> None:
    assert load_yaml(nested(MAX_DEPTH), "f.yaml", ConfigError) is not None
    with pytest.raises(ConfigError, match=f"f.yaml: nested deeper than {MAX_DEPTH} levels"):
        load_yaml(nested(MAX_DEPTH + 1), "f.yaml", ConfigError)
    block = "\n".join("  " * i + f"k{i}:" for i in range(MAX_DEPTH)) + " x\n"
    with pytest.raises(ConfigError, match="at line 64"):
        load_yaml(block, "f.yaml", ConfigError)


def test_aliases_are_bounded_and_still_work(loader: str) -> None:
    doc = load_yaml("a: &x {k: 1}\nb: *x\nc: {<<: *x, j: 2}\n", "f.yaml", ConfigError)
    assert doc == {"a": {"k": 1}, "b": {"k": 1}, "c": {"k": 1, "j": 2}}
    bomb = "l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)
    )
    with pytest.raises(ConfigError, match="expand to more than"):
        load_yaml(bomb, "f.yaml", ConfigError)
    with pytest.raises(ConfigError, match="recursive structure"):
        load_yaml("a: &x [1, *x]\n", "f.yaml", ConfigError)


def test_plain_documents_load_the_same(loader: str) -> None:
    text = "hosts:\n  uap-1: {port: 22, on: yes, t: 2026-01-02, n: ~, f: 1.5, s: '0x1'}\n"
    assert load_yaml(text, "f.yaml", ConfigError) == yaml.safe_load(text)
    assert load_yaml("", "f.yaml", ConfigError) is None
