"""`AccessLog(app)`: one log line per request, method, path and status, never the query string.

uvicorn's own access line carries the full URL, and the stand-in's URLs carry OAuth codes, `state` and
`id_token_hint`: a dev log is still a log that gets pasted into issues, so it gets no secrets either.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("mock_shopify.access")


class AccessLog:
    """Pure ASGI middleware; run uvicorn with `access_log=False` beside it.

    `shop` starts each line with the shop's name, for a stand-in serving several shops (shops.py).
    """

    def __init__(self, app: ASGIApp, *, shop: str = "") -> None:
        self.app = app
        self.prefix = f"{shop} " if shop else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # 500 unless a response starts: what the client sees when the app raises before answering.
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            logger.info("%s%s %s %d", self.prefix, scope["method"], scope["path"], status)
