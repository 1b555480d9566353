"""The Storefront API client: a cart's buyer identity set server-side, with the shop's private token.

One pooled httpx client per process, set up once: `Shopify-Storefront-Private-Token` on every call (the
token is private because a server holds it; it never reaches a browser or a log), the buyer's address as
`Shopify-Storefront-Buyer-IP` on each call (Shopify throttles and screens private-token calls by the buyer,
not by this server), the BFF's User-Agent, no redirects, no cookies. Each whole call is bounded by the
upstream total timeout (httpx's timeouts bound each wait, not the call).

Errors map to the catalog once, here: unreachable or 5xx → 502 `storefront_unavailable`, a timeout → 504
`storefront_timeout`, 429 → `rate_limited` with Shopify's Retry-After, a refused token or an answer that
is not the expected JSON → 502 `storefront_error`. GraphQL's top-level `errors` are never passed on: their
messages quote variable values, which include the customer's access token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.errors import RateLimited, StorefrontError, StorefrontTimeout, StorefrontUnavailable
from app.metrics import Metrics

log = logging.getLogger("bff.storefront")

BUYER_IDENTITY_UPDATE = """
mutation CartBuyerIdentityUpdate($cartId: ID!, $buyerIdentity: CartBuyerIdentityInput!) {
  cartBuyerIdentityUpdate(cartId: $cartId, buyerIdentity: $buyerIdentity) {
    cart { id checkoutUrl }
    userErrors { field code message }
  }
}
"""
PRIMARY_DOMAIN = "query ShopPrimaryDomain { shop { primaryDomain { url } } }"


@dataclass(frozen=True, slots=True)
class UserError:
    """One of Shopify's `CartUserError`s: the input path it is about, its code and message."""

    field: tuple[str, ...]
    code: str | None
    message: str


@dataclass(frozen=True, slots=True)
class CartUpdate:
    """What `cartBuyerIdentityUpdate` answered: the cart (None when Shopify refused) and its userErrors."""

    cart_id: str | None
    checkout_url: str | None
    user_errors: tuple[UserError, ...]


def _user_errors(raw: object) -> tuple[UserError, ...]:
    if not isinstance(raw, list):
        raise StorefrontError("The Storefront API answered userErrors that are not a list.")
    found = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            raise StorefrontError("The Storefront API answered a malformed userError.")
        path = item.get("field") or []
        code = item.get("code")
        found.append(UserError(tuple(str(p) for p in path), code if isinstance(code, str) else None, item["message"]))
    return tuple(found)


class StorefrontAPI:
    """POSTs the BFF's own Storefront documents to the shop; open with `async with`."""

    def __init__(
        self,
        *,
        url: str,
        private_token: str,
        user_agent: str,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`url` is the shop's `https://{domain}/api/{version}/graphql.json`; `transport`: httpx's own unless
        given (tracing's, see tracing.py)."""
        self.url = url
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
            "Shopify-Storefront-Private-Token": private_token,
        }
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._total_timeout = total_timeout
        self._metrics = metrics
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> StorefrontAPI:
        self._http = httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, headers=self._headers, transport=self._transport
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def update_buyer_identity(
        self, cart_id: str, identity: Mapping[str, str | None], *, buyer_ip: str
    ) -> CartUpdate:
        """Set (a value) or clear (None) the buyer-identity fields named in `identity`; others stay as they are."""
        variables = {"cartId": cart_id, "buyerIdentity": dict(identity)}
        data = await self._call(BUYER_IDENTITY_UPDATE, variables, buyer_ip=buyer_ip)
        payload = data.get("cartBuyerIdentityUpdate")
        if not isinstance(payload, dict):
            raise StorefrontError("The Storefront API answered no cartBuyerIdentityUpdate.")
        errors = _user_errors(payload.get("userErrors", []))
        cart = payload.get("cart")
        if cart is None:
            return CartUpdate(None, None, errors)
        found, url = (cart.get("id"), cart.get("checkoutUrl")) if isinstance(cart, dict) else (None, None)
        if not isinstance(found, str) or not isinstance(url, str):
            raise StorefrontError("The Storefront API answered a malformed cart.")
        return CartUpdate(found, url, errors)

    async def primary_domain(self, *, buyer_ip: str) -> str:
        """The URL of the shop's primary domain, as Shopify states it."""
        data = await self._call(PRIMARY_DOMAIN, {}, buyer_ip=buyer_ip)
        url = ((data.get("shop") or {}).get("primaryDomain") or {}).get("url")
        if not isinstance(url, str):
            raise StorefrontError("The Storefront API answered no primary domain.")
        return url

    async def _call(self, query: str, variables: dict[str, Any], *, buyer_ip: str) -> dict[str, Any]:
        """`data` of one GraphQL call; every failure is a catalog error."""
        assert self._http is not None, "use StorefrontAPI inside `async with`"
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._total_timeout):
                response = await self._http.post(
                    self.url,
                    json={"query": query, "variables": variables},
                    headers={"Shopify-Storefront-Buyer-IP": buyer_ip},
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise StorefrontTimeout("The Storefront API timed out.") from exc
        except httpx.HTTPError as exc:
            raise StorefrontUnavailable("The Storefront API is unreachable.") from exc
        self._metrics.upstream_latency.labels("storefront").observe(time.perf_counter() - started)
        status = response.status_code
        if status == 429:
            retry = response.headers.get("retry-after", "2")
            retry = retry if retry.isascii() and retry.isdigit() else "2"
            raise RateLimited("Shopify is throttling this buyer's cart calls.", headers={"Retry-After": retry})
        if status in (401, 403):
            log.error("the Storefront API refused SHOPIFY_STOREFRONT_TOKEN (HTTP %d)", status)
            raise StorefrontError("The Storefront API refused the BFF's token.")
        if status != 200:
            raise StorefrontUnavailable(f"The Storefront API answered HTTP {status}.")
        try:
            body = response.json()
        except ValueError as exc:
            raise StorefrontError("The Storefront API's answer is not JSON.") from exc
        if not isinstance(body, dict):
            raise StorefrontError("The Storefront API's answer is not a JSON object.")
        if body.get("errors"):
            # Codes only: a message may quote the variables, and with them the customer's token.
            errors = body["errors"] if isinstance(body["errors"], list) else []
            codes = sorted({str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)})
            log.warning("the Storefront API answered GraphQL errors: %s", ", ".join(codes) or "no codes")
            raise StorefrontError("The Storefront API refused the request.")
        data = body.get("data")
        if not isinstance(data, dict):
            raise StorefrontError("The Storefront API answered no data.")
        return data
