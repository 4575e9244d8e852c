"""mml-tool: keep Huawei UAP9600 platforms configured right, change them safely, prove it."""

from __future__ import annotations

__version__ = "0.1.0"
