"""The ASGI stack every request passes through, composed once by the app factory, outermost first:

    TraceRequests    the request's span, only when OTEL_* asks for traces   (tracing.py)
    RequestLog       request id (X-Request-ID) and one access-log line      (logs.py)
    SecurityHeaders  nosniff, no-referrer, lockdown CSP; no-store on errors, /auth, /graphql, /cart, /readyz
    CORS             allowed storefront origins only; rejected preflights are JSON 403s  (cors.py)
    ErrorBoundary    anything unexpected becomes a logged JSON 500, never a traceback
    Dispatcher       `/graphql` to its raw ASGI endpoint, everything else (lifespan too) to FastAPI

So every response, a 404, a 500 from any route or a refused preflight included, carries the same
headers and the `{"error", "detail"}` shape, on the raw hot path as on the FastAPI routes.

A layer with nothing to do once the inner app returns (SecurityHeaders, CORS, Dispatcher) is a plain
`def` that returns the inner app's coroutine for its caller to await: each coroutine frame in the chain
is resumed again on every wakeup of the request (each upstream read, each write), so a layer that only
wraps `send` costs a frame per wakeup for nothing (about 1-2 % of a proxied request each, in process).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BFFError, InternalError, send_error

log = logging.getLogger("bff.pipeline")

_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# Nothing this service returns is meant to be framed or to run scripts.
_LOCKDOWN = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
]
_NO_STORE = [(b"cache-control", b"no-store")]
# Answers about a customer, a session or a cart, and the readiness of this instance: never cached.
_PRIVATE_PATHS = ("/auth/", "/graphql", "/cart/", "/readyz")


class SecurityHeaders:
    """Adds nosniff, no-referrer and a lockdown CSP to every response; `Cache-Control: no-store` to
    every error and everything under /auth, /graphql, /cart and /readyz."""

    def __init__(self, app: ASGIApp, *, exempt_paths: tuple[str, ...] = ()) -> None:
        """`exempt_paths` skip the CSP (dev mode's /docs page runs scripts)."""
        self.app = app
        self.exempt = exempt_paths
        # (lockdown, no_store) -> the headers to add, built once.
        self._variants = {
            (lockdown, no_store): _ALWAYS + (_LOCKDOWN if lockdown else []) + (_NO_STORE if no_store else [])
            for lockdown in (True, False)
            for no_store in (True, False)
        }

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        path: str = scope["path"]
        lockdown = not (self.exempt and path.startswith(self.exempt))
        private = path.startswith(_PRIVATE_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                extra = self._variants[lockdown, private or message["status"] >= 400]
                if any(name == b"cache-control" for name, _ in headers):
                    extra = [h for h in extra if h[0] != b"cache-control"]
                message["headers"] = [*headers, *extra]
            await send(message)

        return self.app(scope, receive, send_with_headers)


class ErrorBoundary:
    """The last word on failures: logs any unexpected exception once, with its traceback, and answers
    a JSON 500 if nothing was sent yet. (FastAPI's own error middleware answers its routes' 500s
    through the same renderer and re-raises, so they are logged here too.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                # Already answered (FastAPI's 500 handler re-raises), or too late to answer: the client
                # has what it has; the log gets the reason.
                log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
            elif isinstance(exc, BFFError):
                await send_error(send, exc)
            else:
                log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
                await send_error(send, InternalError())


class Dispatcher:
    """Sends `/graphql` straight to its raw ASGI endpoint and everything else (lifespan too) to FastAPI.

    FastAPI's routing and dependency machinery cost a measurable share of a proxied request's CPU
    (bench/results.md), so the hot path skips them.
    """

    def __init__(self, app: ASGIApp, graphql: ASGIApp) -> None:
        self.app = app
        self.graphql = graphql

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and scope["path"] == "/graphql":
            return self.graphql(scope, receive, send)
        return self.app(scope, receive, send)
