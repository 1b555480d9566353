"""The browser-facing OAuth endpoints: authorize (with its login page) and the OIDC logout."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mock_shopify.config import DEFAULT_SHOP_NAME
from mock_shopify.forms import FormError, read_form
from mock_shopify.pages import error_page, login_page
from mock_shopify.state import Store

LOGIN_COOKIE = "mock_shopify_login"
SCOPES_SUPPORTED = ("openid", "email", "customer-account-api:full", "customer-account-mcp-api:full")
AUTHORIZE_PARAMS = (
    "client_id", "response_type", "redirect_uri", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "locale", "region_country", "login_hint", "login_hint_mode",
    "acr_values",
)  # fmt: skip
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_EMAIL = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")
# `acr_values=provider:google` asks Shopify's login page for a social-login flow (Hydrogen #3358).
_PROVIDER = re.compile(r"provider:([A-Za-z0-9_-]+)")


def with_query(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` appended to whatever query it already has."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class AuthorizeRequest:
    params: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name) or None

    def error(self, code: str, description: str) -> RedirectResponse:
        """Send an OAuth error back to the (already validated) redirect_uri."""
        out = {"error": code, "error_description": description}
        if state := self.get("state"):
            out["state"] = state
        return _redirect(with_query(self.params["redirect_uri"], out))


def _validate(store: Store, raw: Mapping[str, str]) -> AuthorizeRequest | Response:
    req = AuthorizeRequest({k: raw[k] for k in AUTHORIZE_PARAMS if k in raw})
    client_id = req.get("client_id")
    if client_id is None or not store.client_known(client_id):
        return error_page('"client_id" is invalid')
    # Never redirect anywhere before redirect_uri is known to be registered: that would be an open redirect.
    if req.get("redirect_uri") not in store.config.redirect_uris:
        return error_page('"redirect_uri" mismatch')
    if req.get("response_type") != "code":
        return req.error("unsupported_response_type", "response_type must be code")
    scopes = (req.get("scope") or "").split()
    if "openid" not in scopes or any(s not in SCOPES_SUPPORTED for s in scopes):
        return req.error("invalid_scope", "The requested scope is invalid, unknown, or malformed.")
    if req.get("state") is None:
        return req.error("invalid_request", "state is required")
    challenge, method = req.get("code_challenge"), req.get("code_challenge_method")
    if challenge is not None or method is not None:
        if method != "S256":
            return req.error("invalid_request", "code_challenge_method must be S256")
        if challenge is None or not _CHALLENGE.fullmatch(challenge):
            return req.error("invalid_request", "code_challenge must be base64url without padding (43 chars)")
    return req


def _provider(acr_values: str | None) -> str | None:
    """The provider named in `acr_values` (space-separated, as in OIDC), if any.

    Other values are ignored, not refused: what Shopify does with them is unconfirmed, and refusing would make the
    stand-in stricter than anything known.
    """
    for value in (acr_values or "").split():
        if match := _PROVIDER.fullmatch(value):
            return match.group(1)
    return None


def _issue_code(store: Store, req: AuthorizeRequest, *, email: str, sid: str) -> RedirectResponse:
    code = store.issue_code(
        client_id=req.params["client_id"],
        redirect_uri=req.params["redirect_uri"],
        scope=req.params["scope"],
        nonce=req.get("nonce"),
        code_challenge=req.get("code_challenge"),
        email=email,
        sid=sid,
    )
    return _redirect(with_query(req.params["redirect_uri"], {"code": code.value, "state": req.params["state"]}))


def _set_login_cookie(store: Store, response: Response, sid: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        sid,
        path="/",
        httponly=True,
        samesite="lax",
        # Secure only when served over HTTPS: browsers drop a Secure cookie set by a plain-http dev origin.
        secure=store.config.base_url.startswith("https://"),
    )


class AuthorizeEndpoints:
    """`/oauth/authorize` (GET shows the login page, POST signs in) and `/logout`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        routes: list[Route] = []
        for base in self.store.config.auth_paths.values():
            routes += [
                Route(f"{base}/oauth/authorize", self.authorize, methods=["GET"]),
                Route(f"{base}/oauth/authorize", self.sign_in, methods=["POST"]),
                Route(f"{base}/logout", self.logout, methods=["GET"]),
            ]
        return routes

    def _page(self, request: Request, req: AuthorizeRequest, *, email: str = "", error: str | None = None) -> Response:
        return login_page(
            # The form posts back to the layout it was shown on.
            action=request.url.path,
            params=req.params,
            email=email,
            error=error,
            locale=req.get("locale") or "en",
            region_country=req.get("region_country"),
            provider=_provider(req.get("acr_values")),
            status=400 if error else 200,
            # Only a shop given its own name says it, so the single-shop page reads as it always has.
            shop_name=None if self.store.config.shop_name == DEFAULT_SHOP_NAME else self.store.config.shop_name,
        )

    async def authorize(self, request: Request) -> Response:
        self.store.stats.last_authorize_params = dict(request.query_params)
        req = _validate(self.store, request.query_params)
        if isinstance(req, Response):
            return req
        session = self.store.sessions.get(request.cookies.get(LOGIN_COOKIE, ""))
        if req.get("prompt") == "none":
            if session is None:
                return req.error("login_required", "End-User authentication required.")
            return _issue_code(self.store, req, email=session.email, sid=session.sid)
        hint = req.get("login_hint") or ""
        if req.get("login_hint_mode") == "submit" and _EMAIL.fullmatch(hint):
            # Hydrogen's auto-submit: sign in as the hinted customer without showing the form.
            return self._sign_in(req, hint)
        return self._page(request, req, email=hint)

    async def sign_in(self, request: Request) -> Response:
        try:
            fields = await read_form(request)
        except FormError as exc:
            return error_page(str(exc))
        req = _validate(self.store, fields)
        if isinstance(req, Response):
            return req
        email = fields.get("email", "").strip()
        if not _EMAIL.fullmatch(email):
            return self._page(request, req, email=email, error="Enter a valid email address.")
        return self._sign_in(req, email)

    def _sign_in(self, req: AuthorizeRequest, email: str) -> Response:
        session = self.store.login(email)
        response = _issue_code(self.store, req, email=session.email, sid=session.sid)
        _set_login_cookie(self.store, response, session.sid)
        return response

    async def logout(self, request: Request) -> Response:
        config, params = self.store.config, request.query_params
        hint = params.get("id_token_hint")
        if not hint:
            return error_page('"id_token_hint" is required')
        # Expired hints are fine (logout usually happens long after login); forged or foreign ones are not.
        claims = self.store.keys.verify(hint)
        if claims is None or claims.get("iss") != config.issuer:
            return error_page('"id_token_hint" is invalid')
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not self.store.app_client_ids().intersection(a for a in audiences if isinstance(a, str)):
            return error_page('"id_token_hint" is invalid')
        # Shopify silently sends an unregistered post_logout_redirect_uri to the default (first) Logout URI
        # (hydrogen #2684): never an open redirect, and never an error page either.
        target = params.get("post_logout_redirect_uri", "")
        if target not in config.logout_uris:
            target = config.logout_uris[0]
        self.store.sessions.pop(request.cookies.get(LOGIN_COOKIE, ""), None)
        self.store.sessions.pop(str(claims.get("sid", "")), None)
        self.store.stats.logouts += 1
        # A logout `state` is not echoed: it is undocumented, and Hydrogen does not send one.
        response = _redirect(target)
        secure = config.base_url.startswith("https://")
        response.delete_cookie(LOGIN_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
        return response
