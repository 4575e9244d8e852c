"""A policy from a baseline snapshot: controls that require parameters to equal the golden
element's (``mml-tool policy from-snapshot``).

Each control is a whole-value ``software_parameter`` rule, check-only (the MODTYPE that writes
a whole value is not public), written as YAML for review and commit. The text is parsed back
with the policy loader before it is returned, so what is written always loads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from mml_tool.baseline import Snapshot
from mml_tool.errors import ConfigError
from mml_tool.policy import parse_policy
from mml_tool.policy.rules import MAX_VALUE

_PARAMETER_RE = re.compile(r"P[0-9]{1,9}")
WIDTH = 16  # bits of a software parameter (MAX_BIT + 1)


def parse_parameters(text: str) -> list[str]:
    """``P978,P917`` -> ["P978", "P917"] (upper-cased, in order, each once); ConfigError
    naming the first that is not a parameter id."""
    out: list[str] = []
    for part in text.split(","):
        pid = part.strip().upper()
        if not _PARAMETER_RE.fullmatch(pid):
            raise ConfigError(
                f"--parameters: {part.strip()[:40]!r} is not a parameter id like P978"
            )
        if pid not in out:
            out.append(pid)
    if not out:
        raise ConfigError("--parameters: name at least one parameter, e.g. P978,P917")
    return out


def policy_from_snapshot(snapshot: Snapshot, parameters: Sequence[str], source: Path) -> str:
    """The YAML text of a policy requiring ``parameters`` to equal their values in
    ``snapshot`` (read from ``source``). ConfigError when a parameter is not in the snapshot,
    or the snapshot does not hold all its bits (a whole value is then not known)."""
    controls = []
    for pid in parameters:
        bits = snapshot.parameters.get(pid)
        if bits is None:
            raise ConfigError(
                f"{source}: {pid} is not in the snapshot of {snapshot.host}; it holds "
                f"{len(snapshot.parameters)} parameters (mml-tool diff lists them)"
            )
        missing = [b for b in range(WIDTH) if b not in bits]
        if missing:
            raise ConfigError(
                f"{source}: the snapshot of {snapshot.host} does not hold bit(s) "
                f"{', '.join(map(str, missing))} of {pid}, so its whole value is not known; "
                "leave it out, or write a bit rule for the bits it holds"
            )
        value = sum(v << b for b, v in bits.items())
        if value > MAX_VALUE:
            raise ConfigError(f"{source}: {pid} = {value} is wider than 16 bits")
        controls.append(
            {
                "id": f"BASELINE-{snapshot.host}-{pid}".replace(" ", "_"),
                "title": f"{pid} = {value} as on {snapshot.host}",
                "severity": "medium",
                "description": (
                    f"{pid} equals its value on the golden element {snapshot.host} "
                    f"({snapshot.address}), read at {snapshot.taken}. Check-only: the policy "
                    "names no command that writes a whole value."
                ),
                "rule": {"software_parameter": {"id": pid, "value": value}},
            }
        )
    doc = {
        "policy": {
            "name": f"baseline-{snapshot.host}",
            "version": 1,
            "description": f"Parameters as on {snapshot.host} (snapshot {source.name}).",
        },
        "controls": controls,
    }
    header = (
        f"# Made by `mml-tool policy from-snapshot {source.name}` from the snapshot of "
        f"{snapshot.host} taken {snapshot.taken}.\n"
        "# Review it, then commit it: mml-tool check -i INVENTORY -p THIS_FILE\n"
    )
    text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    parse_policy(text.encode("utf-8"), "the generated policy", Path("generated.yaml"))
    return text
