"""A refresh stampede: many concurrent /graphql calls on one session whose access token just expired."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import httpx

from bench.bff import GRAPHQL_BODY
from bench.logins import log_in


@dataclass(frozen=True, slots=True)
class StampedeResult:
    requests: int
    statuses: dict[int, int]
    seconds: float  # from the first request sent until the last answer
    baseline_seconds: float  # the same burst again right after, with a fresh token (no refresh)
    refresh_grants: int  # refresh_token grants the stand-in counted during the stampede

    @property
    def all_ok(self) -> bool:
        return self.statuses == {200: self.requests}


async def _mock(client: httpx.AsyncClient, method: str, path: str, json: object | None = None) -> dict[str, object]:
    response = await client.request(method, path, json=json)
    response.raise_for_status()
    body: dict[str, object] = response.json()
    return body


def _refresh_grants(stats: dict[str, object]) -> int:
    grants = stats["grants"]
    assert isinstance(grants, dict)
    return int(grants["refresh_token"])


async def _burst(url: str, cookie: str, requests: int) -> tuple[list[int], float]:
    """`requests` concurrent POSTs on their own connections; their statuses and the wall time of all."""
    headers = {"Cookie": cookie, "X-CSRF": "1", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=requests)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def one() -> int:
            async with http.post(url, data=GRAPHQL_BODY, headers=headers) as response:
                await response.read()
                return response.status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(one() for _ in range(requests)))
        return statuses, time.perf_counter() - started


async def stampede(bff_url: str, mock_url: str, *, requests: int = 100) -> StampedeResult:
    """Log in with an access token born expired (no waiting), then fire `requests` at once."""
    async with httpx.AsyncClient(base_url=mock_url, timeout=10) as admin:
        await _mock(admin, "POST", "/_mock/settings", {"access_token_ttl": 0})
        try:
            async with httpx.AsyncClient(follow_redirects=False, timeout=30) as browser:
                cookie = await log_in(browser, bff_url, "stampede@example.com")
        finally:
            # The refreshed token must outlive the stampede, or a slow burst would rightly refresh twice.
            await _mock(admin, "POST", "/_mock/settings", {"access_token_ttl": 3600})
        before = _refresh_grants(await _mock(admin, "GET", "/_mock/stats"))
        statuses, seconds = await _burst(f"{bff_url}/graphql", cookie, requests)
        after = _refresh_grants(await _mock(admin, "GET", "/_mock/stats"))
        _, baseline = await _burst(f"{bff_url}/graphql", cookie, requests)
    return StampedeResult(requests, dict(Counter(statuses)), seconds, baseline, after - before)
