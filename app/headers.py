"""Security headers on every response, as a pure ASGI middleware (no BaseHTTPMiddleware overhead)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# Nothing this service returns is meant to be framed or to run scripts.
_LOCKDOWN = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
]
_NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds nosniff, no-referrer and a lockdown CSP; `no-store` under /auth and /graphql."""

    def __init__(self, app: ASGIApp, *, exempt_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.exempt = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        no_store = path.startswith(("/auth/", "/graphql"))
        lockdown = not path.startswith(self.exempt)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = _ALWAYS + (_LOCKDOWN if lockdown else [])
                headers += [h for h in extra if h[0] not in names]
                if no_store and b"cache-control" not in names:
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
