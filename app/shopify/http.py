"""The one httpx client for the shop's auth host: discovery, JWKS and the token endpoint.

Every call carries the BFF's User-Agent (Shopify answers 403 without one), follows no redirects and is
bounded by the upstream timeouts; transport failures become catalog errors where they are used.
"""

from __future__ import annotations

from typing import Any

import httpx

from app.errors import DiscoveryFailed, DiscoveryTimeout


def auth_http_client(*, user_agent: str, connect_timeout: float, read_timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
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
