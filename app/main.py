"""The app factory: composes the request pipeline once; the lifespan owns every long-lived resource."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import start_http_server
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Send

from app.carts import Carts
from app.config import Settings
from app.cookies import CookieJar
from app.cors import CORS
from app.crypto import TokenCipher
from app.deps import Services
from app.errors import (
    BFFError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnknownShop,
    error_response,
    send_error,
)
from app.failures import cause_of
from app.graphql_policy import GraphQLPolicy, load_allowlist
from app.logs import RequestLog, configure_logging
from app.metrics import Metrics
from app.openapi import DOCS_PATH, OPENAPI_PATH, install_docs
from app.pipeline import Dispatcher, ErrorBoundary, SecurityHeaders
from app.routes import auth, cart, health, webhooks
from app.routes import sessions as customer_sessions
from app.routes.graphql import GraphQLEndpoint
from app.shop_routing import SHOP, ShopRouter, unknown_shop_app
from app.shopify.credentials import Credentials
from app.shopify.discovery import Discovery
from app.shopify.graphql import CustomerAccountAPI
from app.shopify.http import auth_http_client
from app.shopify.oauth import ShopifyOAuth
from app.shopify.storefront import StorefrontAPI
from app.shops import Shops, deployment_settings, load_configuration, setting_name
from app.store.connections import RedisConnections
from app.store.logins import PendingLogins
from app.store.logouts import LogoutContinuations
from app.store.rate_limits import RateLimits
from app.store.refresh_locks import RefreshLocks
from app.store.session_cache import SessionCache
from app.store.sessions import SessionStore, session_prefix
from app.tokens import TokenRefresher
from app.tracing import Tracing, tracing_from_env
from app.urls import Origin

log = logging.getLogger("bff")
Clock = Callable[[], float]


def build_services(
    settings: Settings,
    redis: RedisConnections,
    http: httpx.AsyncClient,
    graphql: CustomerAccountAPI,
    metrics: Metrics,
    *,
    storefront: StorefrontAPI | None = None,
    session_cache: SessionCache | None = None,
    clock: Clock = time.time,
) -> Services:
    """Assemble the per-process services from already-open clients (`storefront`: None while the cart
    endpoints are off; `session_cache`: the process's one cache, shared by every shop, or None while
    BFF_SESSION_CACHE is off)."""
    cipher = TokenCipher(settings.token_keys)
    prefix = settings.bff_redis_prefix  # every store's keys: deployments sharing a Redis share nothing
    sessions = SessionStore(
        redis,
        cipher,
        idle_timeout=settings.bff_session_idle_timeout,
        absolute_lifetime=settings.bff_session_absolute_lifetime,
        prefix=prefix,
        clock=clock,
        metrics=metrics,
        cache=session_cache,
    )
    discovery = Discovery.from_settings(http, settings, clock=clock)
    oauth = ShopifyOAuth(
        http,
        discovery,
        redirect_uri=settings.redirect_uri,
        scopes=settings.shopify_scopes,
        metrics=metrics,
        clock=clock,
    )
    credentials = Credentials.from_settings(settings)
    locks = RefreshLocks(redis, prefix=prefix)
    call_timeout = settings.bff_upstream_connect_timeout + settings.bff_upstream_read_timeout
    refresher = TokenRefresher(
        sessions,
        locks,
        oauth,
        credentials,
        metrics,
        buffer=settings.bff_refresh_buffer,
        call_timeout=call_timeout,
        clock=clock,
    )
    carts = None
    if storefront is not None:
        carts = Carts(
            storefront,
            sessions,
            locks,
            refresher,
            metrics,
            shop_origin=settings.shop_origin,
            # The shop's primary domain is shop metadata, like discovery: trusted for as long.
            domain_ttl=settings.bff_discovery_ttl,
            # As long as the refresher's own waiters wait for a refresh in progress (tokens.py).
            lock_wait=call_timeout + 7.0,
            release_deadline=settings.bff_upstream_total_timeout,
            clock=clock,
        )
    allowlist = settings.bff_graphql_allowlist
    return Services(
        settings=settings,
        cookies=CookieJar.from_settings(settings),
        sessions=sessions,
        logins=PendingLogins(redis, cipher, prefix=prefix),
        logouts=LogoutContinuations(redis, cipher, prefix=prefix),
        rate_limits=RateLimits(redis, prefix=prefix, clock=clock),
        discovery=discovery,
        oauth=oauth,
        credentials=credentials,
        refresher=refresher,
        graphql=graphql,
        carts=carts,
        graphql_policy=GraphQLPolicy(
            allowlist=load_allowlist(allowlist) if allowlist else None,
            max_depth=settings.bff_graphql_max_depth,
            max_tokens=settings.bff_graphql_max_tokens,
            max_inspect_bytes=settings.bff_graphql_max_inspect_bytes,
        ),
        metrics=metrics,
        clock=clock,
    )


def _start_metrics_listener(settings: Settings, metrics: Metrics, stack: AsyncExitStack) -> None:
    """Serve /metrics on its own host:port, away from the public listener, when so configured."""
    if settings.metrics_address is None:
        return
    host, port = settings.metrics_address
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        if metrics.multiprocess:
            # Several workers: the first to bind serves the sum of all of them (app/metrics.py).
            log.info("metrics listener %s: served by another worker (%s)", settings.bff_metrics_listener, exc)
            return
        log.warning("metrics listener %s not started (BFF_METRICS_LISTENER): %s", settings.bff_metrics_listener, exc)
        return
    # Run in reverse: stop serving, wait for the thread, then close the listening socket.
    stack.callback(server.server_close)
    stack.callback(thread.join, 5)
    stack.callback(server.shutdown)


async def _warn_if_redis_unreachable(redis: RedisConnections) -> None:
    """One startup line when Redis cannot be reached, naming REDIS_URL and the cause (failures.py). PING, not
    readiness: a read-only replica is reachable (/readyz says the rest), and the hot path connects when used."""
    try:
        await redis.client.ping()
    except Exception as exc:
        log.warning(
            "startup: Redis is unreachable at %s (REDIS_URL): %s; serving anyway, /readyz answers 503 until it answers",
            redis.target,
            cause_of(exc),
        )


async def _warn_if_shop_unreachable(settings: Settings, http: httpx.AsyncClient) -> None:
    """One startup line when the shop cannot be reached, naming SHOPIFY_SHOP_DOMAIN and the cause. A HEAD of
    its home page through the auth client: any HTTP answer means reachable. Not a discovery fetch, which would
    fill the cache before the first request asks; what a failing discovery says is discovery.py's to log."""
    try:
        await http.head(f"{settings.shop_origin}/")
    except httpx.HTTPError as exc:
        # With several shops one shop's outage is reported by /readyz, never counted against it (health.py).
        readiness = "answers 503" if settings.shop_id is None else "reports this shop as failing"
        log.warning(
            "startup: the shop at %s (%s) is unreachable: %s; serving anyway, /readyz %s until its discovery answers",
            settings.shop_origin,
            setting_name(settings, "SHOPIFY_SHOP_DOMAIN"),
            cause_of(exc),
            readiness,
        )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait([task])


def _install_error_handlers(app: FastAPI, metrics: Callable[[Request], Metrics | None]) -> None:
    """FastAPI's own failures, rendered by the one renderer (errors.render), counted for the request's shop."""

    def respond(request: Request, error: BFFError) -> Response:
        found = metrics(request)
        if found is not None:
            found.count_rejection(error.code)
        return error_response(error)

    async def bff_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BFFError)
        return respond(request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            return respond(request, MethodNotAllowed(headers=dict(exc.headers or {})))
        if exc.status_code == 404:
            return respond(request, NotFound())
        if exc.status_code >= 500:
            return respond(request, InternalError())
        return respond(request, InvalidRequest(str(exc.detail)))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        return respond(request, InvalidRequest(f"Invalid or missing parameters: {fields}"))

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer; pipeline.ErrorBoundary logs it, once.
        return respond(request, InternalError())

    app.add_exception_handler(BFFError, bff_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


async def _open_shop(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    redis: RedisConnections,
    http: httpx.AsyncClient | None,
    metrics: Metrics,
    tracing: Tracing | None,
    session_cache: SessionCache | None,
    clock: Clock,
) -> Services:
    """One shop's services, with its own clients (so one shop's slow Shopify never holds another's connections),
    over the deployment's Redis and session cache."""
    auth_http = http
    if auth_http is None:
        auth_http = await stack.enter_async_context(
            auth_http_client(
                user_agent=settings.bff_user_agent,
                connect_timeout=settings.bff_upstream_connect_timeout,
                read_timeout=settings.bff_upstream_read_timeout,
                total_timeout=settings.bff_upstream_total_timeout,
                transport=tracing.http_transport() if tracing else None,
            )
        )
    graphql = await stack.enter_async_context(
        CustomerAccountAPI(
            user_agent=settings.bff_user_agent,
            connect_timeout=settings.bff_upstream_connect_timeout,
            read_timeout=settings.bff_upstream_read_timeout,
            total_timeout=settings.bff_upstream_total_timeout,
            metrics=metrics,
            trace_configs=[tracing.aiohttp_trace_config()] if tracing else (),
        )
    )
    storefront = None
    if settings.shopify_storefront_token is not None:
        storefront = await stack.enter_async_context(
            StorefrontAPI(
                url=f"{settings.shop_origin}/api/{settings.storefront_api_version}/graphql.json",
                private_token=settings.shopify_storefront_token.get_secret_value(),
                user_agent=settings.bff_user_agent,
                connect_timeout=settings.bff_upstream_connect_timeout,
                read_timeout=settings.bff_upstream_read_timeout,
                total_timeout=settings.bff_upstream_total_timeout,
                metrics=metrics,
                transport=tracing.http_transport() if tracing else None,
            )
        )
    services = build_services(
        settings,
        redis,
        auth_http,
        graphql,
        metrics,
        storefront=storefront,
        session_cache=session_cache,
        clock=clock,
    )
    stack.push_async_callback(services.discovery.aclose)  # before auth_http closes
    # In the background, as a discovery fetch may take its whole deadline; cancelled first of all at shutdown.
    check = asyncio.create_task(_warn_if_shop_unreachable(settings, auth_http))
    stack.push_async_callback(_cancel, check)
    return services


async def _open_session_cache(
    deployment: Settings,
    every_shop: tuple[Settings, ...],
    redis: RedisConnections,
    stack: AsyncExitStack,
    *,
    clock: Clock,
) -> SessionCache | None:
    """The process's one session cache, for every shop: two Redis connections and one flush timer however
    many shops, tracking each shop's session keys. None while BFF_SESSION_CACHE is off, and unless REDIS_URL
    is a plain redis:// URL (config.py). Its settings are the deployment's, which no shop overrides."""
    if not deployment.session_cache_on or redis.endpoint is None:
        return None
    cache = SessionCache(
        redis.endpoint,
        prefixes=[session_prefix(shop.bff_redis_prefix) for shop in every_shop],
        idle_timeout=deployment.bff_session_idle_timeout,
        clock=clock,
    )
    return await stack.enter_async_context(cache)


def create_app(
    settings: Settings | Shops | None = None,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Clock = time.time,
    tracing: Tracing | None = None,
) -> ASGIApp:
    """Build the BFF for one shop (`Settings`) or several (`Shops`, from BFF_SHOPS_FILE); by default what the
    environment describes. An `http` client passed in (for the shops' auth endpoints) is used as is and not
    closed; `clock` is the time the tokens and sessions are judged by (tests move it); `tracing`, when
    not given, is what the `OTEL_*` variables ask for (tracing.py), usually nothing. The app shuts it down."""
    configuration = settings or load_configuration()
    multi = isinstance(configuration, Shops)
    every_shop = configuration.settings if isinstance(configuration, Shops) else (configuration,)
    deployment = deployment_settings(configuration)
    configure_logging(deployment.bff_log_level, deployment.bff_log_format)
    tracing = tracing or tracing_from_env(os.environ)
    if deployment.bff_dev_mode:
        log.warning(
            "BFF_DEV_MODE is on: http URLs and weak secrets are accepted and /docs is served. "
            "Never run this in production."
        )
    keys = [shop.shop_id or "" for shop in every_shop]  # "" for the single shop
    unknown_shops: list[Metrics] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            metrics = Metrics.for_shops(keys) if multi else {"": Metrics()}
            unknown_shops[:] = [metrics[keys[0]]]
            if tracing is not None:
                stack.push_async_callback(tracing.shutdown)  # last: the spans of closing the clients go out
            redis = RedisConnections(
                deployment.redis_url, max_connections=deployment.bff_redis_max_connections, tracing=tracing
            )
            stack.push_async_callback(redis.aclose)
            session_cache = await _open_session_cache(deployment, every_shop, redis, stack, clock=clock)
            shops: dict[str, Services] = {}
            for key, shop in zip(keys, every_shop, strict=True):
                shops[key] = await _open_shop(
                    shop,
                    stack,
                    redis=redis,
                    http=http,
                    metrics=metrics[key],
                    tracing=tracing,
                    session_cache=session_cache,
                    clock=clock,
                )
            app.state.shops = shops
            # Multi-shop /readyz's background checks (routes/health.py), stopped before the shops' clients close.
            app.state.shop_checks = {key: health.ShopCheck() for key in keys} if multi else {}
            for check in app.state.shop_checks.values():
                stack.push_async_callback(check.aclose)
            _start_metrics_listener(deployment, metrics[keys[0]], stack)  # one registry for every shop
            # The service starts (and /readyz tells) whether or not Redis answers, bounded by its own timeouts.
            await _warn_if_redis_unreachable(redis)
            yield

    app = FastAPI(
        title="customer-account-bff",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,  # Starlette's slash redirect builds its Location from the Host header
        # /openapi.json and /docs come from app/openapi.py, in development mode only (as before).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def metrics_of(request: Request) -> Metrics | None:
        running: dict[str, Services] | None = getattr(app.state, "shops", None)  # None before the lifespan starts
        found = running.get(request.scope.get(SHOP, "")) if running is not None else None
        return found.metrics if found is not None else None

    _install_error_handlers(app, metrics_of)
    app.include_router(auth.router)
    app.include_router(customer_sessions.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(cart.router)
    exempt: tuple[str, ...] = ()
    if deployment.bff_dev_mode:
        install_docs(app)
        exempt = (DOCS_PATH,)  # the page sends its own CSP: same-origin scripts, nothing external

    def edge(inner: ASGIApp, origins: frozenset[Origin]) -> ASGIApp:
        """The layers every response passes, composed once per stack (pipeline.py has the order and why)."""
        return SecurityHeaders(CORS(ErrorBoundary(inner), origins=origins), exempt_paths=exempt)

    def shop_stack(shop: Settings, key: str) -> ASGIApp:
        endpoint = GraphQLEndpoint(lambda: app.state.shops[key])  # the services exist once the lifespan runs
        return edge(Dispatcher(app, endpoint), frozenset(shop.trusted_origins - {shop.public_origin}))

    stack: ASGIApp
    if isinstance(configuration, Shops):

        def count_unknown() -> None:
            if unknown_shops:
                unknown_shops[0].unknown_shop_requests.inc()

        stack = ShopRouter(
            configuration.routes,
            {key: shop_stack(shop, key) for key, shop in zip(keys, every_shop, strict=True)},
            deployment=edge(app, frozenset()),
            unknown=edge(unknown_shop_app(count_unknown, _answer_unknown_shop), frozenset()),
            deployment_prefixes=(DOCS_PATH, OPENAPI_PATH) if deployment.bff_dev_mode else (),
        )
    else:
        stack = shop_stack(deployment, "")
    stack = RequestLog(stack)
    _tune_gc()  # the heap is built: keep the collector off it (see _tune_gc)
    # Outermost, so the span covers every layer and every path; absent when off, so off costs nothing.
    return tracing.layer(stack) if tracing is not None else stack


async def _answer_unknown_shop(send: Send) -> None:
    await send_error(send, UnknownShop("No shop is served at this address."))


# Net new container objects before a young collection (CPython's default is 700); a request in flight
# holds a few hundred, so the default fired every ~20 requests at c32 and promoted live request state.
GC_YOUNG_THRESHOLD = 10_000
_gc_tuned = False


def _tune_gc() -> None:
    """Keep the garbage collector off the startup heap; once per process (tests build many apps).

    The imports (FastAPI, pydantic, aiohttp, redis-py, cryptography) leave about 115,000 objects that live
    as long as the process, and every full collection walked them all; at c32 those came every few
    thousand requests, set off by request state that outlived two young collections and died old. That was
    about a fifth of the BFF's CPU per proxied request (measured with bench/asgi_cpu.py). So what exists
    once the app is built is frozen out of collections, and the young threshold is raised above what the requests in
    flight hold. Reference counting still frees almost everything at once; cycles are still collected.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()  # startup's own garbage first: a frozen cycle would never be freed
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)
