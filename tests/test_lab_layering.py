"""The lab is the test oracle: it imports nothing above ``mml_tool.mml`` and never the parser."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mml_tool.lab

LAB = Path(mml_tool.lab.__file__).parent
# What the lab may import from mml_tool: itself, the protocol layer and the base helpers
# (exceptions, secrets, bounded YAML, atomic writes) that everything may use.
ALLOWED = (
    "mml_tool.lab",
    "mml_tool.mml",
    "mml_tool.errors",
    "mml_tool.secret",
    "mml_tool.yamlload",
    "mml_tool.atomic",
    "mml_tool._io",
)


def imports_above(source: str, module: str) -> list[str]:
    """The ``mml_tool`` modules that ``source`` imports and the lab may not."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level]
                names = [".".join([*base, node.module or ""]).rstrip(".")]
            else:
                names = [node.module or ""]
            # "from mml_tool import parsing" imports a module too
            if names == ["mml_tool"]:
                names = [f"mml_tool.{alias.name}" for alias in node.names]
        for name in names:
            top = name == "mml_tool" or name.startswith("mml_tool.")
            if top and not any(name == a or name.startswith(a + ".") for a in ALLOWED):
                found.append(name)
    return found


def _lab_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(LAB.rglob("*.py")):
        parts = path.relative_to(LAB.parent.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def test_the_lab_has_modules_to_check() -> None:
    names = {name for name, _ in _lab_modules()}
    assert {"mml_tool.lab.uap.server", "mml_tool.lab.gateway.server", "mml_tool.lab.lab"} <= names


@pytest.mark.parametrize(("module", "path"), _lab_modules(), ids=lambda v: str(v))
def test_a_lab_module_imports_nothing_above_mml(module: str, path: Path) -> None:
    assert imports_above(path.read_text(encoding="utf-8"), module) == []


@pytest.mark.parametrize(
    "line",
    [
        "from mml_tool.parsing import parse_records",
        "import mml_tool.parsing",
        "from mml_tool import parsing",
        "from ...parsing import parse_records",
        "import mml_tool",
        "def f():\n    from mml_tool.check import check_host\n",
    ],
)
def test_the_check_catches_an_import_from_above(line: str) -> None:
    assert imports_above(line, "mml_tool.lab.uap.server") != []


def test_the_check_lets_the_protocol_layer_and_base_helpers_through() -> None:
    source = (
        "from mml_tool.errors import ConfigError\nfrom mml_tool.mml.response import Response\n"
        "from . import state\nfrom .config import NodeConfig\n"
    )
    assert imports_above(source, "mml_tool.lab.uap.server") == []
