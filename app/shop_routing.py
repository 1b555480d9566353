"""Which shop a request is for (BFF_SHOPS_FILE): its Host header and path against each shop's public URL.

The configured public URLs are the allowlist: a request whose host (and path prefix) names none of them is a
`404 unknown_shop`, and nothing from the Host header is used beyond choosing among them. The health and metrics
paths belong to the deployment, not to a shop, so orchestrators' probes (which send the pod's address as Host)
reach them on any host.

Every log line of a shop's request names it (`"shop": "<id>"`), so a line that names a setting, such as
SHOPIFY_SHOP_DOMAIN, points at that shop's key in the file (`shop_domain`; shops.SHOP_KEYS maps them).

A shop under a path prefix (`https://bff.example.com/acme`) sees its requests with the prefix taken off `path`
(and `raw_path`), so the routes and the pipeline's path rules are the same for every shop. Not moved to
`root_path`: Starlette's routing takes `root_path` off a path that starts with it, so under a prefix named
like a route's first segment (`/auth`) `/auth/login` would be routed as `/login`. Nothing reads the prefix
from the request: every URL the BFF writes comes from the shop's settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from app.shops import ShopRoute

# The scope key naming the request's shop; deps.services reads it.
SHOP = "bff.shop"
DEPLOYMENT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ShopRouter:
    """Hands each request to its shop's stack, deployment paths (and the lifespan) to the deployment's, and
    anything else to `unknown`, the deployment's answer for a host that is no shop's."""

    def __init__(
        self,
        routes: Sequence[ShopRoute],
        shops: Mapping[str, ASGIApp],
        *,
        deployment: ASGIApp,
        unknown: ASGIApp,
        deployment_paths: frozenset[str] = DEPLOYMENT_PATHS,
        deployment_prefixes: tuple[str, ...] = (),
    ) -> None:
        """`deployment_prefixes`: more paths of the deployment, by prefix (dev mode's /docs)."""
        self._by_host: dict[bytes, list[tuple[str, str, ASGIApp]]] = {}
        for route in routes:
            self._by_host.setdefault(route.host.encode(), []).append(
                (route.prefix, route.shop_id, shops[route.shop_id])
            )
        for candidates in self._by_host.values():
            candidates.sort(key=lambda c: len(c[0]), reverse=True)  # the longest prefix wins
        self._deployment = deployment
        self._unknown = unknown
        self._deployment_paths = deployment_paths
        self._deployment_prefixes = deployment_prefixes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self._deployment(scope, receive, send)
        path: str = scope["path"]
        host = _host(scope)
        if path in self._deployment_paths or (self._deployment_prefixes and path.startswith(self._deployment_prefixes)):
            # Named for the shop at the root of the asking host, if any: /readyz tells that shop's checks only.
            root = next((shop_id for prefix, shop_id, _ in self._by_host.get(host, ()) if not prefix), None)
            return self._deployment({**scope, SHOP: root} if root else scope, receive, send)
        for prefix, shop_id, app in self._by_host.get(host, ()):
            if not prefix:
                return _as_shop(shop_id, app, {**scope, SHOP: shop_id}, receive, send)
            if path == prefix or path.startswith(prefix + "/"):
                inner = {**scope, SHOP: shop_id, "path": path[len(prefix) :] or "/"}
                raw: bytes | None = scope.get("raw_path")
                if raw is not None:
                    # Percent-encoded (`/%62eta`), the raw path's prefix is longer than the decoded one's.
                    encoded = prefix.encode()
                    inner["raw_path"] = (
                        raw[len(encoded) :] if raw.startswith(encoded) else inner["path"].encode()
                    ) or b"/"
                return _as_shop(shop_id, app, inner, receive, send)
        return self._unknown(scope, receive, send)


async def _as_shop(shop_id: str, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run `app` with every log line of the request naming the shop (logs.py binds the request id the same way)."""
    tokens = structlog.contextvars.bind_contextvars(shop=shop_id)
    try:
        await app(scope, receive, send)
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def _host(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"host":
            host: bytes = value.lower()
            # A default port spelled out names the same origin as none at all.
            if host.endswith(b":443") or host.endswith(b":80"):
                host = host.rsplit(b":", 1)[0]
            return host
    return b""


def unknown_shop_app(count: Callable[[], None], answer: Callable[[Send], Awaitable[None]]) -> ASGIApp:
    """The deployment's ASGI answer to a request for no configured shop: counted, then `answer`ed."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        count()
        await answer(send)

    return app
