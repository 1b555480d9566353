"""The session cache (BFF_SESSION_CACHE): no Redis round trip for a current copy, and every guarantee kept.

In-process BFFs where the claim is about one process (what it sends to Redis, its clock); real `python -m app
serve` processes where the claim is about what one process sees of another's changes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis.asyncio as aioredis

from app.store.sessions import session_key
from mock_shopify.customers import customer_number
from mock_shopify.webhooks import signature
from tests.helpers import (
    CSRF,
    Clock,
    ConfigError,
    Deployment,
    Launcher,
    Process,
    Shop,
    browser,
    eventually,
    gql,
    login,
    make_settings,
    running_bff,
    shop_at,
)

SECRET = "whsec-4fQ9zL2mX7pR1vT8kN3bW6yH0cJ5dG"
# No rate limits where the clock jumps: a new window's counter is read from Redis first, which would hide
# what these tests look at.
NO_LIMITS = {"bff_rate_limit_graphql": "0/minute", "bff_rate_limit_graphql_customer": "0/minute"}


async def hot_reads(redis: aioredis.Redis) -> int:
    """How many times the session-read script has run (every read of the hot path is one EVALSHA)."""
    stats = await redis.info("commandstats")
    found = stats.get("cmdstat_evalsha", {})
    return int(found.get("calls", 0)) if isinstance(found, dict) else 0


async def warm(client: httpx.AsyncClient, redis: aioredis.Redis, *, at: str = "") -> None:
    """Until a request on `at` is answered from that process's copy (its cache connects in the background)."""

    async def cached() -> bool:
        before = await hot_reads(redis)
        assert (await gql(client, at=at)).status_code == 200
        return await hot_reads(redis) == before

    await eventually(cached, what="a request answered without Redis")


def sid_of(client: httpx.AsyncClient) -> str:
    return client.cookies["bff_session"].rsplit(".", 1)[0]


# --- One process --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cache", "reads"), [("on", 0), ("auto", 0), ("off", 20)])
async def test_steady_state_requests_read_redis_only_without_the_cache(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis, cache: str, reads: int
) -> None:
    # Limits on, as in production; per day, so no window ends (and is read afresh) halfway through.
    limits = {"bff_rate_limit_graphql": "100000/day", "bff_rate_limit_graphql_customer": "100000/day"}
    settings = make_settings(shop.url, redis_url, bff_session_cache=cache, **limits)
    async with running_bff(settings) as client:
        await login(client)
        if cache != "off":
            await warm(client, redis_client)
        before = await hot_reads(redis_client)
        for _ in range(20):
            assert (await gql(client)).status_code == 200
        assert await hot_reads(redis_client) - before == reads


async def test_a_copy_is_not_trusted_past_redis_s_idle_expiry(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    clock = Clock()
    settings = make_settings(
        shop.url, redis_url, bff_session_cache="on", bff_session_idle_timeout=120, bff_session_absolute_lifetime=600,
        **NO_LIMITS,
    )  # fmt: skip
    async with running_bff(settings, clock=clock) as client:
        await login(client)
        await warm(client, redis_client)
        clock.advance(10)  # a use well inside the idle timeout: the copy answers
        before = await hot_reads(redis_client)
        assert (await gql(client)).status_code == 200
        assert await hot_reads(redis_client) == before
        # Idle for longer than the timeout since that use (the clock moved, not time, so Redis's own TTL has
        # not run out): the copy is not used, Redis is asked, and it decides whether the session idled out.
        clock.advance(121)
        assert (await gql(client)).status_code == 200
        assert await hot_reads(redis_client) == before + 1


async def test_the_absolute_deadline_ends_a_cached_session(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    clock = Clock()
    settings = make_settings(
        shop.url, redis_url, bff_session_cache="on", bff_session_idle_timeout=3600, bff_session_absolute_lifetime=3600,
        **NO_LIMITS,
    )  # fmt: skip
    async with running_bff(settings, clock=clock) as client:
        await login(client)
        await warm(client, redis_client)
        clock.advance(3601)
        ended = await gql(client)
        assert ended.status_code == 401 and ended.json()["error"] == "session_expired"


async def test_a_killed_invalidation_connection_serves_no_stale_copy(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = make_settings(shop.url, redis_url, bff_session_cache="on")
    async with running_bff(settings) as client:
        await login(client)
        await warm(client, redis_client)
        await redis_client.client_kill_filter(_type="pubsub")
        # Ended behind the process's back while it cannot hear of it: its copy must already be gone.
        await redis_client.delete(session_key(sid_of(client)))
        ended = await gql(client)
        assert ended.status_code == 401 and ended.json()["error"] == "session_expired"


UNTRUSTED_URLS = [
    "redis+sentinel://127.0.0.1:26379/mymaster",
    "redis+cluster://127.0.0.1:7000/0",
    "rediss://127.0.0.1:6380/0",
    "unix:///run/redis.sock",
]


@pytest.mark.parametrize("url", UNTRUSTED_URLS)
def test_the_cache_is_refused_where_invalidations_cannot_be_trusted(shop: Shop, url: str) -> None:
    with pytest.raises(ConfigError, match="BFF_SESSION_CACHE"):
        make_settings(shop.url, url, bff_session_cache="on")


@pytest.mark.parametrize(("url", "on"), [("redis://127.0.0.1:6379/0", True), *((url, False) for url in UNTRUSTED_URLS)])
def test_the_default_turns_the_cache_on_only_where_invalidations_can_be_trusted(shop: Shop, url: str, on: bool) -> None:
    assert make_settings(shop.url, url).session_cache_on is on


# --- Two processes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cached_pair(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Deployment]:
    launcher = Launcher(tmp_path_factory.mktemp("cached"))
    try:
        yield launcher.deployment(
            redis_url,
            BFF_SESSION_CACHE="on",
            SHOPIFY_WEBHOOK_SECRET=SECRET,
            BFF_RATE_LIMIT_GRAPHQL="100/day",
            BFF_RATE_LIMIT_GRAPHQL_CUSTOMER="100/day",
        )
    finally:
        launcher.stop_all()


@pytest.fixture
async def pair(cached_pair: Deployment) -> AsyncIterator[tuple[Shop, Process, Process]]:
    async with shop_at(cached_pair.shop.url) as shop:
        await shop.knob("reset")
        a, b = cached_pair.bffs
        yield shop, a, b


def unique_email() -> str:
    # A customer of this test's own: the per-customer counter (per day) starts from zero.
    return f"cache-{uuid.uuid4().hex[:12]}@example.com"


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["logout", "everywhere", "webhook"])
async def test_a_session_ended_on_one_process_is_refused_by_the_other_within_100_ms(
    pair: tuple[Shop, Process, Process], redis_client: aioredis.Redis, ending: str
) -> None:
    _, a, b = pair
    email = unique_email()
    async with browser() as client:
        await login(client, email, at=a.url)
        await warm(client, redis_client, at=b.url)
        cookie = client.cookies["bff_session"]
        if ending == "webhook":
            # Signed by hand, so the stand-in keeps the customer's tokens: only the BFF's copy could answer.
            body = json.dumps({"id": customer_number(email)}).encode()
            headers = {"X-Shopify-Topic": "customers/delete", "X-Shopify-Hmac-Sha256": signature(body, SECRET)}
            hook = await client.post(
                f"{a.url}/webhooks/shopify", content=body, headers={**headers, "X-Shopify-Webhook-Id": uuid.uuid4().hex}
            )
            assert hook.status_code == 200, hook.text
        else:
            everywhere = "?everywhere=1" if ending == "everywhere" else ""
            out = await client.post(f"{a.url}/auth/logout{everywhere}", headers={**CSRF, "Accept": "application/json"})
            assert out.status_code == 200, out.text
        ended_at = time.monotonic()
        client.cookies.set("bff_session", cookie)  # a copy of the cookie, kept: the session itself is over

        async def refused() -> bool:
            reply = await gql(client, at=b.url)
            assert reply.status_code in {200, 401}, reply.text
            return reply.status_code == 401 and reply.json()["error"] == "session_expired"

        await eventually(refused, timeout=0.1, what=f"{ending} on A refused by B")
        assert time.monotonic() - ended_at < 0.1


@pytest.mark.slow
async def test_a_refresh_on_one_process_is_used_by_the_other(
    pair: tuple[Shop, Process, Process], redis_client: aioredis.Redis
) -> None:
    shop, a, b = pair
    async with browser() as client:
        await login(client, unique_email(), at=a.url)
        await warm(client, redis_client, at=b.url)
        await shop.knob("expire_access_tokens")
        assert (await gql(client, at=a.url)).status_code == 200  # A: 401 upstream, one refresh, retried
        before = (await shop.stats())["graphql_requests"]
        assert (await gql(client, at=b.url)).status_code == 200
        stats = await shop.stats()
        # B sent the new token at once (one call upstream, no 401 and retry) and did not refresh again.
        assert stats["graphql_requests"] - before == 1
        assert stats["grants"]["refresh_token"] == 1


async def hammer(clients: list[httpx.AsyncClient], bffs: list[Process], total: int) -> int:
    """`total` requests spread over every client and process, 8 at a time each; how many were answered."""
    per = total // (len(clients) * len(bffs))

    async def stream(client: httpx.AsyncClient, at: str) -> int:
        ok = 0
        for _ in range(per // 8):
            replies = await asyncio.gather(*(gql(client, at=at) for _ in range(8)))
            assert {r.status_code for r in replies} <= {200, 429}
            ok += sum(r.status_code == 200 for r in replies)
        return ok

    return sum(await asyncio.gather(*(stream(c, p.url) for c in clients for p in bffs)))


@pytest.mark.slow
async def test_the_session_limit_holds_across_processes(pair: tuple[Shop, Process, Process]) -> None:
    _, a, b = pair
    async with browser() as client:
        await login(client, unique_email(), at=a.url)
        answered = await hammer([client], [a, b], 320)
    assert 90 <= answered <= 110  # BFF_RATE_LIMIT_GRAPHQL=100/day, within 10%


@pytest.mark.slow
async def test_the_customer_limit_holds_across_processes(pair: tuple[Shop, Process, Process]) -> None:
    _, a, b = pair
    email = unique_email()
    async with browser() as one, browser() as two:
        await login(one, email, at=a.url)
        await login(two, email, at=b.url)
        # 2 sessions x 2 processes x 80: each session stays under its own 100, the customer's 100 is hit.
        answered = await hammer([one, two], [a, b], 320)
    assert 90 <= answered <= 110  # BFF_RATE_LIMIT_GRAPHQL_CUSTOMER=100/day, within 10%


@pytest.mark.slow
async def test_a_redis_outage_is_503_at_once_and_logs_no_one_out(launcher: Launcher) -> None:
    redis = launcher.redis()
    a, b = launcher.deployment(redis.url, BFF_SESSION_CACHE="on").bffs
    probe = aioredis.Redis.from_url(redis.url)
    try:
        async with browser() as client:
            await login(client, at=a.url)
            for bff in (a, b):
                await warm(client, probe, at=bff.url)
            redis.stop()
            for bff in (a, b):
                down = await gql(client, at=bff.url)
                assert down.status_code == 503 and down.json()["error"] == "session_store_unavailable"
            redis.start()
            for bff in (a, b):

                async def answered(at: str = bff.url) -> bool:
                    reply = await gql(client, at=at)
                    assert reply.status_code in {200, 503}, reply.text  # never a 401
                    return reply.status_code == 200

                await eventually(answered, what="served again after Redis came back")
                assert (await client.get(f"{bff.url}/auth/session")).json()["authenticated"] is True
    finally:
        await probe.aclose()
