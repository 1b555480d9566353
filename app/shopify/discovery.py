"""The shop's two discovery documents and its JWKS, fetched over HTTP, checked, and cached with a TTL.

No Shopify endpoint is hard-coded: everything comes from `/.well-known/openid-configuration` and
`/.well-known/customer-account-api` on the shop domain. Two properties make that safe and fast:

- **Every endpoint is checked before use** (`EndpointRule`). The token endpoint receives the client secret, the
  GraphQL endpoint the customer's access token, and the logout endpoint becomes a browser redirect, so a document
  naming any other place than Shopify's hosts, the shop's own or BFF_DISCOVERY_EXTRA_HOSTS is refused as a whole
  (502 `discovery_failed`, which /readyz reports): nothing is ever sent to a refused endpoint.
- **Stale-while-revalidate.** Past its TTL the cached copy is still served at once while one background task
  refetches, bounded by an overall deadline; a failed refetch keeps the copy and is retried `retry_after` seconds
  later, not on every request. Only a cold start (no copy yet) waits, and concurrent cold callers share one fetch.
  A TTL of 0 turns the cache off: every call fetches and waits (tests use it to reach the shop on every route).

The two documents are fetched like a browser would, following up to three redirects within the shop's
registrable domain (http.py); the endpoints they name are then checked as above.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from joserfc.jwk import KeySet

from app.errors import BFFError, DiscoveryFailed, DiscoveryTimeout
from app.failures import cause_of, target_of
from app.shopify.http import get_json
from app.urls import Origin

if TYPE_CHECKING:
    from app.config import Settings

log = logging.getLogger("bff.discovery")

SHOPIFY_HOST = "shopify.com"
OPENID_CONFIGURATION = ".well-known/openid-configuration"
CUSTOMER_ACCOUNT_API = ".well-known/customer-account-api"
_VERSION_IN_URL = re.compile(r"/customer/api/([^/]+)/graphql$")
# Whitespace, controls and backslashes (which browsers read as `/`) never appear in a real endpoint.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True, slots=True)
class ShopEndpoints:
    """What discovery told us about the shop."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    end_session_endpoint: str
    jwks_uri: str
    graphql_url: str  # pinned to SHOPIFY_API_VERSION
    advertised_api_version: str | None = None  # the version the shop's document named, for `doctor`


def advertised_version(graphql_api: str) -> str | None:
    found = _VERSION_IN_URL.search(graphql_api)
    return found[1] if found else None


def pin_api_version(graphql_api: str, version: str) -> str:
    """The discovered URL carries the latest version; pin the configured one instead."""
    if _VERSION_IN_URL.search(graphql_api):
        return _VERSION_IN_URL.sub(f"/customer/api/{version}/graphql", graphql_api)
    return graphql_api


class EndpointRule:
    """Where a discovered endpoint may point: `https://` on the default port, no credentials or fragment, on

    - `shopify.com` or a subdomain of it (the canonical `shopify.com/authentication/{shop_id}` shape),
    - the shop's own host, or `account.` + that host without a leading `www.` (a custom customer-account domain:
      shop `crukafe.com` or `www.crukafe.com` → `account.crukafe.com`), or
    - an `extra_hosts` entry (BFF_DISCOVERY_EXTRA_HOSTS), matched exactly.

    Exact hosts, not "anything under the shop's registrable domain": that would need the public suffix list and
    would trust every sibling subdomain. A loopback stand-in's http endpoints are allowed on its own origin only.
    """

    def __init__(self, shop_origin: str, extra_hosts: Iterable[str] = ()) -> None:
        self._shop_origin = Origin.of(shop_origin)
        shop_host = urlsplit(self._shop_origin).hostname or ""
        extra = (h.strip().lower().rstrip(".") for h in extra_hosts)
        self._hosts = frozenset({shop_host, f"account.{shop_host.removeprefix('www.')}", *extra} - {""})

    def allows(self, url: str) -> bool:
        if _FORBIDDEN.search(url):
            return False
        try:
            parts = urlsplit(url)
            origin = Origin.of(url)
        except ValueError:  # not absolute, or a bad port
            return False
        if parts.username is not None or parts.password is not None or parts.fragment:
            return False
        if origin == self._shop_origin:
            return True
        host = parts.hostname or ""
        # The origin comparison refuses http, other schemes and explicit non-default ports in one go.
        on_allowed_host = host in self._hosts or host == SHOPIFY_HOST or host.endswith(f".{SHOPIFY_HOST}")
        return on_allowed_host and origin == f"https://{host}"


class Discovery:
    """Caches the shop's endpoints and signing keys; refreshes them in the background past the TTL."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        shop_origin: str,
        api_version: str,
        ttl: float,
        deadline: float,
        extra_hosts: Iterable[str] = (),
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`http` is the shop's auth client (http.py), which sets the User-Agent and per-read timeouts;
        `deadline` bounds one whole fetch (both documents, or the JWKS)."""
        self._http = http
        self._shop_origin = shop_origin
        self._api_version = api_version
        self._ttl = ttl
        self._deadline = deadline
        self._retry_after = retry_after
        self._clock = clock
        self._rule = EndpointRule(shop_origin, extra_hosts)
        self._endpoints: ShopEndpoints | None = None
        self._fetched_at = 0.0
        self._retry_at = 0.0
        self._fetching: asyncio.Task[ShopEndpoints] | None = None
        self._keys: KeySet | None = None
        self._keys_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, settings: Settings, *, clock: Callable[[], float] = time.monotonic
    ) -> Discovery:
        return cls(
            http,
            shop_origin=settings.shop_origin,
            api_version=settings.shopify_api_version,
            ttl=settings.bff_discovery_ttl,
            deadline=settings.bff_upstream_connect_timeout + settings.bff_upstream_read_timeout,
            extra_hosts=settings.bff_discovery_extra_hosts,
            clock=clock,
        )

    def current(self) -> ShopEndpoints | None:
        """The endpoints while the copy held is within its TTL; else None, and the caller awaits `endpoints()`
        (which fetches, or starts a background refetch). The hot path's check without a coroutine."""
        cached = self._endpoints
        if cached is None or self._ttl == 0:
            return None
        age = self._clock() - self._fetched_at
        return cached if 0 <= age < self._ttl else None

    async def endpoints(self) -> ShopEndpoints:
        cached = self._endpoints
        if cached is None or self._ttl == 0:
            try:
                # Shielded: a caller that goes away does not cancel the fetch the others wait for.
                return await asyncio.shield(self._fetch_once(background=False))
            except BFFError:
                if cached is None:
                    raise
                return cached  # TTL 0: a shop blip is still served from the last good copy
        now = self._clock()
        age = now - self._fetched_at
        if (age >= self._ttl or age < 0) and now >= self._retry_at:
            self._fetch_once(background=True)
        return cached

    async def aclose(self) -> None:
        """Cancel a refresh in flight (the lifespan calls this before closing the http client)."""
        task, self._fetching = self._fetching, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    def _fetch_once(self, *, background: bool) -> asyncio.Task[ShopEndpoints]:
        """The fetch in flight, or a new one: never two at once."""
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(self._refresh(background=background), name="discovery")
            self._fetching.add_done_callback(_retrieved)
        return self._fetching

    async def _refresh(self, *, background: bool) -> ShopEndpoints:
        try:
            async with asyncio.timeout(self._deadline):
                endpoints = await self._fetch()
        except Exception as exc:
            self._retry_at = self._clock() + self._retry_after
            timed_out = DiscoveryTimeout.code if isinstance(exc, TimeoutError) else type(exc).__name__
            code = exc.code if isinstance(exc, BFFError) else timed_out
            # One line per failed fetch (concurrent callers share it), with where and why: never a traceback.
            where, why = target_of(exc, self._shop_origin), cause_of(exc)
            if background:  # nobody awaits this task: say why the cached copy is still in use
                log.warning(
                    "discovery refresh failed (%s): %s at %s; serving the cached copy, retrying later", code, why, where
                )
            else:
                log.warning("discovery failed (%s): %s at %s (SHOPIFY_SHOP_DOMAIN)", code, why, where)
            if isinstance(exc, TimeoutError):
                raise DiscoveryTimeout("Timed out fetching the shop's discovery documents.") from exc
            raise
        self._endpoints, self._fetched_at = endpoints, self._clock()
        return endpoints

    async def _fetch(self) -> ShopEndpoints:
        oidc, caa = await asyncio.gather(
            get_json(self._http, f"{self._shop_origin}/{OPENID_CONFIGURATION}", "OpenID configuration", redirects=3),
            get_json(
                self._http, f"{self._shop_origin}/{CUSTOMER_ACCOUNT_API}", "Customer Account API document", redirects=3
            ),
        )
        if "issuer" not in oidc:
            raise DiscoveryFailed("The shop's discovery lacks issuer.")
        graphql_api = self._endpoint(caa, "graphql_api")
        return ShopEndpoints(
            issuer=str(oidc["issuer"]),
            authorization_endpoint=self._endpoint(oidc, "authorization_endpoint"),
            token_endpoint=self._endpoint(oidc, "token_endpoint"),
            end_session_endpoint=self._endpoint(oidc, "end_session_endpoint"),
            jwks_uri=self._endpoint(oidc, "jwks_uri"),
            graphql_url=pin_api_version(graphql_api, self._api_version),
            advertised_api_version=advertised_version(graphql_api),
        )

    def _endpoint(self, document: dict[str, Any], name: str) -> str:
        """A discovered endpoint that `EndpointRule` allows; the detail names the field, never the URL."""
        if name not in document:
            raise DiscoveryFailed(f"The shop's discovery lacks {name}.")
        value = document[name]
        if not isinstance(value, str) or not self._rule.allows(value):
            raise DiscoveryFailed(
                f"The shop's discovery names a {name} that is not an https URL on an allowed host "
                "(Shopify's, the shop's own, or BFF_DISCOVERY_EXTRA_HOSTS)."
            )
        return value

    async def keys(self, *, refetch: bool = False) -> KeySet:
        """The shop's ID-token signing keys; `refetch` once when a token names an unknown kid."""
        if self._keys is not None and not refetch:
            return self._keys
        async with self._keys_lock:
            if self._keys is not None and not refetch:
                return self._keys
            endpoints = await self.endpoints()
            try:
                async with asyncio.timeout(self._deadline):
                    body = await get_json(self._http, endpoints.jwks_uri, "JWKS")
            except (BFFError, TimeoutError) as exc:
                code = exc.code if isinstance(exc, BFFError) else "discovery_timeout"
                log.warning("JWKS fetch failed (%s): %s at %s", code, cause_of(exc), target_of(exc, endpoints.jwks_uri))
                if isinstance(exc, TimeoutError):
                    raise DiscoveryTimeout("Timed out fetching the shop's JWKS.") from exc
                raise
            try:
                self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
            except Exception as exc:
                raise DiscoveryFailed("The shop's JWKS could not be read.") from exc
            return self._keys


def _retrieved(task: asyncio.Task[ShopEndpoints]) -> None:
    # A background refresh's failure is logged in _refresh; mark it retrieved so asyncio does not log it again.
    if not task.cancelled():
        task.exception()
