"""The shop's two discovery documents and its JWKS, fetched over HTTP and cached with a TTL.

No Shopify endpoint is hard-coded: everything comes from
`/.well-known/openid-configuration` and `/.well-known/customer-account-api` on the shop domain.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.jwk import KeySet

from app.errors import BFFError

_VERSION_IN_URL = re.compile(r"/customer/api/[^/]+/graphql$")


@dataclass(frozen=True, slots=True)
class ShopEndpoints:
    """What discovery told us about the shop."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str
    jwks_uri: str
    graphql_url: str


def pin_api_version(graphql_api: str, version: str) -> str:
    """The discovered URL carries the latest version; pin the configured one instead."""
    if _VERSION_IN_URL.search(graphql_api):
        return _VERSION_IN_URL.sub(f"/customer/api/{version}/graphql", graphql_api)
    return graphql_api


class Discovery:
    """Caches the shop's endpoints and signing keys; serves a stale copy when a refetch fails."""

    def __init__(self, http: httpx.AsyncClient, *, shop_origin: str, api_version: str, ttl: float) -> None:
        self._http = http
        self._shop_origin = shop_origin
        self._api_version = api_version
        self._ttl = ttl
        self._endpoints: ShopEndpoints | None = None
        self._fetched_at = 0.0
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()
        self._keys_lock = asyncio.Lock()

    async def endpoints(self) -> ShopEndpoints:
        if self._endpoints and time.monotonic() - self._fetched_at < self._ttl:
            return self._endpoints
        async with self._lock:
            if self._endpoints and time.monotonic() - self._fetched_at < self._ttl:
                return self._endpoints
            try:
                self._endpoints = await self._fetch()
                self._fetched_at = time.monotonic()
            except BFFError:
                if self._endpoints is None:
                    raise
                # A shop blip must not break logins that a cached copy can still serve.
                self._fetched_at = time.monotonic() - self._ttl + min(30.0, self._ttl)
            return self._endpoints

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.TimeoutException as exc:
            raise BFFError(504, "discovery_timeout", f"Timed out fetching the shop's {what}.") from exc
        except httpx.HTTPError as exc:
            raise BFFError(502, "discovery_failed", f"Could not reach the shop for its {what}.") from exc
        if response.status_code != 200:
            raise BFFError(502, "discovery_failed", f"The shop answered {response.status_code} for its {what}.")
        try:
            body = response.json()
        except ValueError as exc:
            raise BFFError(502, "discovery_failed", f"The shop's {what} is not JSON.") from exc
        if not isinstance(body, dict):
            raise BFFError(502, "discovery_failed", f"The shop's {what} is not a JSON object.")
        return body

    async def _fetch(self) -> ShopEndpoints:
        oidc, caa = await asyncio.gather(
            self._get_json(f"{self._shop_origin}/.well-known/openid-configuration", "OpenID configuration"),
            self._get_json(f"{self._shop_origin}/.well-known/customer-account-api", "Customer Account API document"),
        )
        try:
            return ShopEndpoints(
                issuer=str(oidc["issuer"]),
                authorization_endpoint=str(oidc["authorization_endpoint"]),
                token_endpoint=str(oidc["token_endpoint"]),
                end_session_endpoint=str(oidc["end_session_endpoint"]),
                jwks_uri=str(oidc["jwks_uri"]),
                graphql_url=pin_api_version(str(caa["graphql_api"]), self._api_version),
            )
        except KeyError as exc:
            raise BFFError(502, "discovery_failed", f"The shop's discovery lacks {exc.args[0]}.") from exc

    async def keys(self, *, refetch: bool = False) -> KeySet:
        """The shop's ID-token signing keys; `refetch` once when a token names an unknown kid."""
        if self._keys is not None and not refetch:
            return self._keys
        async with self._keys_lock:
            if self._keys is not None and not refetch:
                return self._keys
            endpoints = await self.endpoints()
            body = await self._get_json(endpoints.jwks_uri, "JWKS")
            try:
                self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
            except Exception as exc:
                raise BFFError(502, "discovery_failed", "The shop's JWKS could not be read.") from exc
            return self._keys
