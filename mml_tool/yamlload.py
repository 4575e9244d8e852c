"""Reading the YAML input files (inventory, policy, lab config) within bounds.

Two shapes of input cost far more than the file they come in:

- deep nesting: PyYAML builds documents recursively, so some 1000 nested lists (``[[[[...``,
  JSON too) end in a ``RecursionError`` traceback instead of an error naming the file;
- aliases: ``&a`` / ``*a`` share one object, so a "billion laughs" file of a few hundred bytes
  loads as a small graph that expands to 10^9 values as soon as anything walks it (``repr`` or
  ``str`` in an error message, a JSON dump): gigabytes and minutes.

``load_yaml`` refuses both, with the caller's error class, naming the file and what to do.
``show`` formats any loaded value for a message within a fixed size.

    doc = load_yaml(path.read_text(), str(path), InventoryError)   # yaml.YAMLError as before
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml

from mml_tool.errors import ConfigError

#: Deeper than any real inventory, policy or lab config; far from Python's recursion limit.
MAX_DEPTH = 64
#: Values a document may hold once every alias is expanded; a 10 000-host inventory has far
#: fewer, a billion-laughs bomb far more.
MAX_EXPANDED_VALUES = 1_000_000


class _Refused(yaml.YAMLError):
    """The document is over a bound; the message says which, and where."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting past MAX_DEPTH and alias expansion past the bound."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(
                    f"nested deeper than {MAX_DEPTH} levels at line {mark.line + 1}: flatten "
                    "the file (no inventory, policy or lab config needs that depth)"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Count the values ``root`` holds with every alias expanded, without expanding any: each
    node is visited once and its expanded size memoised, so a bomb costs its own size."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the path from the root: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_EXPANDED_VALUES:
                line = node.start_mark.line + 1
                raise _Refused(
                    f"its aliases (*name) expand to more than {MAX_EXPANDED_VALUES} values "
                    f"(the structure starting at line {line}): refused, as a 'billion laughs' "
                    "bomb would be; write the values out or use fewer nested aliases"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _Refused(
                f"an alias at or below line {node.start_mark.line + 1} refers to a structure "
                "that contains it (a recursive structure): remove the alias"
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


# libyaml's parser is ~10x faster than the pure-Python one (a 1000-host inventory: 0.2 s ->
# ~25 ms), but its composer recurses in C without a bound: the depth must be known before it runs.
_CSafeLoader: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)
_OPENS = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSES = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _too_deep(mark: Any) -> _Refused:
    line = f" at line {mark.line + 1}" if mark is not None else ""
    return _Refused(
        f"nested deeper than {MAX_DEPTH} levels{line}: flatten the file (no inventory, "
        "policy or lab config needs that depth)"
    )


def _load_with_libyaml(
    text: str | bytes, loader_class: type[yaml.CSafeLoader]
) -> tuple[Any, yaml.Node | None]:
    """The bounds of ``_BoundedLoader`` with libyaml: one pass over the event stream (libyaml's
    parser keeps its own stack: no recursion) refuses nesting past MAX_DEPTH and notes aliases;
    then libyaml composes the nodes, the expansion is counted (when there are aliases) and
    SafeConstructor builds the values."""
    depth, aliases = 0, False
    try:
        for event in yaml.parse(text, Loader=loader_class):
            if isinstance(event, _CLOSES):
                depth -= 1
            elif isinstance(event, yaml.NodeEvent):  # one level below the open collections
                if depth + 1 > MAX_DEPTH:
                    raise _too_deep(event.start_mark)
                if isinstance(event, _OPENS):
                    depth += 1
                elif isinstance(event, yaml.AliasEvent):
                    aliases = True
    except yaml.MarkedYAMLError as exc:  # libyaml's own limit (1000), met while scanning ahead
        if "nesting depth" in str(exc.problem):
            raise _too_deep(exc.problem_mark) from None
        raise
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if aliases:  # without aliases the values are as many as the file's nodes
            _check_expansion(node)
        return _construct(loader, node), node
    finally:
        loader.dispose()


def _construct(loader: yaml.SafeLoader | yaml.CSafeLoader, node: yaml.Node) -> Any:
    """The values of ``node``. A scalar its explicit tag does not fit (``!!int x``,
    ``!!bool maybe``) makes PyYAML's constructor raise ValueError, KeyError or AttributeError,
    not a YAMLError: refused here, naming the line and the tag, never the value (a secret?)."""
    try:
        return loader.construct_document(node)
    except (ValueError, KeyError, AttributeError, TypeError, OverflowError):
        bad = _unfitting_scalar(node)
        where = f"line {bad.start_mark.line + 1}: " if bad is not None else ""
        tag = f"its tag {_short_tag(bad.tag)}" if bad is not None else "its tag"
        raise _Refused(
            f"{where}a value cannot be read as {tag} says: remove the tag, or write a value of "
            "that type"
        ) from None


def _short_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


def _unfitting_scalar(root: yaml.Node) -> yaml.ScalarNode | None:
    """The first scalar (in file order) that its tag's constructor cannot build."""
    constructor = yaml.constructor.SafeConstructor()
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                constructor.construct_object(node)
            except Exception:  # whatever the constructor raises: this is the scalar
                return node
        stack.extend(reversed(_children(node)))
    return None


def _load_with_python(text: str | bytes) -> tuple[Any, yaml.Node | None]:
    loader = _BoundedLoader(text)  # a SafeLoader: no object tags
    try:
        node = loader.get_single_node()
        return (None, None) if node is None else (_construct(loader, node), node)
    finally:
        loader.dispose()


def load_yaml(text: str | bytes, source: str, error: type[ConfigError]) -> Any:
    """Parse one YAML (or JSON) document safely and within bounds.

    Over a bound: ``error`` naming ``source``. Any other ``yaml.YAMLError`` is raised as is,
    for the caller's own message.
    """
    return load_yaml_nodes(text, source, error)[0]


def load_yaml_nodes(
    text: str | bytes, source: str, error: type[ConfigError]
) -> tuple[Any, yaml.Node | None]:
    """``load_yaml``, and the composed node the values were built from (None: empty): each
    scalar node keeps its text as written, which the value YAML made of it may not show
    (``0x10`` is 16). After construction a mapping node holds its merged (``<<``) pairs too."""
    try:
        if _CSafeLoader is not None:
            return _load_with_libyaml(text, _CSafeLoader)
        return _load_with_python(text)
    except _Refused as exc:
        raise error(f"{source}: {exc}") from None
    except RecursionError:  # a bound above was not enough somewhere: still the file's fault
        raise error(
            f"{source}: nested too deeply to be read: flatten the file (at most {MAX_DEPTH} levels)"
        ) from None


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 2
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4


def show(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, without ever building the whole repr: a
    loaded value can be a shared structure that expands to gigabytes."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
