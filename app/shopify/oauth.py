"""Shopify's OAuth endpoints: the authorization request, the code and refresh grants, the logout URL.

authlib does the protocol mechanics: the authorization URL with state, nonce and the PKCE S256
challenge (`prepare_grant_uri`, `create_s256_code_challenge`), and HTTP Basic client authentication of
the token requests (`ClientAuth`, `client_secret_basic`). The token responses are classified here,
not by authlib's client, because Shopify's error classes need the HTTP status and Retry-After that
authlib's `fetch_token` discards (Shopify's classes, Hydrogen #3916):

- `400 invalid_grant`: the customer's refresh token (or code) is dead; only this ends a session;
- `401` with an empty error ("Access token request error."), 429 and 5xx: transient, retried later;
- `invalid_client` / `unauthorized_client`, or a 401 whose `WWW-Authenticate` says `invalid_token` (what
  Shopify tells a client it takes for public): our misconfiguration. Logged at error level naming the
  setting, counted in `bff_token_endpoint_misconfigured_total`, and remembered in `TokenEndpointHealth`
  for /readyz and /auth/session; customers get a 502, never a logout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app.errors import (
    AccessDenied,
    AccountSelectionRequired,
    AuthorizationFailed,
    BFFError,
    ConsentRequired,
    InteractionRequired,
    InvalidClient,
    InvalidGrant,
    LoginRequired,
    TokenEndpointError,
    TokenEndpointThrottled,
    TokenEndpointTimeout,
    TokenEndpointUnavailable,
)
from app.metrics import Metrics
from app.shopify.credentials import Credential
from app.shopify.discovery import Discovery

log = logging.getLogger("bff.oauth")

# Why Shopify refused us, by the reason Shopify gave, and what to check.
_MISCONFIGURED = {
    "invalid_client": "{secret} is not this client's secret (or SHOPIFY_CLIENT_ID names another client); check it",
    "unauthorized_client": "check SHOPIFY_CLIENT_ID: this client may not use this grant",
    "invalid_token": "check that the client type is Confidential in the Shopify admin (public ones need an Origin)",
}

CURRENT_SECRET = "SHOPIFY_CLIENT_SECRET"  # noqa: S105 (a setting's name)
# A refresh may use either: a session keeps the credential its tokens were issued to (credentials.py).
EITHER_SECRET = "SHOPIFY_CLIENT_SECRET (or SHOPIFY_PREVIOUS_CLIENT_SECRET, for sessions issued under it)"  # noqa: S105

# The authorization errors a storefront may act on (OpenID Connect Core §3.1.2.6, RFC 6749 §4.1.2.1);
# any other `error=` on the callback is `authorization_failed`.
_CALLBACK_ERRORS: dict[str, type[BFFError]] = {
    cls.code: cls
    for cls in (LoginRequired, InteractionRequired, ConsentRequired, AccountSelectionRequired, AccessDenied)
}


def callback_error(error: str) -> BFFError:
    """The catalog error for the `error=` Shopify sent back to the callback instead of a code."""
    return _CALLBACK_ERRORS.get(error, AuthorizationFailed)("Shopify ended the login without a code.")


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What the token endpoint returned; `id_token` is absent on refresh."""

    access_token: str
    expires_in: float
    refresh_token: str | None
    id_token: str | None
    received_at: float


class TokenEndpointHealth:
    """How the last token call went, for /readyz and /auth/session: `problem` is a catalog code (None
    after a success) and `reason` says why Shopify refused us when it is our misconfiguration."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self.reason: str | None = None

    def record(self, error: BFFError | None) -> None:
        if isinstance(error, InvalidGrant):
            return  # one customer's dead refresh token says nothing about the endpoint
        self.problem = error.code if error is not None else None
        self.reason = error.reason if isinstance(error, InvalidClient) else None


class ShopifyOAuth:
    """Talks to the shop's authorization server for one BFF."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        discovery: Discovery,
        *,
        redirect_uri: str,
        scopes: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`http` is the shop's auth client (http.py): User-Agent and timeouts are set there."""
        self.health = TokenEndpointHealth()
        self._metrics = metrics
        self._http = http
        self._clock = clock
        self._discovery = discovery
        self._redirect_uri = redirect_uri
        self._scopes = scopes

    async def authorization_url(
        self, *, client_id: str, state: str, nonce: str, code_verifier: str | None, extra: dict[str, str]
    ) -> str:
        """The shop's login URL for a new authorization request (OpenID nonce; PKCE S256 given a verifier)."""
        endpoints = await self._discovery.endpoints()
        pkce = {}
        if code_verifier:
            pkce = {"code_challenge": create_s256_code_challenge(code_verifier), "code_challenge_method": "S256"}
        url: str = prepare_grant_uri(
            endpoints.authorization_endpoint,
            client_id,
            "code",
            redirect_uri=self._redirect_uri,
            scope=self._scopes,
            state=state,
            nonce=nonce,
            **pkce,
            **extra,
        )
        return url

    async def end_session_url(self, *, id_token_hint: str, post_logout_redirect_uri: str) -> str:
        endpoints = await self._discovery.endpoints()
        query = urlencode({"id_token_hint": id_token_hint, "post_logout_redirect_uri": post_logout_redirect_uri})
        return f"{endpoints.end_session_endpoint}?{query}"

    async def exchange_code(self, *, code: str, code_verifier: str | None, credential: Credential) -> TokenSet:
        form = {
            "grant_type": "authorization_code",
            "client_id": credential.client_id,
            "redirect_uri": self._redirect_uri,
            "code": code,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        try:
            # New logins always use the current credential: its secret is SHOPIFY_CLIENT_SECRET.
            tokens = await self._token_request(form, credential, what="code exchange", secret=CURRENT_SECRET)
        except TokenEndpointError:
            if code_verifier:
                # Shopify documents PKCE for public clients only; whether it takes it from a confidential
                # one is unconfirmed, so a refused first exchange points at the setting.
                log.error(
                    "Shopify rejected the code exchange while PKCE was sent; if every login fails like this, "
                    "set SHOPIFY_PKCE=false"
                )
            raise
        if not tokens.id_token or not tokens.refresh_token:
            raise TokenEndpointError("The code exchange returned no ID or refresh token.")
        return tokens

    async def refresh(self, *, refresh_token: str, credential: Credential) -> TokenSet:
        form = {"grant_type": "refresh_token", "client_id": credential.client_id, "refresh_token": refresh_token}
        return await self._token_request(form, credential, what="token refresh", secret=EITHER_SECRET)

    async def _token_request(self, form: dict[str, str], credential: Credential, *, what: str, secret: str) -> TokenSet:
        """`secret` names the setting that holds `credential`'s secret, for the log line of a refusal."""
        endpoints = await self._discovery.endpoints()
        auth = ClientAuth(credential.client_id, credential.client_secret, "client_secret_basic")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        url, headers, body = auth.prepare("POST", endpoints.token_endpoint, headers, urlencode(form))
        try:
            try:
                response = await self._http.post(url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise TokenEndpointTimeout(f"Shopify's token endpoint timed out ({what}).") from exc
            except httpx.HTTPError as exc:
                raise TokenEndpointUnavailable(f"Shopify's token endpoint is unreachable ({what}).") from exc
            tokens = _parse(response, what, received_at=self._clock())
        except InvalidClient as exc:
            log.error(
                "Shopify refused the %s with %s for client %s: %s",
                what,
                exc.reason,
                credential.client_id,
                _MISCONFIGURED[exc.reason].format(secret=secret),
            )
            if self._metrics is not None:
                self._metrics.token_misconfigured.labels(exc.reason).inc()
            self.health.record(exc)
            raise
        except BFFError as exc:
            self.health.record(exc)
            raise
        self.health.record(None)
        return tokens


def _parse(response: httpx.Response, what: str, *, received_at: float) -> TokenSet:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = str(body.get("error") or "")
    if response.status_code == 200 and not error:
        access, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(access, str) or not access or not isinstance(expires_in, int | float):
            raise TokenEndpointError(f"Shopify's {what} response is malformed.")
        refresh, id_token = body.get("refresh_token"), body.get("id_token")
        return TokenSet(
            access_token=access,
            expires_in=float(expires_in),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            received_at=received_at,
        )
    if error == "invalid_grant":
        raise InvalidGrant()
    if error in {"invalid_client", "unauthorized_client"}:
        raise InvalidClient(reason=error)
    if response.status_code == 401 and "invalid_token" in response.headers.get("WWW-Authenticate", ""):
        raise InvalidClient(reason="invalid_token")
    retry_after = response.headers.get("Retry-After")
    headers = {"Retry-After": retry_after} if retry_after and retry_after.isdigit() else None
    if response.status_code == 429:
        raise TokenEndpointThrottled(f"Shopify throttled the {what}.", headers=headers)
    if response.status_code >= 500 or response.status_code == 401:
        # Shopify answers transient trouble as 5xx or as 401 with an empty error code.
        raise TokenEndpointUnavailable(
            f"Shopify's token endpoint failed ({what}, HTTP {response.status_code}).", headers=headers
        )
    raise TokenEndpointError(f"Shopify rejected the {what} (HTTP {response.status_code}).")
