"""The session cache (BFF_SESSION_CACHE): no Redis round trip for a current copy, and every guarantee kept.

In-process BFFs where the claim is about one process (what it sends to Redis, its clock); stores of several
shops on one cache where the claim is about keeping shops apart; real `python -m app serve` processes where
the claim is about what one process sees of another's changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager

from app.crypto import TokenCipher
from app.shops import load_shops
from app.store.session_cache import SessionCache
from app.store.sessions import Session, SessionStore, new_session_id, session_key, session_prefix
from mock_shopify.customers import customer_number
from mock_shopify.webhooks import signature
from tests.helpers import (
    BFF_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    CSRF,
    LOGOUT_URL,
    SESSION_SECRET,
    STOREFRONT,
    Clock,
    ConfigError,
    Deployment,
    Launcher,
    Process,
    RedisConnections,
    Shop,
    browser,
    create_app,
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


# --- Several shops, one cache -------------------------------------------------------------------------


class ShopStores:
    """Each shop's SessionStore over one Redis and one SessionCache, as the lifespan builds them."""

    def __init__(self, redis: RedisConnections, cache: SessionCache, prefixes: dict[str, str]) -> None:
        self.redis, self.cache, self.prefixes = redis, cache, prefixes
        self.ciphers = {shop: TokenCipher([os.urandom(32)]) for shop in prefixes}  # each shop's own keys
        self.stores = {shop: self.store(shop, cache=cache) for shop in prefixes}

    def store(self, shop: str, *, cache: SessionCache | None) -> SessionStore:
        """A store of `shop`'s; with no cache, another process's view of the same sessions."""
        prefix = self.prefixes[shop]
        return SessionStore(
            self.redis, self.ciphers[shop], idle_timeout=3600, absolute_lifetime=7200, prefix=prefix, cache=cache
        )


@asynccontextmanager
async def shops_on_one_cache(redis_url: str, *shops: str) -> AsyncIterator[ShopStores]:
    run = uuid.uuid4().hex[:8]  # keys of this test's own, whatever else the suite left in Redis
    prefixes = {shop: f"cache-{run}:{shop}:" for shop in shops}
    redis = RedisConnections(redis_url, max_connections=4)
    assert redis.endpoint is not None
    cache = SessionCache(redis.endpoint, prefixes=[session_prefix(p) for p in prefixes.values()], idle_timeout=3600)
    try:
        async with cache:

            async def live() -> bool:
                return cache.live

            await eventually(live, what="the session cache connected")
            yield ShopStores(redis, cache, prefixes)
    finally:
        await redis.aclose()


def session_of(sid: str, shop: str) -> Session:
    """The session one shop keeps under `sid`: its access token names the shop."""
    sub = "gid://shopify/Customer/1"
    return Session(
        sid=sid, sub=sub, claims={}, access_token=f"shcat_{shop}", access_expires_at=0, access_lifetime=3600,
        refresh_token=f"shcrt_{shop}", id_token="", credential="", created_at=time.time(),
    )  # fmt: skip


async def cached_load(store: SessionStore, sid: str, redis: aioredis.Redis) -> Session:
    """The session, once answered from the cache (the first read of it goes to Redis and keeps a copy)."""
    found: list[Session] = []

    async def cached() -> bool:
        before = await hot_reads(redis)
        session = await store.load(sid)
        assert session is not None
        found[:] = [session]
        return await hot_reads(redis) == before

    await eventually(cached, what="a load answered without Redis")
    return found[0]


async def test_each_shop_s_session_under_one_id_is_answered_from_the_one_cache(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    async with shops_on_one_cache(redis_url, "a", "b") as shops:
        sid = new_session_id("gid://shopify/Customer/1")  # the same id in both shops, each its own session
        for shop, store in shops.stores.items():
            await store.create(session_of(sid, shop))
        for store in shops.stores.values():
            await cached_load(store, sid, redis_client)
        before = await hot_reads(redis_client)
        loaded = {shop: await store.load(sid) for shop, store in shops.stores.items()}
        reads = await hot_reads(redis_client) - before
        tokens = {shop: session and session.access_token for shop, session in loaded.items()}
        assert (tokens, reads) == ({"a": "shcat_a", "b": "shcat_b"}, 0)  # each its own, neither from Redis


async def test_a_change_to_one_shop_s_session_drops_that_shop_s_copy_only(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    async with shops_on_one_cache(redis_url, "a", "b") as shops:
        sid = new_session_id("gid://shopify/Customer/1")
        for shop, store in shops.stores.items():
            await store.create(session_of(sid, shop))
        a, b = shops.stores["a"], shops.stores["b"]
        old = await cached_load(a, sid, redis_client)
        await cached_load(b, sid, redis_client)
        # Another process refreshes shop A's session: a write to A's record only, which Redis announces.
        elsewhere = shops.store("a", cache=None)
        assert await elsewhere.replace_if_current(replace(old, access_token="shcat_a2")) is not None

        async def refreshed() -> bool:
            session = await a.load(sid)
            return session is not None and session.access_token == "shcat_a2"

        await eventually(refreshed, what="shop A's copy dropped")
        before = await hot_reads(redis_client)
        kept = await b.load(sid)
        assert (kept and kept.access_token, await hot_reads(redis_client) - before) == ("shcat_b", 0)


# --- One cache per process, whatever the number of shops --------------------------------------------


def shops_file(path: Path, shop_url: str, count: int) -> Path:
    """A BFF_SHOPS_FILE of `count` shops, each at its own path prefix, all on the one stand-in."""
    tables = [
        f'''[shops.s{n}]
shop_domain = "{shop_url}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
public_url = "{BFF_URL}/s{n}"
post_logout_redirect_url = "{LOGOUT_URL}"
allowed_origins = ["{STOREFRONT}"]
'''
        for n in range(count)
    ]
    path.write_text("\n".join(tables))
    return path


async def cache_connections(redis: aioredis.Redis, name: str) -> int:
    """The connections named `name` that belong to a session cache: subscribed (P) or tracking (t)."""
    return sum(1 for c in await redis.client_list() if c["name"] == name and set(c["flags"]) & {"P", "t"})


@pytest.mark.parametrize("count", [1, 8])
async def test_one_cache_opens_two_redis_connections_whatever_the_number_of_shops(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path, count: int
) -> None:
    name = f"bff-{uuid.uuid4().hex[:8]}"
    shops = load_shops(
        shops_file(tmp_path / "shops.toml", shop.url, count),
        redis_url=f"{redis_url}?client_name={name}",
        bff_session_secret=SESSION_SECRET,
        bff_session_cache="on",
        bff_metrics_listener="off",
    )
    async with LifespanManager(create_app(shops)) as manager:

        async def connected() -> bool:
            return await cache_connections(redis_client, name) >= 2

        await eventually(connected, what="the session cache connected")
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BFF_URL) as client:
            # Every shop's store pings Redis: time enough for any other cache to have connected too.
            assert (await client.get("/readyz")).status_code == 200
        assert await cache_connections(redis_client, name) == 2


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
