"""Shopify's OAuth endpoints: the authorize URL, code and refresh grants, and the logout URL.

The token endpoint is called with HTTP Basic client authentication and a User-Agent (Shopify answers
403 without one). Refresh failures are classified as Shopify documents them: only `invalid_grant` means
the customer's refresh token is dead; everything else is transient or a misconfiguration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app.credentials import Credential
from app.discovery import Discovery
from app.errors import BFFError


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What the token endpoint returned; `id_token` is absent on refresh."""

    access_token: str
    expires_in: float
    refresh_token: str | None
    id_token: str | None
    received_at: float


class InvalidGrant(BFFError):
    """The code or refresh token is dead: the only failure that ends a customer's session."""

    def __init__(self) -> None:
        super().__init__(401, "session_expired", "The customer's Shopify session has ended; log in again.")


class InvalidClient(BFFError):
    """Shopify refused our client credential: a configuration problem, not the customer's fault."""

    def __init__(self) -> None:
        super().__init__(502, "invalid_client", "Shopify refused the BFF's client credentials.")


def code_challenge(verifier: str) -> str:
    return str(create_s256_code_challenge(verifier))


class ShopifyAuth:
    """Talks to the shop's authorization server for one BFF."""

    def __init__(self, http: httpx.AsyncClient, discovery: Discovery, *, user_agent: str) -> None:
        self._http = http
        self._discovery = discovery
        self._user_agent = user_agent

    async def authorize_url(self, params: dict[str, str]) -> str:
        endpoints = await self._discovery.endpoints()
        return f"{endpoints.authorization_endpoint}?{urlencode(params)}"

    async def end_session_url(self, *, id_token_hint: str, post_logout_redirect_uri: str) -> str:
        endpoints = await self._discovery.endpoints()
        query = urlencode({"id_token_hint": id_token_hint, "post_logout_redirect_uri": post_logout_redirect_uri})
        return f"{endpoints.end_session_endpoint}?{query}"

    async def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str, credential: Credential
    ) -> TokenSet:
        tokens = await self._token_request(
            {
                "grant_type": "authorization_code",
                "client_id": credential.client_id,
                "redirect_uri": redirect_uri,
                "code": code,
                "code_verifier": code_verifier,
            },
            credential,
            what="code exchange",
        )
        if not tokens.id_token or not tokens.refresh_token:
            raise BFFError(502, "token_endpoint_error", "The code exchange returned no ID or refresh token.")
        return tokens

    async def refresh(self, *, refresh_token: str, credential: Credential) -> TokenSet:
        return await self._token_request(
            {
                "grant_type": "refresh_token",
                "client_id": credential.client_id,
                "refresh_token": refresh_token,
            },
            credential,
            what="token refresh",
        )

    async def _token_request(self, form: dict[str, str], credential: Credential, *, what: str) -> TokenSet:
        endpoints = await self._discovery.endpoints()
        try:
            response = await self._http.post(
                endpoints.token_endpoint,
                data=form,
                auth=httpx.BasicAuth(credential.client_id, credential.client_secret),
                headers={"User-Agent": self._user_agent, "Accept": "application/json"},
            )
        except httpx.TimeoutException as exc:
            raise BFFError(504, "token_endpoint_timeout", f"Shopify's token endpoint timed out ({what}).") from exc
        except httpx.HTTPError as exc:
            raise BFFError(
                503, "token_endpoint_unavailable", f"Shopify's token endpoint is unreachable ({what})."
            ) from exc
        return self._parse(response, what)

    def _parse(self, response: httpx.Response, what: str) -> TokenSet:
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
                raise BFFError(502, "token_endpoint_error", f"Shopify's {what} response is malformed.")
            refresh, id_token = body.get("refresh_token"), body.get("id_token")
            return TokenSet(
                access_token=access,
                expires_in=float(expires_in),
                refresh_token=refresh if isinstance(refresh, str) and refresh else None,
                id_token=id_token if isinstance(id_token, str) and id_token else None,
                received_at=time.time(),
            )
        if error == "invalid_grant":
            raise InvalidGrant()
        if error in {"invalid_client", "unauthorized_client"}:
            raise InvalidClient()
        retry_after = response.headers.get("Retry-After")
        headers = {"Retry-After": retry_after} if retry_after and retry_after.isdigit() else {}
        if response.status_code == 429:
            raise BFFError(503, "token_endpoint_throttled", f"Shopify throttled the {what}.", headers=headers or None)
        if response.status_code >= 500 or response.status_code == 401:
            # Shopify answers transient trouble as 5xx or as 401 with an empty error code.
            raise BFFError(
                503,
                "token_endpoint_unavailable",
                f"Shopify's token endpoint failed ({what}, HTTP {response.status_code}).",
                headers=headers or {"Retry-After": "2"},
            )
        raise BFFError(
            502, "token_endpoint_error", f"Shopify rejected the {what} (HTTP {response.status_code} {error})."
        )
