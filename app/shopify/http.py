"""The one httpx client for the shop's auth host: discovery, JWKS and the token endpoint.

Every call carries the BFF's User-Agent (Shopify answers 403 without one), follows no redirects and is
bounded by the upstream timeouts; transport failures become catalog errors where they are used.

httpx's timeouts bound each wait (connect, each read), not the call: an answer that drip-feeds its body
resets the read timeout with every byte. So the client also bounds every whole call (send, answer and
all of its body) by `total_timeout`, and reports it as an `httpx.TimeoutException` like its own; every
user of the client (discovery, JWKS, both token grants) is bounded without knowing it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

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
    *, user_agent: str, connect_timeout: float, read_timeout: float, total_timeout: float | None = None
) -> httpx.AsyncClient:
    """`total_timeout` bounds each whole call; unset, it is one connect plus one read timeout."""
    return _BoundedClient(
        total=total_timeout if total_timeout is not None else connect_timeout + read_timeout,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        follow_redirects=False,
        headers={"User-Agent": user_agent, "Accept": "application/json"},
    )


async def get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    """GET a JSON object from the shop; any failure is a 502 `discovery_failed` or 504 `discovery_timeout`."""
    try:
        response = await http.get(url)
    except httpx.TimeoutException as exc:
        raise DiscoveryTimeout(f"Timed out fetching the shop's {what}.") from exc
    except httpx.HTTPError as exc:
        raise DiscoveryFailed(f"Could not reach the shop for its {what}.") from exc
    if response.status_code != 200:
        raise DiscoveryFailed(f"The shop answered {response.status_code} for its {what}.")
    try:
        body = response.json()
    except ValueError as exc:
        raise DiscoveryFailed(f"The shop's {what} is not JSON.") from exc
    if not isinstance(body, dict):
        raise DiscoveryFailed(f"The shop's {what} is not a JSON object.")
    return body
