"""Shopify's OAuth endpoints: the authorization request, the code and refresh grants, the logout URL.

authlib does the protocol mechanics: the authorization URL with state, nonce and the PKCE S256
challenge (`prepare_grant_uri`, `create_s256_code_challenge`), and HTTP Basic client authentication of
the token requests (`ClientAuth`, `client_secret_basic`). The token responses are classified here,
not by authlib's client, because Shopify's error classes need the HTTP status and Retry-After that
authlib's `fetch_token` discards: only `invalid_grant` means the customer's refresh token is dead;
throttling, 5xx and a bare 401 are transient; `invalid_client` is our misconfiguration.
"""

from __future__ import annotations

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
from app.shopify.credentials import Credential
from app.shopify.discovery import Discovery

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


class ShopifyOAuth:
    """Talks to the shop's authorization server for one BFF."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        discovery: Discovery,
        *,
        redirect_uri: str,
        scopes: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`http` is the shop's auth client (http.py): User-Agent and timeouts are set there."""
        self._http = http
        self._clock = clock
        self._discovery = discovery
        self._redirect_uri = redirect_uri
        self._scopes = scopes

    async def authorization_url(
        self, *, client_id: str, state: str, nonce: str, code_verifier: str, extra: dict[str, str]
    ) -> str:
        """The shop's login URL for a new authorization request (PKCE S256, OpenID nonce)."""
        endpoints = await self._discovery.endpoints()
        url: str = prepare_grant_uri(
            endpoints.authorization_endpoint,
            client_id,
            "code",
            redirect_uri=self._redirect_uri,
            scope=self._scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            **extra,
        )
        return url

    async def end_session_url(self, *, id_token_hint: str, post_logout_redirect_uri: str) -> str:
        endpoints = await self._discovery.endpoints()
        query = urlencode({"id_token_hint": id_token_hint, "post_logout_redirect_uri": post_logout_redirect_uri})
        return f"{endpoints.end_session_endpoint}?{query}"

    async def exchange_code(self, *, code: str, code_verifier: str, credential: Credential) -> TokenSet:
        form = {
            "grant_type": "authorization_code",
            "client_id": credential.client_id,
            "redirect_uri": self._redirect_uri,
            "code": code,
            "code_verifier": code_verifier,
        }
        tokens = await self._token_request(form, credential, what="code exchange")
        if not tokens.id_token or not tokens.refresh_token:
            raise TokenEndpointError("The code exchange returned no ID or refresh token.")
        return tokens

    async def refresh(self, *, refresh_token: str, credential: Credential) -> TokenSet:
        form = {"grant_type": "refresh_token", "client_id": credential.client_id, "refresh_token": refresh_token}
        return await self._token_request(form, credential, what="token refresh")

    async def _token_request(self, form: dict[str, str], credential: Credential, *, what: str) -> TokenSet:
        endpoints = await self._discovery.endpoints()
        auth = ClientAuth(credential.client_id, credential.client_secret, "client_secret_basic")
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        url, headers, body = auth.prepare("POST", endpoints.token_endpoint, headers, urlencode(form))
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TokenEndpointTimeout(f"Shopify's token endpoint timed out ({what}).") from exc
        except httpx.HTTPError as exc:
            raise TokenEndpointUnavailable(f"Shopify's token endpoint is unreachable ({what}).") from exc
        return _parse(response, what, received_at=self._clock())


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
        raise InvalidClient()
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
