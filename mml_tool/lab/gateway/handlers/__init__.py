"""The agent interfaces of the gateway simulator, mixed into ``GatewaySimulator``.

``sessions``: sign-in, GUIDs, the event queue and its long poll; ``calls``: call out, answer,
release and media switch, on top of a session."""

from __future__ import annotations

from mml_tool.lab.gateway.handlers.calls import _AgentCalls


class _Handlers(_AgentCalls):
    """Every agent interface (sign-in, events, calls); the state is the simulator's."""
