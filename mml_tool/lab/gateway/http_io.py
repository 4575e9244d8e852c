"""HTTP in and out for the gateway simulator: a request read into a ``_Ctx`` and matched to an
interface, a ``_Reply`` written back, and the ``RequestRecord`` tests read."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from mml_tool.lab.gateway.state import (
    _JSON_TYPE,
    _MAX_BODY,
    _ROUTES,
    BASE_PATH,
    RequestRecord,
    _Ctx,
    _Reply,
)


def read_request(handler: BaseHTTPRequestHandler) -> tuple[_Ctx, str]:
    """The request as a ``_Ctx`` (body cut at ``_MAX_BODY``) and its raw query string."""
    split = urlsplit(handler.path)
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(min(length, _MAX_BODY)) if length > 0 else b""
    ctx = _Ctx(
        method=handler.command,
        path=split.path,
        query=parse_qs(split.query, keep_blank_values=True),
        headers={k.lower(): v for k, v in handler.headers.items()},
        body=body,
    )
    return ctx, split.query


def match_route(ctx: _Ctx) -> tuple[str | None, str | None]:
    """(agent ID, interface name) of the request, or (None, None) for no known interface."""
    if ctx.path.startswith(BASE_PATH + "/"):
        rest = ctx.path[len(BASE_PATH) + 1 :]
        for method, pattern, route in _ROUTES:
            match = pattern.match(rest)
            if match and method == ctx.method:
                return match.group(1), route
    return None, None


def write_reply(handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
    if reply.drop:
        # Close without a byte of answer: what a crashed node or a cut link looks like.
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)
        return
    if reply.text is not None:
        payload, ctype = reply.text, reply.content_type
    else:
        payload, ctype = json.dumps(reply.body).encode(), _JSON_TYPE
    handler.send_response(reply.status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(payload)))
    for key, value in reply.headers:
        handler.send_header(key, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(payload)
    handler.wfile.flush()


def request_record(ctx: _Ctx, query: str, agent_id: str | None, reply: _Reply) -> RequestRecord:
    keys: tuple[str, ...] = ()
    if ctx.body:
        try:
            decoded = json.loads(ctx.body)
            if isinstance(decoded, dict):
                keys = tuple(sorted(decoded))
        except ValueError:
            keys = ()
    retcode = reply.body.get("retcode") if reply.text is None and not reply.drop else None
    return RequestRecord(
        time=time.monotonic(),
        method=ctx.method,
        path=ctx.path,
        query=query,
        agent_id=agent_id,
        guid=ctx.headers.get("guid"),
        cookie=ctx.headers.get("cookie"),
        content_type=ctx.headers.get("content-type"),
        status=reply.status,
        retcode=retcode if isinstance(retcode, str) else None,
        body_keys=keys,
        set_guid=any(k.lower() == "set-guid" for k, _ in reply.headers),
    )
