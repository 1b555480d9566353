"""The app factory: wires settings, Redis, HTTP clients and routes; the lifespan owns the resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import httpx
from fastapi import FastAPI
from limits import parse as parse_rate
from prometheus_client import start_http_server
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app import redis_fast
from app.config import Settings, load_settings
from app.credentials import Credentials
from app.crypto import TokenCipher, derive_key
from app.discovery import Discovery
from app.errors import install_error_handlers
from app.graphql_policy import GraphQLPolicy, load_allowlist
from app.headers import SecurityHeaders
from app.logs import RequestLog, configure_logging
from app.metrics import Metrics
from app.ratelimit import IpRateLimiter
from app.redis_client import close_redis, redis_from_url
from app.redis_fast import ScriptRunner
from app.routes import auth, health
from app.routes.graphql import GraphQLEndpoint
from app.security import CookieJar
from app.services import Services
from app.sessions import SESSION_READ_SCRIPT, SessionStore
from app.shopify import ShopifyAuth
from app.tokens import TokenRefresher

log = logging.getLogger("bff")


def redis_from(settings: Settings) -> Redis:
    return redis_from_url(settings.redis_url, max_connections=settings.bff_redis_max_connections)


def token_cipher(settings: Settings) -> TokenCipher:
    """BFF_TOKEN_ENCRYPTION_KEYS, or keys derived from the session secrets when it is unset."""
    keys = settings.token_encryption_keys or tuple(derive_key(s) for s in settings.session_secrets)
    return TokenCipher(keys)


def build_services(
    settings: Settings,
    redis: Redis,
    http: httpx.AsyncClient,
    upstream: aiohttp.ClientSession,
    *,
    touch: ScriptRunner | None = None,
) -> Services:
    """Assemble the per-process services from already-open clients."""
    metrics = Metrics()
    graphql_rate = parse_rate(settings.bff_rate_limit_graphql)
    store = SessionStore(
        redis,
        token_cipher(settings),
        idle_timeout=settings.bff_session_idle_timeout,
        absolute_lifetime=settings.bff_session_absolute_lifetime,
        touch=touch,
    )
    discovery = Discovery(
        http,
        shop_origin=settings.shop_origin,
        api_version=settings.shopify_api_version,
        ttl=settings.bff_discovery_ttl,
    )
    auth_client = ShopifyAuth(http, discovery, user_agent=settings.bff_user_agent)
    credentials = Credentials.from_settings(settings)
    refresher = TokenRefresher(
        store,
        auth_client,
        credentials,
        metrics,
        buffer=settings.bff_refresh_buffer,
        call_timeout=settings.bff_upstream_connect_timeout + settings.bff_upstream_read_timeout,
    )
    return Services(
        settings=settings,
        store=store,
        discovery=discovery,
        auth=auth_client,
        refresher=refresher,
        cookies=CookieJar(settings),
        http=http,
        upstream=upstream,
        credentials=credentials,
        metrics=metrics,
        rate_limiter=IpRateLimiter(settings.redis_url, settings.bff_rate_limit_login),
        graphql_policy=GraphQLPolicy(
            allowlist=load_allowlist(settings.bff_graphql_allowlist) if settings.bff_graphql_allowlist else None,
            max_depth=settings.bff_graphql_max_depth,
        ),
        graphql_rate=(graphql_rate.amount, graphql_rate.get_expiry() * 1000),
    )


def _start_metrics_listener(settings: Settings, metrics: Metrics, stack: AsyncExitStack) -> None:
    """Serve /metrics on its own host:port, away from the public listener, when so configured."""
    listener = settings.bff_metrics_listener
    if listener in {"public", "off"}:
        return
    host, _, port = listener.rpartition(":")
    try:
        server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=metrics.registry)
    except OSError as exc:
        # With several workers only the first can bind; the others' metrics are not exported there.
        log.warning("metrics listener %s not started: %s", listener, exc)
        return
    # Run in reverse: stop serving, wait for the thread, then close the listening socket.
    stack.callback(server.server_close)
    stack.callback(thread.join, 5)
    stack.callback(server.shutdown)


def create_app(
    settings: Settings | None = None,
    *,
    redis: Redis | None = None,
    http: httpx.AsyncClient | None = None,
) -> ASGIApp:
    """Build the BFF. Clients passed in are used as is (and not closed); missing ones are made here."""
    settings = settings or load_settings()
    configure_logging(settings.bff_log_level, settings.bff_log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            redis_client = redis or redis_from(settings)
            if redis is None:
                stack.push_async_callback(close_redis, redis_client)
            timeout = httpx.Timeout(settings.bff_upstream_read_timeout, connect=settings.bff_upstream_connect_timeout)
            http_client = http
            if http_client is None:
                http_client = await stack.enter_async_context(
                    httpx.AsyncClient(timeout=timeout, follow_redirects=False)
                )
            upstream = await stack.enter_async_context(
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(
                        sock_connect=settings.bff_upstream_connect_timeout,
                        sock_read=settings.bff_upstream_read_timeout,
                    ),
                    connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
                    auto_decompress=False,
                    cookie_jar=aiohttp.DummyCookieJar(),  # never carry cookies between customers
                )
            )
            touch = None
            if redis is None and redis_fast.supports(settings.redis_url):
                touch = ScriptRunner(settings.redis_url, SESSION_READ_SCRIPT)
                stack.push_async_callback(touch.aclose)
            services = build_services(settings, redis_client, http_client, upstream, touch=touch)
            stack.push_async_callback(services.rate_limiter.aclose)
            _start_metrics_listener(settings, services.metrics, stack)
            app.state.services = services
            yield

    app = FastAPI(
        title="customer-account-bff",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if settings.bff_dev_mode else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.bff_dev_mode else None,
    )
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(health.router)
    cors: dict[str, Any] = {
        "allow_origins": sorted(settings.trusted_origins - {settings.public_origin}),
        "allow_credentials": True,
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["Content-Type", "X-CSRF", "Accept-Language", "X-Request-ID"],
        "expose_headers": ["Retry-After", "X-Request-ID", "X-Shopify-Request-Id"],
        "max_age": 600,
    }
    app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(SecurityHeaders, exempt_paths=("/docs",) if settings.bff_dev_mode else ())

    def services() -> Services:
        found: Services = app.state.services
        return found

    graphql_app = CORSMiddleware(GraphQLEndpoint(services), **cors)
    return RequestLog(HotPathDispatcher(app, graphql_app))


class HotPathDispatcher:
    """Sends `/graphql` straight to its raw ASGI endpoint and everything else (lifespan too) to FastAPI.

    Measured: FastAPI's routing and middleware stack cost about 14% of a proxied request's CPU.
    """

    def __init__(self, app: ASGIApp, graphql: ASGIApp) -> None:
        self.app = app
        self.graphql = graphql

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/graphql":
            await self.graphql(scope, receive, send)
        else:
            await self.app(scope, receive, send)
