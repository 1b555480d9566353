"""The error catalog: every code the BFF answers with, its HTTP status and what it means.

Each code is one class; raising sites pick the class, and `render` turns any of them into the one body
shape, `{"error": code, "detail": text}`, for the FastAPI routes and the raw `/graphql` path alike.
`catalog()` lists the codes, and a test holds the front-end guide's error table (docs/frontend.md) to it.

    BFFError
     ├── 400  InvalidRequest, InvalidJSON, InvalidReturnTo, InvalidState, StateMismatch, CodeRejected,
     │        InvalidIdToken, LoginRequired, InteractionRequired, ConsentRequired,
     │        AccountSelectionRequired, AccessDenied, AuthorizationFailed, QueryTooDeep, QueryTooLarge,
     │        ClientDisconnected
     ├── 401  NotAuthenticated, SessionExpired (also InvalidGrant: Shopify ended the session), InvalidSignature
     ├── 403  CsrfFailed, OriginNotAllowed, OperationNotAllowed
     ├── 404  NotFound, UnknownShop, WebhooksDisabled, SessionNotFound, CartDisabled, CartNotFound
     ├── 405  MethodNotAllowed   408  BodyTimeout   413  BodyTooLarge   415  UnsupportedMediaType
     ├── 422  CartRejected       429  RateLimited
     ├── 500  InternalError
     ├── 502  UpstreamUnavailable, TokenEndpointError, InvalidClient, DiscoveryFailed,
     │        StorefrontUnavailable, StorefrontError, CheckoutUrlRefused
     ├── 503  SessionStoreUnavailable, LoginCapacity, TokenEndpointUnavailable, TokenEndpointThrottled
     └── 504  UpstreamTimeout, TokenEndpointTimeout, DiscoveryTimeout, RefreshTimeout, StorefrontTimeout

Nothing Shopify sends is echoed in a detail, since it may carry tokens (`CartRejected` adds Shopify's
`userErrors` beside it, which the cart endpoints scrub of the token first). `Cache-Control: no-store` on
every error response comes from the pipeline (pipeline.SecurityHeaders), like every other header.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from starlette.responses import Response
from starlette.types import Send

log = logging.getLogger("bff.errors")

Headers = list[tuple[bytes, bytes]]


class BFFError(Exception):
    """An error with an HTTP status and a stable machine-readable code; subclasses are the catalog."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    retry_after: ClassVar[int | None] = None

    def __init__(
        self, detail: str | None = None, *, headers: dict[str, str] | None = None, because: str | None = None
    ) -> None:
        """`because`: the cause for the operator's log line (failures.py), never part of the answer."""
        self.detail = detail if detail is not None else _meaning(type(self))
        self.because = because
        self.headers = dict(headers or {})
        if self.retry_after is not None:
            self.headers.setdefault("Retry-After", str(self.retry_after))
        super().__init__(f"{self.status} {self.code}: {self.detail}")

    def body(self) -> dict[str, Any]:
        """The JSON answer: `{"error": code, "detail": text}` (a subclass may add fields beside them)."""
        return {"error": self.code, "detail": self.detail}


def _meaning(cls: type[BFFError]) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0]


# --- 400 ------------------------------------------------------------------------------------------


class InvalidRequest(BFFError):
    """A parameter or the body is missing or malformed."""

    status, code = 400, "invalid_request"


class InvalidJSON(BFFError):
    """The body is not JSON."""

    status, code = 400, "invalid_json"


class InvalidReturnTo(BFFError):
    """`return_to` is not a path or a URL on an allowed origin."""

    status, code = 400, "invalid_return_to"


class InvalidState(BFFError):
    """The login state is missing, malformed, unknown, expired or already used."""

    status, code = 400, "invalid_state"


class StateMismatch(BFFError):
    """The login was started in another browser."""

    status, code = 400, "state_mismatch"


class CodeRejected(BFFError):
    """Shopify rejected the authorization code (used or expired)."""

    status, code = 400, "code_rejected"


class InvalidIdToken(BFFError):
    """The ID token failed verification (signature, issuer, audience, expiry or nonce)."""

    status, code = 400, "invalid_id_token"


class LoginRequired(BFFError):
    """`prompt=none` found no session at the shop: the customer must sign in."""

    status, code = 400, "login_required"


class InteractionRequired(BFFError):
    """`prompt=none` could not finish without the customer's interaction."""

    status, code = 400, "interaction_required"


class ConsentRequired(BFFError):
    """`prompt=none` could not finish without the customer's consent."""

    status, code = 400, "consent_required"


class AccountSelectionRequired(BFFError):
    """`prompt=none` could not finish without the customer choosing an account."""

    status, code = 400, "account_selection_required"


class AccessDenied(BFFError):
    """The customer or the shop refused the login."""

    status, code = 400, "access_denied"


class AuthorizationFailed(BFFError):
    """Shopify ended the login with another error."""

    status, code = 400, "authorization_failed"


class QueryTooDeep(BFFError):
    """The GraphQL document nests deeper than BFF_GRAPHQL_MAX_DEPTH."""

    status, code = 400, "query_too_deep"


class QueryTooLarge(BFFError):
    """The GraphQL document is over BFF_GRAPHQL_MAX_INSPECT_BYTES or BFF_GRAPHQL_MAX_TOKENS."""

    status, code = 400, "query_too_large"


class ClientDisconnected(BFFError):
    """The client went away before its body arrived."""

    status, code = 400, "client_disconnected"


# --- 401, 403 -------------------------------------------------------------------------------------


class NotAuthenticated(BFFError):
    """No valid session cookie: log in first."""

    status, code = 401, "not_authenticated"


class SessionExpired(BFFError):
    """The session has ended (idle, absolute lifetime, logout or revoked at Shopify); log in again."""

    status, code = 401, "session_expired"


class InvalidGrant(SessionExpired):
    """The customer's Shopify session has ended; log in again."""


class InvalidSignature(BFFError):
    """The webhook's X-Shopify-Hmac-Sha256 is missing or not made with SHOPIFY_WEBHOOK_SECRET."""

    status, code = 401, "invalid_signature"


class CsrfFailed(BFFError):
    """The request lacks CSRF proof (`X-CSRF: 1`) or comes from an origin that is not allowed."""

    status, code = 403, "csrf_failed"


class OriginNotAllowed(BFFError):
    """A CORS preflight from an origin, method or header that is not allowed."""

    status, code = 403, "origin_not_allowed"


class OperationNotAllowed(BFFError):
    """The GraphQL document is not on the allowlist."""

    status, code = 403, "operation_not_allowed"


# --- other 4xx ------------------------------------------------------------------------------------


class NotFound(BFFError):
    """No such endpoint."""

    status, code = 404, "not_found"


class UnknownShop(BFFError):
    """The request's host (and path) is no configured shop's public URL (BFF_SHOPS_FILE)."""

    status, code = 404, "unknown_shop"


class WebhooksDisabled(BFFError):
    """Webhooks are off: SHOPIFY_WEBHOOK_SECRET is not set."""

    status, code = 404, "webhooks_disabled"


class SessionNotFound(BFFError):
    """No session of this customer has that handle (it ended, or it never was theirs)."""

    status, code = 404, "session_not_found"


class CartDisabled(BFFError):
    """The cart endpoints are off: SHOPIFY_STOREFRONT_TOKEN is not set."""

    status, code = 404, "cart_disabled"


class CartNotFound(BFFError):
    """Shopify knows no cart with that id."""

    status, code = 404, "cart_not_found"


class MethodNotAllowed(BFFError):
    """The endpoint exists but not for this method."""

    status, code = 405, "method_not_allowed"


class BodyTimeout(BFFError):
    """The request body did not arrive in time."""

    status, code = 408, "body_timeout"


class BodyTooLarge(BFFError):
    """The body is over the size limit."""

    status, code = 413, "body_too_large"


class UnsupportedMediaType(BFFError):
    """The body's Content-Type is not one this endpoint reads."""

    status, code = 415, "unsupported_media_type"


class CartRejected(BFFError):
    """Shopify refused the cart change; `userErrors` says why."""

    status, code = 422, "cart_rejected"

    def __init__(self, detail: str | None = None, *, user_errors: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(detail)
        self.user_errors = list(user_errors)

    def body(self) -> dict[str, Any]:
        return {**super().body(), "userErrors": self.user_errors}


class RateLimited(BFFError):
    """Too many requests from this address or session; see Retry-After."""

    status, code = 429, "rate_limited"


# --- 5xx ------------------------------------------------------------------------------------------


class InternalError(BFFError):
    """An unexpected error; it is logged with the request id."""

    status, code = 500, "internal_error"


class UpstreamUnavailable(BFFError):
    """The Customer Account API is unreachable."""

    status, code, retry_after = 502, "upstream_unavailable", 2


class TokenEndpointError(BFFError):
    """Shopify's token endpoint answered something unusable."""

    status, code = 502, "token_endpoint_error"


class InvalidClient(BFFError):
    """Shopify refused the BFF's client credentials (SHOPIFY_CLIENT_ID / SHOPIFY_CLIENT_SECRET)."""

    status, code = 502, "invalid_client"

    def __init__(self, detail: str | None = None, *, reason: str = "invalid_client") -> None:
        super().__init__(detail)
        self.reason = reason  # what Shopify said: invalid_client, unauthorized_client or invalid_token


class DiscoveryFailed(BFFError):
    """The shop's discovery documents or JWKS could not be fetched or read."""

    status, code = 502, "discovery_failed"


class StorefrontUnavailable(BFFError):
    """The Storefront API is unreachable or failing; the session is kept."""

    status, code, retry_after = 502, "storefront_unavailable", 2


class StorefrontError(BFFError):
    """The Storefront API refused SHOPIFY_STOREFRONT_TOKEN or answered something unusable."""

    status, code = 502, "storefront_error"


class CheckoutUrlRefused(BFFError):
    """Shopify answered a checkout URL on a host it does not use for checkouts; nobody is sent there."""

    status, code = 502, "checkout_url_refused"


class SessionStoreUnavailable(BFFError):
    """The session store (Redis) is temporarily unavailable; the session is kept, retry shortly."""

    status, code, retry_after = 503, "session_store_unavailable", 1


class LoginCapacity(BFFError):
    """Too many logins are in progress at once (BFF_MAX_PENDING_LOGINS); existing sessions are unaffected."""

    status, code = 503, "login_capacity"


class TokenEndpointUnavailable(BFFError):
    """Shopify's token endpoint is unreachable or failing; the session is kept."""

    status, code, retry_after = 503, "token_endpoint_unavailable", 2


class TokenEndpointThrottled(BFFError):
    """Shopify throttled the token request; the session is kept."""

    status, code, retry_after = 503, "token_endpoint_throttled", 2


class UpstreamTimeout(BFFError):
    """The Customer Account API timed out."""

    status, code = 504, "upstream_timeout"


class TokenEndpointTimeout(BFFError):
    """Shopify's token endpoint timed out; the session is kept."""

    status, code, retry_after = 504, "token_endpoint_timeout", 2


class DiscoveryTimeout(BFFError):
    """The shop's discovery documents timed out."""

    status, code = 504, "discovery_timeout"


class RefreshTimeout(BFFError):
    """Waiting for another process's token refresh timed out; the session is kept."""

    status, code, retry_after = 504, "refresh_timeout", 2


class StorefrontTimeout(BFFError):
    """The Storefront API timed out; the session is kept."""

    status, code, retry_after = 504, "storefront_timeout", 2


# --- the catalog and the one renderer -------------------------------------------------------------


def _all(cls: type[BFFError]) -> list[type[BFFError]]:
    """Every subclass of `cls`, depth first: the catalog (BFFError itself is only their base)."""
    return [sub for child in cls.__subclasses__() for sub in (child, *_all(child))]


def catalog() -> dict[str, tuple[int, str]]:
    """Every code: (HTTP status, one line of meaning)."""
    found: dict[str, tuple[int, str]] = {}
    for cls in _all(BFFError):
        found.setdefault(cls.code, (cls.status, _meaning(cls)))
    return found


def by_code(code: str) -> type[BFFError] | None:
    """The catalog class for a code, e.g. one recorded by another process."""
    return next((cls for cls in _all(BFFError) if cls.code == code), None)


def log_failure(error: BFFError) -> None:
    """Log a 5xx with its code. An `InternalError` is left to the error boundary, which logs it once,
    with its traceback."""
    if error.status >= 500 and not isinstance(error, InternalError):
        if error.because:
            log.warning("request failed: %s %s (%s)", error.status, error.code, error.because)
        else:
            log.warning("request failed: %s %s", error.status, error.code)


def render(error: BFFError) -> tuple[int, Headers, bytes]:
    """(status, headers, body) for an error; every 5xx is logged with its code (`log_failure`)."""
    log_failure(error)
    body = json.dumps(error.body()).encode()
    headers: Headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    return error.status, headers, body


def error_response(error: BFFError) -> Response:
    """The rendered error as a Starlette response, for the FastAPI routes."""
    status, headers, body = render(error)
    response = Response(body, status)
    response.raw_headers.extend(headers)
    return response


async def send_error(send: Send, error: BFFError, *, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Answer a raw ASGI request with a catalog error (for the layers that answer by themselves)."""
    status, headers, body = render(error)
    headers += [*extra, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
