"""The JSON Schemas of the files people write (inventory, policy), shipped in ``schemas/``.

Each is generated from the pydantic models of its file; the shipped copy (for editors, CI
linters, the YAML language server) is kept equal to the models by a test. Regenerate with
``mml-tool schema inventory > mml_tool/schemas/inventory.schema.json`` (and ``policy``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

KINDS = ("inventory", "policy")


def _generators() -> dict[str, Callable[[], dict[str, Any]]]:
    # Imported here: pydantic's schema generation is needed by this command only.
    from mml_tool.inventory.schema import json_schema as inventory_schema
    from mml_tool.policy.schema import json_schema as policy_schema

    return {"inventory": inventory_schema, "policy": policy_schema}


def schema_text(kind: str) -> str:
    """The JSON Schema of ``kind`` (``inventory`` or ``policy``) as the shipped file holds it."""
    if kind not in KINDS:
        raise ValueError(f"no schema {kind!r}: use one of {', '.join(KINDS)}")
    return json.dumps(_generators()[kind](), indent=2, ensure_ascii=False) + "\n"


def shipped_name(kind: str) -> str:
    """The file name under ``mml_tool/schemas/``."""
    return f"{kind}.schema.json"
