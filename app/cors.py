"""CORS for the storefront origins in BFF_ALLOWED_ORIGINS, with credentials; nobody else gets any.

A pure ASGI layer, because Starlette's answers a refused preflight with a plain-text 400 that still
carries allow-* headers. Here a preflight from another origin, or asking for a method or header we do
not accept, is a JSON 403 `origin_not_allowed` with no CORS headers at all, and an actual request from
another origin passes through untouched (the browser then withholds the response from the page).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import OriginNotAllowed, send_error
from app.urls import is_trusted

ALLOW_METHODS = ("GET", "POST")
# traceparent and tracestate: a front end that traces (W3C trace context) continues its trace here (tracing.py).
ALLOW_HEADERS = ("content-type", "x-csrf", "accept-language", "x-request-id", "traceparent", "tracestate")
EXPOSE_HEADERS = ("Retry-After", "X-Request-ID", "X-Shopify-Request-Id")
MAX_AGE = 600


class CORS:
    """Answers preflights and labels responses for allowed origins (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins
        self._preflight_headers = [
            (b"access-control-allow-methods", ", ".join(ALLOW_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(ALLOW_HEADERS).encode()),
            (b"access-control-max-age", str(MAX_AGE).encode()),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
            (b"content-length", b"0"),
        ]
        self._simple_headers = [
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", ", ".join(EXPOSE_HEADERS).encode()),
        ]

    # A plain `def` returning the inner coroutine: no frame of its own in the request's chain (pipeline.py).
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        origin = method = requested = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                method = value
            elif name == b"access-control-request-headers":
                requested = value
        if origin is None:
            return self.app(scope, receive, send)
        # The same predicate as the CSRF check (security.py), so the two never disagree on an origin.
        allowed = is_trusted(origin.decode("latin-1"), self.origins)
        if scope["method"] == "OPTIONS" and method is not None:
            return self._preflight(send, origin if allowed else None, method, requested)
        # Vary on every answer to a request with an Origin, allowed or not, so no shared cache hands
        # one origin's variant to another.
        headers = [(b"access-control-allow-origin", origin), *self._simple_headers] if allowed else []
        headers.append((b"vary", b"Origin"))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        return self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, origin: bytes | None, method: bytes, requested: bytes | None) -> None:
        asked = {h.strip().lower() for h in (requested or b"").decode("latin-1").split(",") if h.strip()}
        if origin is None or method.decode("latin-1") not in ALLOW_METHODS or not asked <= set(ALLOW_HEADERS):
            await send_error(send, OriginNotAllowed(), extra=[(b"vary", b"Origin")])
            return
        headers = [(b"access-control-allow-origin", origin), *self._preflight_headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
