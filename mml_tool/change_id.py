"""Change ticket IDs: checked before they name anything on disk.

`run` writes its evidence under ``EVIDENCE/CHANGE-ID``; a change ID such as ``../x``, ``/tmp/x``
or ``a/b`` would put it somewhere else (or overwrite another change's bundle). A change ID is a
ticket number: letters and digits, then also ``.``, ``_``, ``-``, ``+``, ``#``, ``@``; at most 100
characters, starting with a letter or digit (so never ``.``, ``..`` or an option-like ``-x``).
"""

from __future__ import annotations

import re
from pathlib import Path

from mml_tool.errors import ConfigError

MAX_LENGTH = 100
_CHANGE_ID_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+#@-]{{0,{MAX_LENGTH - 1}}}")


def validate_change_id(change_id: str) -> str:
    """``change_id`` when it is safe as one file name; ConfigError saying why not."""
    if _CHANGE_ID_RE.fullmatch(change_id):
        return change_id
    shown = repr(change_id[:40]) + ("..." if len(change_id) > 40 else "")
    if not change_id:
        why = "it is empty"
    elif "/" in change_id or "\\" in change_id:
        why = "it holds a path separator"
    elif len(change_id) > MAX_LENGTH:
        why = f"it is longer than {MAX_LENGTH} characters"
    else:
        why = "it must start with a letter or digit and hold only letters, digits and . _ - + # @"
    raise ConfigError(
        f"change ID {shown} cannot be used: {why}. It names the evidence folder under "
        "--evidence, so paths (../x, /abs) are refused; use the ticket number, e.g. CHG0042"
    )


def evidence_folder(root: Path, change_id: str) -> Path:
    """The evidence folder of ``change_id`` under ``root``, never outside it."""
    return root / validate_change_id(change_id)
