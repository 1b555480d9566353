"""The shop's two discovery documents and its JWKS, fetched over HTTP and cached with a TTL.

No Shopify endpoint is hard-coded: everything comes from
`/.well-known/openid-configuration` and `/.well-known/customer-account-api` on the shop domain.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from joserfc.jwk import KeySet

from app.errors import BFFError, DiscoveryFailed
from app.shopify.http import get_json

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
        """`http` is the shop's auth client (http.py), which sets the User-Agent and timeouts."""
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

    async def _fetch(self) -> ShopEndpoints:
        oidc, caa = await asyncio.gather(
            get_json(self._http, f"{self._shop_origin}/.well-known/openid-configuration", "OpenID configuration"),
            get_json(
                self._http, f"{self._shop_origin}/.well-known/customer-account-api", "Customer Account API document"
            ),
        )
        try:
            return ShopEndpoints(
                issuer=str(oidc["issuer"]),
                authorization_endpoint=self._url(oidc["authorization_endpoint"]),
                token_endpoint=self._url(oidc["token_endpoint"]),
                end_session_endpoint=self._url(oidc["end_session_endpoint"]),
                jwks_uri=self._url(oidc["jwks_uri"]),
                graphql_url=pin_api_version(self._url(caa["graphql_api"]), self._api_version),
            )
        except KeyError as exc:
            raise DiscoveryFailed(f"The shop's discovery lacks {exc.args[0]}.") from exc

    def _url(self, value: object) -> str:
        """A discovered endpoint, validated: an absolute https URL (http only for a loopback stand-in)."""
        text = str(value)
        parts = urlsplit(text)
        loopback_shop = self._shop_origin.startswith("http://")
        if parts.scheme not in ({"https", "http"} if loopback_shop else {"https"}) or not parts.hostname:
            raise DiscoveryFailed("The shop's discovery names an endpoint that is not an https URL.")
        if parts.username or parts.password or parts.fragment:
            raise DiscoveryFailed("The shop's discovery names an endpoint with credentials or a fragment.")
        return text

    async def keys(self, *, refetch: bool = False) -> KeySet:
        """The shop's ID-token signing keys; `refetch` once when a token names an unknown kid."""
        if self._keys is not None and not refetch:
            return self._keys
        async with self._keys_lock:
            if self._keys is not None and not refetch:
                return self._keys
            endpoints = await self.endpoints()
            body = await get_json(self._http, endpoints.jwks_uri, "JWKS")
            try:
                self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
            except Exception as exc:
                raise DiscoveryFailed("The shop's JWKS could not be read.") from exc
            return self._keys
