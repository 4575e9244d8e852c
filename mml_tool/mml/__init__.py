"""The MML protocol: commands, responses, transports, sessions."""

from __future__ import annotations
