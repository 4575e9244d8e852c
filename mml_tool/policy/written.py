"""How a policy value was written, for values YAML reads as something else.

YAML 1.1 (PyYAML) resolves a plain scalar by its look: ``0x10`` is 16, ``010`` is 8,
``1_000`` is 1000, ``12:30`` is 750, ``on``/``yes``/``no`` are booleans. A value compared with
what a device prints must be that text, so the loader asks ``Written`` for the scalar node a
value came from (its text and line) and refuses one that does not read back as written.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from typing import Any

import yaml

_STR = "tag:yaml.org,2002:str"
#: YAML 1.1 numbers that YAML 1.2 and people read otherwise: 010 (8, octal) and 12:30 (750,
#: base 60). Hex (0x10), binary (0b101) and 1_000 mean one number to every reader.
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")
_NUMBER_START = frozenset("0123456789+-.")  # a cheap test before _EXPONENT
#: What people write as a number with an exponent but YAML 1.1 reads as text (it needs
#: ``1.0e+3``: a dot and a signed exponent).
_EXPONENT = re.compile(r"[-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+")


class Written:
    """The scalar nodes that a loaded document's non-text values were built from (and text
    that looks like a number), found by the dict or list holding the value and its key."""

    def __init__(self, root: yaml.Node | None, doc: Any) -> None:
        # Only these nodes are kept, not the whole tree: a tree kept alive while the policy is
        # checked makes every garbage collection pass walk it (a 2000-control policy: ~+0.3 s).
        self._nodes = _index(root, doc)

    def scalar(self, container: object, key: str | int) -> yaml.ScalarNode | None:
        """The scalar node ``container[key]`` was built from when it matters: a value that is
        not text, or text that looks like a number; None otherwise."""
        return self._nodes.get((id(container), key))


def _index(root: yaml.Node | None, doc: Any) -> dict[tuple[int, str | int], yaml.ScalarNode]:
    """Walk nodes and values together; a node shared through an alias is one value, visited
    once. After construction a mapping node holds its merged (``<<``) pairs too, before its
    own: the last pair of a key wins, as in the dict built from them."""
    found: dict[tuple[int, str | int], yaml.ScalarNode] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node | None, Any]] = [(root, doc)]
    scalar, mapping, sequence = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
    while stack:
        node, value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        children: Any
        if isinstance(node, mapping) and isinstance(value, dict):
            children = ((k.value, v) for k, v in node.value if k.tag == _STR and k.value in value)
        elif isinstance(node, sequence) and isinstance(value, list):
            children = enumerate(node.value[: len(value)])
        else:
            continue
        where = id(value)
        for key, child in children:
            if type(child) is not scalar:
                stack.append((child, value[key]))
            elif child.tag != _STR or (
                child.value[:1] in _NUMBER_START and _EXPONENT.fullmatch(child.value)
            ):
                found[where, key] = child
            else:  # text: nothing to keep (and a repeated key's earlier node is not its own)
                found.pop((where, key), None)
    return found


def reads_as_written(value: object, node: yaml.ScalarNode) -> bool:
    """Whether ``value``, compared as text, is the text written: a string, or a whole
    number written the way Python writes it (``16``, ``-3``; not ``0x10``, ``+16``)."""
    if isinstance(value, str):
        return True
    return type(value) is int and str(value) == node.value


def what_yaml_made(value: object) -> str:
    """``value`` as YAML made it, in words (for a message)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the number {value} (compared as {str(value)!r})"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, datetime):
        return f"the time {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if value is None:
        return "null (no value)"
    return f"a {type(value).__name__}"


def misread(value: object, node: yaml.ScalarNode, key: str | None) -> tuple[str, str]:
    """(problem, what to do) for a value that does not read back as ``node``'s text."""
    text = node.value[:60]
    quoted = json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one
    fix = f"{key}: {quoted}" if key is not None else quoted
    return (
        f"is written {text} (line {node.start_mark.line + 1}), which YAML reads as "
        f"{what_yaml_made(value)}",
        f"quote it to compare the text as written: {fix}",
    )


def number_problem(value: object, node: yaml.ScalarNode | None) -> tuple[str, str] | None:
    """(problem, what to do) when a number of the policy (a ``range`` bound, a bit, a mask, a
    count) is not the number it looks like; None when it is, or is no number at all (the
    loader's own message). Hex, binary and ``1_000`` are numbers; ``010`` (8 in YAML 1.1, 10
    to people and YAML 1.2) and ``12:30`` (750) are refused, as are NaN and ``1e3`` (text to
    YAML 1.1)."""
    if isinstance(value, float) and math.isnan(value):
        return "is NaN (not a number; no value is ever in a range with it)", "give a number"
    if node is None:
        return None
    written = node.value
    at = f"is written {written[:40]} (line {node.start_mark.line + 1}), which YAML 1.1 reads"
    if isinstance(value, str) and _EXPONENT.fullmatch(value):
        number = float(value.replace("_", ""))
        plain = f"{number:f}".rstrip("0").rstrip(".") if abs(number) < 1e15 else "it out"
        return f"{at} as text", f"write {plain}, or with a dot and a signed exponent (1.0e+3)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # 007 is 7 however it is read; 010 is not.
    if _OCTAL.fullmatch(written) and int(written.replace("_", "")) != value:
        return f"{at} as the octal number {value}", "write it without the leading 0"
    if _BASE60.fullmatch(written):
        return f"{at} as a base-60 number ({value:g})", "write the number out"
    return None
