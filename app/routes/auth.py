"""Login, callback, session status and logout."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.errors import NO_STORE, BFFError, error_response
from app.idtoken import verify_id_token
from app.security import client_ip, fingerprint, is_valid_id, require_csrf_proof, safe_return_to
from app.services import Deps, Services
from app.sessions import PendingLogin, Session, new_id
from app.shopify import InvalidGrant, code_challenge

log = logging.getLogger("bff.auth")
router = APIRouter(prefix="/auth", tags=["auth"])

CUSTOMER_CLAIMS = ("sub", "email", "email_verified")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


def _with_flag(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode([*query, (name, value)])))


def _redirect(url: str, status: int = 302) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers=NO_STORE)


@router.get("/login", summary="Start a login at the shop")
async def login(
    request: Request,
    deps: Deps,
    return_to: str | None = None,
    locale: Annotated[str | None, Query(max_length=20)] = None,
    region_country: Annotated[str | None, Query(max_length=2)] = None,
    login_hint: Annotated[str | None, Query(max_length=254)] = None,
    prompt: str | None = None,
) -> Response:
    settings = deps.settings
    await deps.rate_limiter.hit_login("login", client_ip(request, settings.bff_trusted_proxies))
    target = safe_return_to(return_to, settings)
    if locale is not None and not _LOCALE.match(locale):
        raise BFFError(400, "invalid_request", "locale must look like `en` or `fr-CA`.")
    if region_country is not None and not _COUNTRY.match(region_country):
        raise BFFError(400, "invalid_request", "region_country must be an ISO 3166-1 alpha-2 code like `CA`.")
    if prompt is not None and prompt != "none":
        raise BFFError(400, "invalid_request", "prompt may only be `none`.")

    binding = deps.cookies.login_binding(request) or new_id()
    pending = PendingLogin(
        state=new_id(),
        nonce=new_id(),
        code_verifier=secrets.token_urlsafe(64),
        return_to=target,
        browser=fingerprint(binding),
        created_at=time.time(),
    )
    params = {
        "client_id": deps.credentials.current.client_id,
        "response_type": "code",
        "redirect_uri": settings.redirect_uri,
        "scope": settings.shopify_scopes,
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": code_challenge(pending.code_verifier),
        "code_challenge_method": "S256",
    }
    optional = {
        "locale": locale,
        "region_country": region_country,
        "login_hint": login_hint,
        "prompt": prompt,
    }
    params.update({k: v for k, v in optional.items() if v})
    url = await deps.auth.authorize_url(params)
    await deps.store.save_pending_login(pending)
    response = _redirect(url)
    deps.cookies.set_login_binding(response, binding)
    deps.metrics.logins.labels("redirected").inc()
    return response


def _callback_failure(request: Request, deps: Services, exc: BFFError, return_to: str | None) -> Response:
    """A browser navigation goes back to the storefront with an error flag; API clients get JSON."""
    log.info("login callback failed: %s", exc.code)
    deps.metrics.callbacks.labels(exc.code).inc()
    if "text/html" in request.headers.get("accept", ""):
        target = return_to or deps.settings.default_return_to
        return _redirect(_with_flag(target, "login_error", exc.code))
    return error_response(exc.status, exc.code, exc.detail, exc.headers)


@router.get("/callback", summary="Finish a login: exchange the code, verify the ID token, open a session")
async def callback(
    request: Request,
    deps: Deps,
    state: Annotated[str | None, Query(max_length=200)] = None,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    await deps.rate_limiter.hit_login("callback", client_ip(request, deps.settings.bff_trusted_proxies))
    if not is_valid_id(state):
        return _callback_failure(request, deps, BFFError(400, "invalid_state", "Missing or malformed state."), None)
    assert state is not None
    pending = await deps.store.take_pending_login(state)
    if pending is None:
        failure = BFFError(400, "invalid_state", "Unknown, expired or already used login state.")
        return _callback_failure(request, deps, failure, None)
    binding = deps.cookies.login_binding(request)
    if binding is None or not secrets.compare_digest(fingerprint(binding), pending.browser):
        failure = BFFError(400, "state_mismatch", "This login was started in another browser.")
        return _callback_failure(request, deps, failure, None)
    if error is not None:
        flag = error if _ERROR_CODE.match(error) else "authorization_failed"
        failure = BFFError(400, flag, "Shopify ended the login without a code.")
        return _callback_failure(request, deps, failure, pending.return_to)
    if not code:
        failure = BFFError(400, "invalid_request", "The callback carries no code.")
        return _callback_failure(request, deps, failure, pending.return_to)

    try:
        session = await _open_session(deps, code, pending)
    except InvalidGrant:
        failure = BFFError(400, "code_rejected", "Shopify rejected the authorization code (used or expired).")
        return _callback_failure(request, deps, failure, pending.return_to)
    except BFFError as exc:
        return _callback_failure(request, deps, exc, pending.return_to)

    previous = deps.cookies.session_id(request)
    if previous is not None:
        await deps.store.delete(previous)  # never let a pre-login session id survive the login
    response = _redirect(pending.return_to)
    deps.cookies.set_session(response, session.sid)
    deps.metrics.callbacks.labels("ok").inc()
    deps.metrics.sessions_created.inc()
    return response


async def _open_session(deps: Services, code: str, pending: PendingLogin) -> Session:
    credential = deps.credentials.current
    tokens = await deps.auth.exchange_code(
        code=code,
        redirect_uri=deps.settings.redirect_uri,
        code_verifier=pending.code_verifier,
        credential=credential,
    )
    assert tokens.id_token is not None and tokens.refresh_token is not None
    endpoints = await deps.discovery.endpoints()
    claims = await verify_id_token(
        tokens.id_token,
        discovery=deps.discovery,
        issuer=endpoints.issuer,
        client_id=credential.client_id,
        nonce=pending.nonce,
    )
    session = Session(
        sid=new_id(),
        sub=str(claims["sub"]),
        claims={k: claims[k] for k in CUSTOMER_CLAIMS if k in claims},
        access_token=tokens.access_token,
        access_expires_at=tokens.received_at + tokens.expires_in,
        access_lifetime=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        id_token=tokens.id_token,
        credential=credential.id,
        created_at=time.time(),
    )
    return await deps.store.create(session)


@router.get("/session", summary="Is this browser logged in, and as whom")
async def session_status(request: Request, deps: Deps) -> Response:
    sid, resign = deps.cookies.read_session(request)
    session = await deps.store.load(sid) if sid else None
    if session is None:
        response = JSONResponse({"authenticated": False}, headers=NO_STORE)
        if deps.cookies.has_session_cookie(request):
            deps.cookies.clear_session(response)
        return response
    body: dict[str, Any] = {
        "authenticated": True,
        "customer": session.claims,
        "expires_at": int(time.time() + session.ttl_ms / 1000),
    }
    response = JSONResponse(body, headers=NO_STORE)
    if resign:
        deps.cookies.set_session(response, session.sid)
    return response


@router.post("/logout", summary="End the session here and at the shop")
async def logout(request: Request, deps: Deps, everywhere: bool = False) -> Response:
    settings = deps.settings
    require_csrf_proof(request, settings, allow_form=True)
    sid = deps.cookies.session_id(request)
    session = await deps.store.peek(sid) if sid else None
    if sid:
        await deps.store.delete(sid, sub=session.sub if session else None)
    if session is not None:
        deps.metrics.sessions_ended.labels("logout").inc()
        if everywhere:
            ended = await deps.store.end_all(session.sub)
            deps.metrics.sessions_ended.labels("logout_everywhere").inc(ended)
    target = settings.bff_post_logout_redirect_url
    if session is not None:
        try:
            target = await deps.auth.end_session_url(id_token_hint=session.id_token, post_logout_redirect_uri=target)
        except BFFError as exc:
            # The local session is gone either way; without discovery we skip the shop's logout page.
            log.warning("logout at the shop skipped: %s", exc.code)
    if "application/json" in request.headers.get("accept", ""):
        response: Response = JSONResponse({"redirect_to": target}, headers=NO_STORE)
    else:
        response = _redirect(target, 303)
    deps.cookies.clear_session(response)
    return response
