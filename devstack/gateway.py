"""Local stand-in for the production HTTPS load balancer.

Routes ``/api/<name>/...`` to that function's own server (path and query unchanged, since the
functions answer the full paths) and ``/socket.io/`` to the realtime instances, WebSockets
included. Like the load balancer (whose routes come from the same registry), it never forwards
an internal path (Cloud Tasks / Scheduler targets): those answer 404 here. Errors follow the
contract's problem+json shape.

Run: ``python -m devstack.gateway --port 8080 --routes '{"auth": "http://127.0.0.1:8101"}'
[--realtime '["http://127.0.0.1:8201"]'] [--blocked '["/api/ingest/tasks/"]']``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection",
    )
)  # fmt: skip
# aiohttp's ws_connect negotiates these itself.
WS_HANDSHAKE = frozenset(
    h.lower()
    for h in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
              "Sec-WebSocket-Protocol", "Host")
)  # fmt: skip
RETRY_AFTER_SECONDS = "2"
# Engine.IO's handshake answers with the session id the client then sends as ``?sid=``.
SID_IN_HANDSHAKE = re.compile(rb'"sid"\s*:\s*"(?P<sid>[^"]+)"')
MAX_STICKY_SESSIONS = 10_000

ROUTES: web.AppKey[dict[str, str]] = web.AppKey("routes", dict)
BLOCKED: web.AppKey[tuple[str, ...]] = web.AppKey("blocked", tuple)
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("client", aiohttp.ClientSession)


class RealtimePool:
    """Realtime upstreams with Socket.IO sticky sessions.

    python-socketio needs every request of one Engine.IO session (long-polling GETs/POSTs, then
    the WebSocket upgrade) to reach the instance that issued the ``sid``. We learn sid→instance
    from the handshake response and pick round-robin for requests without a sid.
    """

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self._next = itertools.cycle(range(len(self.urls))) if self.urls else None
        self._sticky: OrderedDict[str, str] = OrderedDict()

    def pick(self, sid: str | None) -> str | None:
        if not self.urls or self._next is None:
            return None
        if sid is not None:
            if sid in self._sticky:
                self._sticky.move_to_end(sid)
                return self._sticky[sid]
            # Unknown sid (e.g. gateway restarted): a stable choice beats a random one.
            return self.urls[hash(sid) % len(self.urls)]
        return self.urls[next(self._next)]

    def remember(self, body: bytes, upstream: str) -> None:
        match = SID_IN_HANDSHAKE.search(body)
        if match is None:
            return
        self._sticky[match.group("sid").decode()] = upstream
        while len(self._sticky) > MAX_STICKY_SESSIONS:
            self._sticky.popitem(last=False)


REALTIME = web.AppKey("realtime", RealtimePool)


def problem(
    status: int, title: str, detail: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/problem+json",
        headers=headers,
    )


def unavailable(detail: str) -> web.Response:
    return problem(503, "Service Unavailable", detail, {"Retry-After": RETRY_AFTER_SECONDS})


def forward_headers(request: web.Request, exclude: frozenset[str]) -> CIMultiDict[str]:
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in exclude)
    # Like the real load balancer: append the peer to X-Forwarded-For and say it was HTTP.
    peer = request.remote or ""
    previous = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    headers.setdefault("X-Forwarded-Proto", request.scheme)
    headers.setdefault("X-Forwarded-Host", request.host)
    return headers


def is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def proxy_http(
    request: web.Request, upstream: str, on_body: Callable[[bytes], None] | None = None
) -> web.StreamResponse:
    client = request.app[CLIENT]
    url = URL(upstream + request.raw_path, encoded=True)
    headers = forward_headers(request, HOP_BY_HOP)
    data = request.content if request.body_exists else None
    try:
        async with client.request(
            request.method, url, headers=headers, data=data, allow_redirects=False
        ) as upstream_response:
            response_headers = CIMultiDict(
                (k, v) for k, v in upstream_response.headers.items() if k.lower() not in HOP_BY_HOP
            )
            if on_body is not None:
                # Small Engine.IO handshake: buffered so the sid can be read from it.
                body = await upstream_response.read()
                on_body(body)
                return web.Response(
                    status=upstream_response.status, body=body, headers=response_headers
                )
            response = web.StreamResponse(
                status=upstream_response.status,
                reason=upstream_response.reason,
                headers=response_headers,
            )
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (TimeoutError, aiohttp.ClientConnectionError) as error:
        return unavailable(f"{upstream} is unavailable ({type(error).__name__})")


WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


async def _pump(source: WebSocket, sink: WebSocket) -> None:
    async for message in source:
        if message.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
            break


async def proxy_websocket(request: web.Request, upstream: str) -> web.StreamResponse:
    client = request.app[CLIENT]
    url = URL(upstream + request.raw_path, encoded=True)
    protocols = [
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p
    ]
    try:
        upstream_ws = await client.ws_connect(
            url,
            headers=forward_headers(request, HOP_BY_HOP | WS_HANDSHAKE),
            protocols=protocols,
            autoping=False,
        )
    except aiohttp.WSServerHandshakeError as error:
        return problem(error.status, "Bad Gateway", f"upstream refused the WebSocket: {error}")
    except (TimeoutError, aiohttp.ClientConnectionError) as error:
        return unavailable(f"{upstream} is unavailable ({type(error).__name__})")
    async with upstream_ws:
        downstream = web.WebSocketResponse(
            protocols=[upstream_ws.protocol] if upstream_ws.protocol else (), autoping=False
        )
        await downstream.prepare(request)
        tasks = [
            asyncio.create_task(_pump(downstream, upstream_ws)),
            asyncio.create_task(_pump(upstream_ws, downstream)),
        ]
        # Either side closing ends the tunnel; then close the other side too.
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await downstream.close()
    return downstream


async def api(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    upstream = request.app[ROUTES].get(name)
    if upstream is None or is_blocked(request.path, request.app[BLOCKED]):
        return problem(404, "Not Found", f"no function serves /api/{name}")
    if is_websocket(request):
        return await proxy_websocket(request, upstream)
    return await proxy_http(request, upstream)


def is_blocked(path: str, blocked: Sequence[str]) -> bool:
    """An internal path: exact, or under a blocked prefix ending in "/"."""
    return any(path.startswith(b) if b.endswith("/") else path == b for b in blocked)


async def socketio(request: web.Request) -> web.StreamResponse:
    pool = request.app[REALTIME]
    sid = request.query.get("sid")
    upstream = pool.pick(sid)
    if upstream is None:
        return unavailable("no realtime server is running")
    if is_websocket(request):
        return await proxy_websocket(request, upstream)
    if sid is None and request.method == "GET":
        return await proxy_http(request, upstream, lambda body: pool.remember(body, upstream))
    return await proxy_http(request, upstream)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def not_found(request: web.Request) -> web.Response:
    return problem(404, "Not Found", f"nothing serves {request.path}")


async def _client_context(app: web.Application) -> AsyncIterator[None]:
    # No overall timeout: imports and long-polls may legitimately take long; connecting must
    # not. No decompression: bodies pass through byte for byte with their Content-Encoding.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    # Idle upstream connections are dropped after 1 s, before gunicorn's own 2 s keep-alive
    # closes them: reusing one the server is closing that instant fails the request with
    # ServerDisconnectedError (seen as a spurious 503 under load).
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=1.0)
    async with aiohttp.ClientSession(
        timeout=timeout,
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        app[CLIENT] = session
        yield


def make_app(
    routes: Mapping[str, str], realtime: Sequence[str] = (), blocked: Sequence[str] = ()
) -> web.Application:
    app = web.Application(client_max_size=0)
    app[ROUTES] = {name: url.rstrip("/") for name, url in routes.items()}
    app[BLOCKED] = tuple(blocked)
    app[REALTIME] = RealtimePool([url.rstrip("/") for url in realtime])
    app.cleanup_ctx.append(_client_context)
    app.router.add_get("/healthz", healthz)
    app.router.add_route("*", r"/api/{name}", api)
    # A path may hold any character once decoded (a newline too, which "." would not match).
    app.router.add_route("*", r"/api/{name}/{tail:[\s\S]*}", api)
    app.router.add_route("*", r"/socket.io/{tail:[\s\S]*}", socketio)
    app.router.add_route("*", r"/{tail:[\s\S]*}", not_found)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ValorizeAI local gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--routes", type=json.loads, default={}, help='{"name": "url"}')
    parser.add_argument("--realtime", type=json.loads, default=[], help='["url", ...]')
    parser.add_argument(
        "--blocked", type=json.loads, default=[], help='internal paths: ["/api/x/tasks/", ...]'
    )
    args = parser.parse_args(argv)
    web.run_app(
        make_app(args.routes, args.realtime, args.blocked),
        host=args.host,
        port=args.port,
        access_log_format='%a "%r" %s %b %Tf',
        print=lambda message: print(message, flush=True),
    )


if __name__ == "__main__":
    main()
