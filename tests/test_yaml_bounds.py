"""Input files that cost more than their size: alias bombs and deep nesting.

Inventory, policy and lab config are each read with a "billion laughs" (a few hundred bytes
whose aliases expand to 10^9 values) and with 100 000 nested lists, in YAML and in JSON. Each
must give the typed error naming the file, at once, in little memory; never a RecursionError
traceback, never a message that formats the expanded value.

"At once" is measured in CPU time of the thread (or child process) doing the work, not wall
time: on a loaded 2-core CI machine wall time grows with every other process, CPU time does
not. The bounds sit far above what the bounded code takes (milliseconds for the bomb, ~0.2 s
for 100 000 levels) and far below what the unbounded work would cost (10^9 values).

The bombs run in a child process under a 1 GiB address-space limit: should the bound ever be
lost, the child fails with MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mml_tool.errors import ConfigError, InventoryError, PolicyError
from mml_tool.inventory import load_inventory
from mml_tool.lab.lab import load_lab_config
from mml_tool.policy import load_policy
from mml_tool.yamlload import MAX_DEPTH, show


def _bomb_anchors(indent: str) -> str:
    """Nine levels of ten aliases each: the last one, *l9, expands to 10^9 strings."""
    lines = [f"{indent}l0: &l0 [{', '.join(['lol'] * 10)}]"]
    for level in range(1, 10):
        lines.append(f"{indent}l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]")
    return "\n".join(lines)


BOMBS = {
    "inventory": f"""\
groups:
  bombs:
    description:
{_bomb_anchors("      ")}
hosts:
  uap-1:
    hostname: 127.0.0.1
    username: admin
    password: secret
    transport: *l9
""",
    "policy": f"""\
policy: {{name: bomb}}
controls:
  - id: C1
    title:
{_bomb_anchors("      ")}
    severity: *l9
    rule: {{software_parameter: {{id: P978, bit: 0, value: 0}}}}
""",
    "lab": f"""\
nodes:
  uap-1:
    ne_name:
{_bomb_anchors("      ")}
    state_file: *l9
""",
}

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time, tracemalloc
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from mml_tool.errors import ConfigError
    from mml_tool.inventory import load_inventory
    from mml_tool.lab.lab import load_lab_config
    from mml_tool.policy import load_policy
    from pathlib import Path
    kind, path = sys.argv[1], Path(sys.argv[2])
    load = {"inventory": lambda: load_inventory(path, env={}), "policy": lambda: load_policy(path),
            "lab": lambda: load_lab_config(path)}[kind]
    tracemalloc.start()
    started = time.process_time()
    try:
        load()
        error, message = "", ""
    except ConfigError as exc:
        error, message = type(exc).__name__, str(exc)
    elapsed = time.process_time() - started  # CPU seconds: immune to a loaded machine
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"error": error, "message": message, "elapsed": elapsed, "peak": peak}))
    """
)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("inventory", "InventoryError"), ("policy", "PolicyError"), ("lab", "ConfigError")],
)
def test_an_alias_bomb_is_refused_at_once_in_little_memory(
    tmp_path: Path, kind: str, error: str
) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(BOMBS[kind], encoding="utf-8")
    assert path.stat().st_size < 2000
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    outcome = json.loads(child.stdout)
    assert outcome["error"] == error, outcome
    message = outcome["message"]
    assert str(path) in message and "aliases" in message and "billion laughs" in message
    assert len(message) < 600
    assert outcome["elapsed"] < 1.0, outcome  # CPU s; takes ~0.003 (tracemalloc included)
    assert outcome["peak"] < 16 << 20, outcome  # bytes: the file's graph, never its expansion


@pytest.mark.parametrize("as_json", [False, True], ids=["yaml", "json"])
@pytest.mark.parametrize(
    ("kind", "body", "error"),
    [
        ("inventory", lambda deep: f'{{"hosts": {{"uap-1": {deep}}}}}', InventoryError),
        ("policy", lambda deep: f'{{"policy": {{"name": {deep}}}, "controls": []}}', PolicyError),
        ("lab", lambda deep: f'{{"nodes": {{"uap-1": {{"ne_name": {deep}}}}}}}', ConfigError),
    ],
)
def test_deep_nesting_is_a_typed_error_naming_the_file(
    tmp_path: Path, kind: str, body: object, error: type[ConfigError], as_json: bool
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    text = body(nested)  # type: ignore[operator]
    path = tmp_path / (f"{kind}.json" if as_json else f"{kind}.yaml")
    path.write_text(text if as_json else text.replace('"', ""), encoding="utf-8")
    load = {
        "inventory": lambda: load_inventory(path, env={}),
        "policy": lambda: load_policy(path),
        "lab": lambda: load_lab_config(path),
    }[kind]
    started = time.thread_time()
    with pytest.raises(error) as info:
        load()
    assert time.thread_time() - started < 2.0  # CPU s of this thread; takes ~0.2
    message = str(info.value)
    assert str(path) in message and f"nested deeper than {MAX_DEPTH} levels" in message
    assert "line 1" in message


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("groups: {g: {description: &a [*a]}}\nhosts: {}\n", encoding="utf-8")
    with pytest.raises(InventoryError, match="recursive structure"):
        load_inventory(path, env={})


def test_anchors_and_merge_keys_within_bounds_still_work(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "groups:\n  g:\n    vars: &common {username: admin, password: secret, timeout: 12}\n"
        "hosts:\n"
        "  uap-1: {hostname: 127.0.0.1, <<: *common}\n"
        "  uap-2: {hostname: 127.0.0.2, <<: *common, timeout: 5}\n",
        encoding="utf-8",
    )
    inventory = load_inventory(path, env={})
    assert inventory.hosts["uap-1"].timeout == 12.0
    assert inventory.hosts["uap-2"].timeout == 5.0


def test_show_never_builds_the_whole_repr() -> None:
    level: list[object] = ["lol"] * 10
    for _ in range(9):
        level = [level] * 10  # 10^10 strings once expanded
    started = time.thread_time()
    text = show(level)
    assert time.thread_time() - started < 0.5  # CPU s; takes ~0.0001, the whole repr: hours
    assert len(text) <= 60 and text.startswith("[[")


def test_a_deep_lab_state_file_is_a_typed_error(tmp_path: Path) -> None:
    from mml_tool.lab.uap import SfpStore

    state = tmp_path / "uap-1.json"
    state.write_text('{"version": 1, "params": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match="not a lab state file"):
        SfpStore({"P978": 1}, state)
