"""Login, callback, session status and logout."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.accept import HTML, JSON, preferred
from app.config import Settings
from app.cookies import CookieJar, SetCookie, is_valid_id
from app.deps import (
    BrowserSession,
    CartsAtLogout,
    ClientCredentials,
    Clock,
    Cookies,
    CustomerAccount,
    Limits,
    Logins,
    Logouts,
    MetricsDep,
    OAuth,
    Refresher,
    Sessions,
    SettingsDep,
    ShopDiscovery,
    session_from_cookie,
)
from app.devices import summarize
from app.errors import (
    BFFError,
    CodeRejected,
    InvalidGrant,
    InvalidRequest,
    InvalidReturnTo,
    InvalidState,
    LoginCapacity,
    SessionExpired,
    StateMismatch,
    error_response,
    log_failure,
)
from app.login_options import login_options
from app.metrics import Metrics
from app.rates import Rate
from app.security import check_csrf, client_ip, fingerprint, new_id
from app.shopify.credentials import Credentials
from app.shopify.discovery import Discovery
from app.shopify.graphql import CustomerAccountAPI
from app.shopify.idtoken import verify_id_token
from app.shopify.oauth import ShopifyOAuth, callback_error
from app.store.logins import PENDING_LOGIN_TTL, PendingLogin, PendingLogins
from app.store.rate_limits import RateLimits, ip_bucket
from app.store.sessions import Session, SessionStore, new_session_id
from app.urls import safe_return_to, with_query_flag

log = logging.getLogger("bff.auth")
router = APIRouter(prefix="/auth", tags=["auth"])

CUSTOMER_CLAIMS = ("sub", "email", "email_verified")


def _redirect(url: str, status: int = 302, *cookies: SetCookie) -> RedirectResponse:
    response = RedirectResponse(url, status_code=status)
    response.raw_headers.extend(cookies)
    return response


def _json(body: dict[str, Any], *cookies: SetCookie) -> JSONResponse:
    response = JSONResponse(body)
    response.raw_headers.extend(cookies)
    return response


def _client(request: Request, settings: SettingsDep) -> str:
    peer = request.client.host if request.client else None
    forwarded = request.headers.getlist("x-forwarded-for")
    return ip_bucket(client_ip(peer, forwarded, settings.trusted_proxies))


@router.get("/login", summary="Start a login at the shop")
async def login(
    request: Request,
    settings: SettingsDep,
    cookies: Cookies,
    logins: Logins,
    limits: Limits,
    oauth: OAuth,
    credentials: ClientCredentials,
    metrics: MetricsDep,
    clock: Clock,
    return_to: Annotated[str | None, Query(max_length=2048)] = None,
    locale: Annotated[str | None, Query(max_length=20)] = None,
    region_country: Annotated[str | None, Query(max_length=2)] = None,
    login_hint: Annotated[str | None, Query(max_length=254)] = None,
    login_hint_mode: Annotated[str | None, Query(max_length=20)] = None,
    acr_values: Annotated[str | None, Query(max_length=300)] = None,
    prompt: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    try:
        await limits.hit("login", _client(request, settings), settings.login_rate, detail=_TOO_MANY)
        # All clients together, after the per-IP limit (so one flooding address does not use this up):
        # pending logins live 10 minutes, so at most twice this many exist at any moment.
        pending_rate = Rate(settings.bff_max_pending_logins, PENDING_LOGIN_TTL)
        await limits.hit("pending", "all", pending_rate, detail=_BUSY, error=LoginCapacity)
        target = safe_return_to(return_to, default=settings.default_return_to, trusted=settings.trusted_origins)
        options = login_options(
            locale=locale,
            region_country=region_country,
            login_hint=login_hint,
            login_hint_mode=login_hint_mode,
            acr_values=acr_values,
            prompt=prompt,
        )
        binding = cookies.login_binding(request.headers.get("cookie")) or new_id()
        url = await _start_login(logins, oauth, credentials, settings, binding, target, options, now=clock())
    except BFFError as exc:
        log.info("login failed: %s", exc.code)
        metrics.logins.labels(exc.code).inc()
        if not _navigation(request):
            raise  # a script's call: today's JSON error, from the one handler
        metrics.count_rejection(exc.code)  # as the handler counts it (a Redis outage among the Redis errors)
        # Back to the page the customer came from when it is a safe one, else the storefront's default.
        try:
            back = safe_return_to(return_to, default=settings.default_return_to, trusted=settings.trusted_origins)
        except InvalidReturnTo:
            back = settings.default_return_to
        return _back_with_error(request, exc, back)
    metrics.logins.labels("redirected").inc()
    return _redirect(url, 302, cookies.set_login_binding(binding))


async def _start_login(
    logins: PendingLogins,
    oauth: ShopifyOAuth,
    credentials: Credentials,
    settings: Settings,
    binding: str,
    return_to: str,
    options: dict[str, str],
    *,
    now: float,
    recovery: bool = False,
) -> str:
    """Remember a new pending login bound to this browser; the shop's login URL for it."""
    pending = PendingLogin(
        state=new_id(),
        nonce=new_id(),
        code_verifier=secrets.token_urlsafe(64) if settings.shopify_pkce else "",
        return_to=return_to,
        browser=fingerprint(binding),
        created_at=now,
        recovery=recovery,
    )
    url = await oauth.authorization_url(
        client_id=credentials.current.client_id,
        state=pending.state,
        nonce=pending.nonce,
        code_verifier=pending.code_verifier or None,
        extra=options,
    )
    await logins.save(pending)
    return url


_TOO_MANY = "Too many login attempts from this address."
_BUSY = "Too many logins are in progress; try again shortly."


def _navigation(request: Request) -> bool:
    """A browser navigation (it prefers HTML), not a script's call; a tie or no Accept is a script's."""
    return preferred(request.headers.get("accept"), (JSON, HTML)) == HTML


def _back_with_error(request: Request, error: BFFError, return_to: str) -> Response:
    """A browser navigation goes back to the storefront with `login_error=<code>`; API clients get JSON."""
    if not _navigation(request):
        return error_response(error)
    log_failure(error)  # a redirect, but a failure all the same
    return _redirect(with_query_flag(return_to, "login_error", error.code))


def _callback_failure(request: Request, metrics: Metrics, error: BFFError, return_to: str) -> Response:
    log.info("login callback failed: %s", error.code)
    metrics.callbacks.labels(error.code).inc()
    return _back_with_error(request, error, return_to)


@router.get("/callback", summary="Finish a login: exchange the code, verify the ID token, open a session")
async def callback(
    request: Request,
    settings: SettingsDep,
    cookies: Cookies,
    sessions: Sessions,
    logins: Logins,
    limits: Limits,
    discovery: ShopDiscovery,
    oauth: OAuth,
    credentials: ClientCredentials,
    graphql: CustomerAccount,
    metrics: MetricsDep,
    clock: Clock,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    cookie_header = request.headers.get("cookie")
    fallback = settings.default_return_to
    try:
        await limits.hit("callback", _client(request, settings), settings.login_rate, detail=_TOO_MANY)
        pending = await logins.take(state) if is_valid_id(state) and state is not None else None
    except BFFError as exc:  # rate limited, or Redis is down: a browser still lands on the storefront
        if not _navigation(request):
            raise  # a script's call: today's JSON error, from the one handler
        metrics.count_rejection(exc.code)
        return _callback_failure(request, metrics, exc, fallback)
    binding = cookies.login_binding(cookie_header)
    bound = (
        pending is not None and binding is not None and secrets.compare_digest(fingerprint(binding), pending.browser)
    )
    if error is not None:
        # Before anything about state: Shopify's `error=` (login_required after prompt=none) may come
        # with a missing or mangled state. Nothing is redeemed and no session made, so the customer
        # can simply go back, to their own page when the state proves whose login this was.
        back = pending.return_to if pending is not None and bound else fallback
        return _callback_failure(request, metrics, callback_error(error), back)
    if pending is None:
        problem = "Missing or malformed state." if not is_valid_id(state) else "Unknown, expired or used login state."
        return _callback_failure(request, metrics, InvalidState(problem), fallback)
    if not bound:
        if _navigation(request) and not pending.recovery:
            # The login-binding cookie is missing or another browser's: typically an in-app browser
            # (Instagram, TikTok) handed the page to the system browser mid-login. The code is never
            # redeemed here (it may be an attacker's); the login starts again, once, bound to this
            # browser. A second miss, or cookies that never stick, end in the login_error redirect.
            try:
                return await _restart_login(
                    settings, cookies, logins, limits, oauth, credentials, metrics, pending, now=clock()
                )
            except BFFError as exc:  # login capacity, Redis or the shop: back to the customer's page
                return _callback_failure(request, metrics, exc, pending.return_to)
        return _callback_failure(request, metrics, StateMismatch(), fallback)
    if not code:
        return _callback_failure(request, metrics, InvalidRequest("The callback carries no code."), pending.return_to)

    try:
        session = await _open_session(
            sessions,
            discovery,
            oauth,
            credentials,
            graphql,
            code,
            pending,
            device=summarize(request.headers.get("user-agent")),
            now=clock(),
        )
    except InvalidGrant:
        return _callback_failure(request, metrics, CodeRejected(), pending.return_to)
    except BFFError as exc:
        return _callback_failure(request, metrics, exc, pending.return_to)

    previous = cookies.session(cookie_header).sid
    if previous is not None:
        # Never let a pre-login session id survive the login; its customer's index forgets it too.
        replaced = await sessions.peek(previous)
        await sessions.delete(previous, sub=replaced.sub if replaced else None)
    metrics.callbacks.labels("ok").inc()
    metrics.sessions_created.inc()
    # The binding has done its job: the login it guarded is over, so the browser need not keep it.
    return _redirect(pending.return_to, 302, cookies.set_session(session.sid), cookies.clear_login_binding())


async def _restart_login(
    settings: Settings,
    cookies: CookieJar,
    logins: PendingLogins,
    limits: RateLimits,
    oauth: ShopifyOAuth,
    credentials: Credentials,
    metrics: Metrics,
    lost: PendingLogin,
    *,
    now: float,
) -> Response:
    """Start the login once more, in this browser, after its binding was lost (see `callback`)."""
    pending_rate = Rate(settings.bff_max_pending_logins, PENDING_LOGIN_TTL)
    await limits.hit("pending", "all", pending_rate, detail=_BUSY, error=LoginCapacity)
    binding = new_id()
    url = await _start_login(logins, oauth, credentials, settings, binding, lost.return_to, {}, now=now, recovery=True)
    log.info("login callback without its browser binding; restarting the login once")
    metrics.callbacks.labels("restarted").inc()
    return _redirect(url, 302, cookies.set_login_binding(binding))


async def _open_session(
    sessions: SessionStore,
    discovery: Discovery,
    oauth: ShopifyOAuth,
    credentials: Credentials,
    graphql: CustomerAccountAPI,
    code: str,
    pending: PendingLogin,
    *,
    device: str,
    now: float,
) -> Session:
    credential = credentials.current
    tokens = await oauth.exchange_code(code=code, code_verifier=pending.code_verifier or None, credential=credential)
    assert tokens.id_token is not None and tokens.refresh_token is not None
    endpoints = await discovery.endpoints()
    claims = await verify_id_token(
        tokens.id_token,
        discovery=discovery,
        issuer=endpoints.issuer,
        client_id=credential.client_id,
        nonce=pending.nonce,
    )
    # Once per login: webhooks name customers by this id, and it picks the slot of their keys.
    customer_id = await graphql.customer_id(endpoints.graphql_url, token=tokens.access_token) or ""
    session = Session(
        sid=new_session_id(str(claims["sub"]), customer_id),
        sub=str(claims["sub"]),
        claims={k: claims[k] for k in CUSTOMER_CLAIMS if k in claims},
        access_token=tokens.access_token,
        access_expires_at=tokens.received_at + tokens.expires_in,
        access_lifetime=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        id_token=tokens.id_token,
        credential=credential.id,
        created_at=now,
        customer_id=customer_id,
        user_agent=device,
    )
    return await sessions.create(session)


@router.get("/session", summary="Is this browser logged in, and as whom")
async def session_status(found: BrowserSession, cookies: Cookies, refresher: Refresher, clock: Clock) -> Response:
    session = found.session
    signed_out = _json({"authenticated": False}, *([cookies.clear_session()] if found.had_cookie else []))
    if session is None:
        return signed_out
    body: dict[str, Any] = {
        "authenticated": True,
        "customer": session.claims,
        "expires_at": int(clock() + session.ttl_ms / 1000),
    }
    try:
        # Only when the access token is due: the answer must not say "logged in" for a session whose
        # every call would fail, nor cost a refresh when the token is fine.
        await refresher.fresh(session)
    except SessionExpired:
        return signed_out  # Shopify ended it (invalid_grant): the refresher deleted it
    except BFFError as exc:
        # Still logged in (nothing ended the session), but the account can't be reached right now.
        body["degraded"] = exc.code
    return _json(body, *([cookies.set_session(session.sid)] if found.resign else []))


@router.post("/logout", summary="End the session here and at the shop")
async def logout(
    request: Request,
    settings: SettingsDep,
    cookies: Cookies,
    sessions: Sessions,
    logouts: Logouts,
    oauth: OAuth,
    metrics: MetricsDep,
    carts: CartsAtLogout,
    everywhere: bool = False,
) -> Response:
    # The CSRF proof comes first: a forged logout must not even read the session.
    check_csrf(request.headers.get("origin"), request.headers.get("x-csrf"), settings.trusted_origins, allow_form=True)
    found = await session_from_cookie(request.headers.get("cookie"), cookies, sessions, slide=False)
    session = found.session
    if found.sid:
        await sessions.delete(found.sid, sub=session.sub if session else None)
    target = settings.bff_post_logout_redirect_url
    at_shop = None
    if session is not None:
        metrics.sessions_ended.labels("logout").inc()
        linked = await carts.linked(session, everywhere=everywhere)  # read before end_all deletes them
        if everywhere:
            ended = await sessions.end_all(session.sub)
            metrics.sessions_ended.labels("logout_everywhere").inc(ended)
        await carts.release(linked)  # the token off every cart it was put on; best effort, never fails
        try:
            at_shop = await oauth.end_session_url(id_token_hint=session.id_token, post_logout_redirect_uri=target)
        except BFFError as exc:
            # The local session is gone either way; without discovery we skip the shop's logout page.
            log.warning("logout at the shop skipped: %s", exc.code)
    if preferred(request.headers.get("accept"), (HTML, JSON)) == JSON:
        # A script reads this answer, so it gets no token: the shop's URL (with id_token_hint) waits
        # server-side behind a one-time continuation that the browser then navigates to.
        if at_shop is not None:
            continuation = new_id()
            await logouts.save(continuation, at_shop)
            target = f"{settings.public_url}/auth/logout/continue?{urlencode({'c': continuation})}"
        return _json({"redirect_to": target}, cookies.clear_session())
    return _redirect(at_shop or target, 303, cookies.clear_session())


@router.get("/logout/continue", summary="Continue a logout started by a script: on to the shop's logout page")
async def logout_continue(
    settings: SettingsDep,
    logouts: Logouts,
    c: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    at_shop = await logouts.take(c) if is_valid_id(c) and c is not None else None
    # Used, expired or made up: the session is already gone, so only the shop's page is skipped.
    return _redirect(at_shop or settings.bff_post_logout_redirect_url, 303)
