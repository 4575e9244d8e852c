"""The MML protocol: commands, responses, transports, sessions.

Layered like scrapli: a transport moves bytes, the session frames reports and matches them to
the command sent, and commands are validated values that render to one safe line.

    from mml_tool.mml import ConnectionParams, MmlCommand, MmlSession
    with MmlSession(ConnectionParams(host="192.0.2.5", transport="tcp")) as session:
        response = session.run(MmlCommand.parse("LST SFP: ID=P978;"))
        response.raise_for_retcode()
"""

from __future__ import annotations

from mml_tool.mml.blocks import MmlBlock
from mml_tool.mml.command import MmlCommand, Quoted, mask_text, quoted
from mml_tool.mml.params import ConnectionParams, HasConnectionParams, JumpHost
from mml_tool.mml.response import (
    MmlReport,
    MmlResponse,
    ResponseParser,
    echo_matches,
    parse_report,
    parse_response,
)
from mml_tool.mml.session import MmlSession, Transcript
from mml_tool.mml.transport import (
    SshShellTransport,
    SshTunnelTransport,
    TcpTransport,
    Transport,
    make_transport,
    register_transport,
)

__all__ = [
    "ConnectionParams",
    "HasConnectionParams",
    "JumpHost",
    "MmlBlock",
    "MmlCommand",
    "MmlReport",
    "MmlResponse",
    "MmlSession",
    "Quoted",
    "ResponseParser",
    "SshShellTransport",
    "SshTunnelTransport",
    "TcpTransport",
    "Transcript",
    "Transport",
    "echo_matches",
    "make_transport",
    "mask_text",
    "parse_report",
    "parse_response",
    "quoted",
    "register_transport",
]
