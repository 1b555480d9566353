"""Real processes: BFF instances (`python -m app serve`) sharing one Redis and one Shopify stand-in.

The BFFs are child processes started with the Docker image's command; the stand-in runs in a thread of the test
process (cheap to start, and its knobs are plain HTTP).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.helpers import (
    CSRF,
    EMAIL,
    Deployment,
    Launcher,
    Process,
    Shop,
    browser,
    gql,
    login,
    login_with_expired_token,
    shop_at,
)

pytestmark = pytest.mark.slow


def assert_store_down(response: httpx.Response) -> None:
    """503 with Retry-After and the stable code, and the session cookie left alone."""
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "session_store_unavailable"
    assert response.headers["retry-after"] == "1"
    assert "bff_session" not in response.headers.get("set-cookie", "")


# --- Tests ----------------------------------------------------------------------------------------


@dataclass
class Pair:
    """Two BFF processes, A and B, sharing the test Redis and one stand-in."""

    shop: Shop
    a: Process
    b: Process


@pytest.fixture(scope="module")
def pair_processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Deployment]:
    # Started once per module: process start-up is most of these tests' time.
    launcher = Launcher(tmp_path_factory.mktemp("pair"))
    try:
        yield launcher.deployment(redis_url)
    finally:
        launcher.stop_all()


@pytest.fixture
async def pair(pair_processes: Deployment) -> AsyncIterator[Pair]:
    """The shared pair, its stand-in reset: no tokens, knobs or counters from an earlier test."""
    async with shop_at(pair_processes.shop.url) as shop:
        await shop.knob("reset")
        yield Pair(shop, *pair_processes.bffs)


class StaleRedisConnections(AssertionError):
    """Requests failed after Redis came back: pooled connections to the old server were used without a retry."""


async def test_a_session_made_on_one_process_works_on_another(pair: Pair) -> None:
    a, b = pair.a, pair.b
    async with browser() as client:
        await login(client, at=a.url)
        session = (await client.get(f"{b.url}/auth/session")).json()
        assert session["authenticated"] is True
        assert session["customer"]["email"] == EMAIL
        on_b = await gql(client, at=b.url)
        assert on_b.status_code == 200, on_b.text
        assert on_b.json()["data"]["customer"]["emailAddress"]["emailAddress"] == EMAIL
        # Logging out on B ends the session on A too: nothing lives in one process's memory.
        out = await client.post(f"{b.url}/auth/logout", headers={**CSRF, "Accept": "application/json"})
        assert out.status_code == 200, out.text
        assert (await client.get(f"{a.url}/auth/session")).json() == {"authenticated": False}


async def test_concurrent_requests_on_two_processes_refresh_once(pair: Pair) -> None:
    async with browser() as client:
        await login_with_expired_token(client, pair.shop, at=pair.a.url)
        await pair.shop.knob("delay_token", count=1, seconds=0.3)  # widen the race window
        responses = await asyncio.gather(*(gql(client, at=bff.url) for _ in range(25) for bff in (pair.a, pair.b)))
    assert [r.status_code for r in responses] == [200] * 50
    # Shopify rotates refresh tokens: a second refresh would have presented a dead one.
    assert (await pair.shop.stats())["grants"]["refresh_token"] == 1


async def test_redis_outage_is_503_everywhere_and_keeps_the_session(launcher: Launcher) -> None:
    redis = launcher.redis()
    a, b = launcher.deployment(redis.url).bffs
    async with browser() as client:
        await login(client, at=a.url)
        cookie = client.cookies["bff_session"]
        # Traffic before the outage leaves several connections in each process's pool.
        warm = await asyncio.gather(*(gql(client, at=bff.url) for _ in range(10) for bff in (a, b)))
        assert [r.status_code for r in warm] == [200] * 20

        redis.stop()
        for bff in (a, b):
            assert_store_down(await gql(client, at=bff.url))
            assert_store_down(await client.get(f"{bff.url}/auth/session"))
            ready = await client.get(f"{bff.url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] == "session_store_unavailable"

        redis.start()  # same port, same append-only file; neither BFF process is restarted
        assert client.cookies["bff_session"] == cookie
        # The first calls after the restart: A's login rate limiter and both session stores hold connections
        # to the old server. They must be retried on a new connection: no 503, and never a logout.
        first = [await client.get(f"{bff.url}/auth/login") for bff in (a, b)]
        first += await asyncio.gather(*(gql(client, at=bff.url) for _ in range(10) for bff in (a, b)))
        for bff in (a, b):
            assert (await gql(client, at=bff.url)).status_code == 200
            assert (await client.get(f"{bff.url}/auth/session")).json()["authenticated"] is True
            assert (await client.get(f"{bff.url}/readyz")).status_code == 200
            assert (await client.get(f"{bff.url}/auth/login")).status_code == 302
        failed = [f"{r.request.method} {r.request.url.path}" for r in first if r.status_code == 503]
        if failed:
            raise StaleRedisConnections(f"503 right after the restart: {failed}")
        assert [r.status_code for r in first] == [302, 302] + [200] * 20


async def test_shopify_errors_and_timeouts_keep_the_session(pair: Pair) -> None:
    async with browser() as client:
        await login(client, at=pair.a.url)
        await pair.shop.knob("fail_graphql", count=1, status=503)
        failed = await gql(client, at=pair.a.url)
        assert failed.status_code == 503  # Shopify's own status, passed through
        await pair.shop.knob("delay_graphql", count=1, seconds=2.5)  # past BFF_UPSTREAM_READ_TIMEOUT=2
        slow = await gql(client, at=pair.b.url)
        assert slow.status_code == 504
        assert slow.json()["error"] == "upstream_timeout"
        for bff in (pair.a, pair.b):
            assert (await gql(client, at=bff.url)).status_code == 200


async def test_shopify_outage_is_502_and_keeps_the_session(launcher: Launcher, redis_url: str) -> None:
    deployment = launcher.deployment(redis_url, bffs=1)
    (bff,) = deployment.bffs
    async with browser() as client:
        await login(client, at=bff.url)
        # Stopped for good: a restarted stand-in would have forgotten the tokens it issued.
        deployment.shop.stop()
        down = await gql(client, at=bff.url)
        assert down.status_code == 502  # connection refused
        assert down.json()["error"] == "upstream_unavailable"
        assert down.headers["retry-after"] == "2"
        assert "bff_session" not in down.headers.get("set-cookie", "")
        assert (await client.get(f"{bff.url}/auth/session")).json()["authenticated"] is True
