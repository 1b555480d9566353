"""The one httpx client for the shop's auth host: discovery, JWKS and the token endpoint.

Every call carries the BFF's User-Agent (Shopify answers 403 without one) and is bounded by the upstream
timeouts; transport failures become catalog errors where they are used. The client follows no redirects
by itself: `get_json` follows a few for the discovery documents, as a browser would, but only within the
shop's registrable domain (a shop on `example.com` answering from `www.example.com`), never to another.

httpx's timeouts bound each wait (connect, each read), not the call: an answer that drip-feeds its body
resets the read timeout with every byte. So the client also bounds every whole call (send, answer and
all of its body) by `total_timeout`, and reports it as an `httpx.TimeoutException` like its own; every
user of the client (discovery, JWKS, both token grants) is bounded without knowing it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from publicsuffixlist import PublicSuffixList

from app.errors import DiscoveryFailed, DiscoveryTimeout


class _BoundedClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` whose every `send` (the answer and all of its body) ends within `total`."""

    def __init__(self, *, total: float, **options: Any) -> None:
        super().__init__(**options)
        self._total = total

    async def send(self, request: httpx.Request, *args: Any, **kwargs: Any) -> httpx.Response:
        try:
            async with asyncio.timeout(self._total):
                return await super().send(request, *args, **kwargs)
        except TimeoutError as exc:
            raise httpx.TimeoutException(f"No whole answer within {self._total}s.", request=request) from exc


def auth_http_client(
    *,
    user_agent: str,
    connect_timeout: float,
    read_timeout: float,
    total_timeout: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """`total_timeout` bounds each whole call; unset, it is one connect plus one read timeout. `transport`:
    httpx's own unless given (tracing's, see tracing.py)."""
    return _BoundedClient(
        transport=transport,
        total=total_timeout if total_timeout is not None else connect_timeout + read_timeout,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        follow_redirects=False,
        headers={"User-Agent": user_agent, "Accept": "application/json"},
    )


_REDIRECTS = (301, 302, 303, 307, 308)


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package: no download


def _site(host: str) -> str:
    """The registrable domain of a host (`www.example.co.uk` → `example.co.uk`); an IP or a single label is
    its own."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return _suffixes().privatesuffix(host) or host


def same_site_redirect(origin_url: str, location: str) -> str | None:
    """The absolute redirect target if a browser-like fetch of `origin_url` may follow it: https (http only
    between identical loopback-style hosts, the stand-in) on the same registrable domain; else None."""
    target = urljoin(origin_url, location)
    source, parts = urlsplit(origin_url), urlsplit(target)
    host, source_host = (parts.hostname or "").lower(), (source.hostname or "").lower()
    if parts.username is not None or parts.password is not None or not host:
        return None
    if parts.scheme == "https":
        return target if _site(host) == _site(source_host) else None
    return target if parts.scheme == source.scheme == "http" and host == source_host else None


async def get_json(http: httpx.AsyncClient, url: str, what: str, *, redirects: int = 0) -> dict[str, Any]:
    """GET a JSON object from the shop, following up to `redirects` same-site redirects; any failure is a
    502 `discovery_failed` or 504 `discovery_timeout`."""
    try:
        response = await http.get(url)
    except httpx.TimeoutException as exc:
        raise DiscoveryTimeout(f"Timed out fetching the shop's {what}.") from exc
    except httpx.HTTPError as exc:
        raise DiscoveryFailed(f"Could not reach the shop for its {what}.") from exc
    if response.status_code in _REDIRECTS and redirects > 0:
        target = same_site_redirect(url, response.headers.get("location", ""))
        if target is None:
            raise DiscoveryFailed(
                f"The shop's {what} redirects off the shop's own domain (HTTP {response.status_code}); "
                "set SHOPIFY_SHOP_DOMAIN to the shop's *.myshopify.com domain."
            )
        return await get_json(http, target, what, redirects=redirects - 1)
    if response.status_code != 200:
        # Chained to httpx's own status error, so the log and `doctor` can say which status (failures.py).
        status = httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
        raise DiscoveryFailed(f"The shop answered {response.status_code} for its {what}.") from status
    try:
        body = response.json()
    except ValueError as exc:
        raise DiscoveryFailed(f"The shop's {what} is not JSON.") from exc
    if not isinstance(body, dict):
        raise DiscoveryFailed(f"The shop's {what} is not a JSON object.")
    return body
