"""The `mml-tool` command line: thin click commands over the library, one module per group.

Exit codes (stable, for schedulers and scripts; the same for every command):
  0 compliant / done, 1 could not decide (or nothing was checked), 2 usage error (found before
  anything is connected to or sent), 100 non-compliant found, 101 end-to-end verification failed.
"""

from mml_tool.cli.app import cli, handle_sigterm, main

__all__ = ["cli", "handle_sigterm", "main"]
