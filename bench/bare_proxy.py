"""The floor: a raw-ASGI pass-through proxy with one shared aiohttp session, no auth, no checks.

It reads the body and POSTs it to $BENCH_PROXY_TARGET with the same aiohttp settings as the BFF's
upstream session, then returns the status and body. Whatever the BFF costs beyond this is its own.
"""

from __future__ import annotations

import os

import aiohttp

from bench.upstream import ASGIApp, Receive, Scope, Send

_FORWARD_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


def create_app(target: str | None = None) -> ASGIApp:
    """The proxy app; `target` (default: $BENCH_PROXY_TARGET) is the upstream GraphQL URL."""
    url = target or os.environ["BENCH_PROXY_TARGET"]
    session: aiohttp.ClientSession | None = None

    async def lifespan(receive: Receive, send: Send) -> None:
        nonlocal session
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Same pool shape as the BFF's upstream session (app/main.py), so only the app code differs.
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
                    auto_decompress=False,
                    cookie_jar=aiohttp.DummyCookieJar(),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if session is not None:
                    await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        assert session is not None
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        async with session.post(url, data=b"".join(chunks), headers=_FORWARD_HEADERS) as upstream:
            body = await upstream.read()
            content_type = upstream.headers.get("content-type", "application/json").encode()
            status = upstream.status
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
