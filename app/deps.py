"""What request handlers ask for: `Annotated` aliases over the process's services, and the one
function that turns a `Cookie` header into a session, shared by the FastAPI routes and the raw path."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.carts import Carts, LogoutCarts
from app.config import Settings
from app.cookies import CookieJar, SessionCookie
from app.errors import CartDisabled, NotAuthenticated, SessionExpired
from app.graphql_policy import GraphQLPolicy
from app.metrics import Metrics
from app.rates import NO_LIMITS, SessionRates
from app.security import client_ip
from app.shop_routing import SHOP
from app.shopify.credentials import Credentials
from app.shopify.discovery import Discovery
from app.shopify.graphql import CustomerAccountAPI
from app.shopify.oauth import ShopifyOAuth
from app.store.logins import PendingLogins
from app.store.logouts import LogoutContinuations
from app.store.rate_limits import RateLimits
from app.store.sessions import Session, SessionStore
from app.tokens import TokenRefresher


@dataclass(frozen=True, slots=True)
class Services:
    """The long-lived parts of one running BFF, built by the lifespan; handlers take them one by one."""

    settings: Settings
    cookies: CookieJar
    sessions: SessionStore
    logins: PendingLogins
    logouts: LogoutContinuations
    rate_limits: RateLimits
    discovery: Discovery
    oauth: ShopifyOAuth
    credentials: Credentials
    refresher: TokenRefresher
    graphql: CustomerAccountAPI
    carts: Carts | None  # None while SHOPIFY_STOREFRONT_TOKEN is unset: the cart endpoints are off
    graphql_policy: GraphQLPolicy
    metrics: Metrics
    clock: Callable[[], float]  # the time sessions, tokens and rate limits are judged by


@dataclass(frozen=True, slots=True)
class CookieSession:
    """A request's session as its cookie names it: `session` is None when absent, tampered or ended."""

    sid: str | None
    session: Session | None
    resign: bool  # signed with an older key: send a re-signed cookie
    had_cookie: bool


async def session_from_cookie(
    cookie_header: str | None,
    cookies: CookieJar,
    sessions: SessionStore,
    *,
    slide: bool = True,
    rates: SessionRates = NO_LIMITS,
) -> CookieSession:
    """Resolve a `Cookie` header to a session: verify the signature, then read Redis once.

    `slide` reads through the session-read script (idle expiry slid, `rates` counted); without it the
    session is only peeked at, as logout does.
    """
    return await load_session(cookies.session(cookie_header), sessions, slide=slide, rates=rates)


async def load_session(
    cookie: SessionCookie, sessions: SessionStore, *, slide: bool = True, rates: SessionRates = NO_LIMITS
) -> CookieSession:
    """The second half of `session_from_cookie`, for a cookie already verified (the raw path checks
    the signature before it reads the body)."""
    session = None
    if cookie.sid is not None:
        session = await (sessions.load(cookie.sid, rates=rates) if slide else sessions.peek(cookie.sid))
    return CookieSession(cookie.sid, session, cookie.resign, cookie.present)


def require(found: CookieSession) -> Session:
    """The session, or 401: `not_authenticated` without a valid cookie, `session_expired` after it ended."""
    if found.sid is None:
        raise NotAuthenticated("Log in first.")
    if found.session is None:
        raise SessionExpired("The session has ended; log in again.")
    return found.session


def services(request: Request) -> Services:
    """The request's shop's services (the one shop's, without BFF_SHOPS_FILE); routing.ShopRouter names it."""
    found: Services = request.app.state.shops[request.scope.get(SHOP, "")]
    return found


async def _deployment(request: Request) -> tuple[Services, ...]:
    shops: dict[str, Services] = request.app.state.shops
    return tuple(shops.values())


# Async, though none awaits anything: FastAPI runs a plain `def` dependency in a worker thread, a thread
# hop per dependency per request (about a dozen on the callback), where an `async def` one is a call.
async def _settings(request: Request) -> Settings:
    return services(request).settings


async def _cookies(request: Request) -> CookieJar:
    return services(request).cookies


async def _sessions(request: Request) -> SessionStore:
    return services(request).sessions


async def _logins(request: Request) -> PendingLogins:
    return services(request).logins


async def _logouts(request: Request) -> LogoutContinuations:
    return services(request).logouts


async def _rate_limits(request: Request) -> RateLimits:
    return services(request).rate_limits


async def _discovery(request: Request) -> Discovery:
    return services(request).discovery


async def _oauth(request: Request) -> ShopifyOAuth:
    return services(request).oauth


async def _credentials(request: Request) -> Credentials:
    return services(request).credentials


async def _metrics(request: Request) -> Metrics:
    return services(request).metrics


async def _refresher(request: Request) -> TokenRefresher:
    return services(request).refresher


async def _customer_account(request: Request) -> CustomerAccountAPI:
    return services(request).graphql


async def _clock(request: Request) -> Callable[[], float]:
    return services(request).clock


def _peer_ip(request: Request) -> str:
    peer = request.client.host if request.client else None
    return client_ip(peer, request.headers.getlist("x-forwarded-for"), services(request).settings.trusted_proxies)


async def _client_ip(request: Request) -> str:
    return _peer_ip(request)


async def _carts(request: Request) -> Carts:
    found = services(request).carts
    if found is None:
        raise CartDisabled("The cart endpoints are off: set SHOPIFY_STOREFRONT_TOKEN to enable them.")
    return found


async def _logout_carts(request: Request) -> LogoutCarts:
    return LogoutCarts(services(request).carts, _peer_ip(request))


async def _slid_session(request: Request) -> CookieSession:
    s = services(request)
    return await session_from_cookie(request.headers.get("cookie"), s.cookies, s.sessions)


async def _current_session(request: Request) -> Session:
    return require(await _slid_session(request))


# Every shop's services (one without BFF_SHOPS_FILE): for the deployment's own endpoints (health, metrics).
Deployment = Annotated[tuple[Services, ...], Depends(_deployment)]
SettingsDep = Annotated[Settings, Depends(_settings)]
Cookies = Annotated[CookieJar, Depends(_cookies)]
Sessions = Annotated[SessionStore, Depends(_sessions)]
Logins = Annotated[PendingLogins, Depends(_logins)]
Logouts = Annotated[LogoutContinuations, Depends(_logouts)]
Limits = Annotated[RateLimits, Depends(_rate_limits)]
ShopDiscovery = Annotated[Discovery, Depends(_discovery)]
OAuth = Annotated[ShopifyOAuth, Depends(_oauth)]
ClientCredentials = Annotated[Credentials, Depends(_credentials)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
Refresher = Annotated[TokenRefresher, Depends(_refresher)]
CustomerAccount = Annotated[CustomerAccountAPI, Depends(_customer_account)]
Clock = Annotated[Callable[[], float], Depends(_clock)]
# The client's address by the trusted-proxy rules (security.client_ip), unbucketed: Shopify's buyer IP.
ClientIP = Annotated[str, Depends(_client_ip)]
# The cart service, or 404 `cart_disabled` while SHOPIFY_STOREFRONT_TOKEN is unset.
CartService = Annotated[Carts, Depends(_carts)]
# What logout does with the carts its session touched (nothing while the cart endpoints are off).
CartsAtLogout = Annotated[LogoutCarts, Depends(_logout_carts)]
# The cookie's session (None when absent or ended), its idle expiry slid.
BrowserSession = Annotated[CookieSession, Depends(_slid_session)]
# A logged-in customer's session, or 401: for endpoints that need one.
CurrentSession = Annotated[Session, Depends(_current_session)]
