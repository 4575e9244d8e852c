"""Moved to ``mml_tool.change.lock``; this name stays for existing imports (the same module,
so patching one patches the other)."""

import sys

from mml_tool.change import lock as _moved

sys.modules[__name__] = _moved
