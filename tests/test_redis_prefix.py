"""BFF_REDIS_PREFIX: two deployments on one Redis share nothing (issue 15, part 4).

Every test here runs two BFFs with the same secrets and the same shop on the same real Redis, told apart only
by their prefixes (fresh ones per test, so nothing earlier in the suite counts into their keys).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from mock_shopify.customers import customer_number
from tests.helpers import (
    BFF_URL,
    CSRF,
    Clock,
    ConfigError,
    Settings,
    Shop,
    authorize_at_shop,
    bff_environment,
    eventually,
    gql,
    login,
    make_settings,
    python,
    run,
    running_bff,
    start_login,
)

EMAIL = "grace.hopper@example.com"


def fresh_prefix(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}:"


async def all_keys(redis_client: aioredis.Redis) -> set[str]:
    return {key.decode() async for key in redis_client.scan_iter(match="*", count=1000)}


def share_cookies(source: httpx.AsyncClient, target: httpx.AsyncClient) -> None:
    """What a browser does with two deployments on one host: it sends the same cookies to both."""
    for cookie in source.cookies.jar:
        target.cookies.jar.set_cookie(cookie)


@asynccontextmanager
async def two_bffs(
    shop: Shop, redis_url: str, *prefixes: str, **overrides: object
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One in-process BFF per prefix, otherwise identical (secrets, shop, Redis, clock)."""
    clock = Clock()
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                running_bff(make_settings(shop.url, redis_url, bff_redis_prefix=prefix, **overrides), clock=clock)
            )
            for prefix in prefixes
        ]


async def test_the_default_prefix_keeps_the_key_names_of_before(
    settings: Settings, bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis
) -> None:
    assert settings.bff_redis_prefix == "bff:"
    await login(bff, EMAIL)
    sid = bff.cookies["bff_session"].rsplit(".", 1)[0]
    # The names deployments already have in Redis: a restart onto this version keeps every session.
    assert await redis_client.exists(f"bff:session:{{{sid[:16]}}}{sid[16:]}")
    assert await redis_client.exists(f"bff:cid:{{{sid[:16]}}}")
    assert (await bff.get("/auth/session")).json()["authenticated"] is True


async def test_a_session_of_one_deployment_is_no_session_on_the_other(shop: Shop, redis_url: str) -> None:
    async with two_bffs(shop, redis_url, fresh_prefix("shop-a"), fresh_prefix("shop-b")) as (a, b):
        await login(a, EMAIL)
        share_cookies(a, b)  # a valid signature: both sign with the same BFF_SESSION_SECRET
        assert (await b.get("/auth/session")).json() == {"authenticated": False}
        assert (await gql(b)).status_code == 401
        assert (await a.get("/auth/session")).json()["authenticated"] is True
        assert (await gql(a)).status_code == 200


async def test_rate_limit_buckets_are_per_deployment(shop: Shop, redis_url: str) -> None:
    # Both see every request from 127.0.0.1: one IP bucket each, which used to be one between them.
    limits = {"bff_rate_limit_login": "3/minute"}
    async with two_bffs(shop, redis_url, fresh_prefix("shop-a"), fresh_prefix("shop-b"), **limits) as (a, b):
        answers = [(await a.get("/auth/login")).status_code for _ in range(4)]
        assert answers == [302, 302, 302, 429]
        assert (await b.get("/auth/login")).status_code == 302


async def test_every_key_a_login_graphql_and_logout_write_carries_the_prefix(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    prefix = fresh_prefix("shop-a")
    before = await all_keys(redis_client)
    seen: set[str] = set()
    async with running_bff(make_settings(shop.url, redis_url, bff_redis_prefix=prefix)) as bff:
        assert (await bff.get("/readyz")).status_code == 200
        authorize_url = await start_login(bff)
        seen |= await all_keys(redis_client) - before  # the pending login, until the callback takes it
        assert (await bff.get(await authorize_at_shop(authorize_url, EMAIL))).status_code == 302
        seen |= await all_keys(redis_client) - before
        assert (await gql(bff)).status_code == 200
        seen |= await all_keys(redis_client) - before
        out = await bff.post("/auth/logout", headers={**CSRF, "Accept": "application/json"})
        assert out.status_code == 200
        seen |= await all_keys(redis_client) - before
        assert (await bff.get(out.json()["redirect_to"].removeprefix(BFF_URL))).status_code == 303
    seen |= await all_keys(redis_client) - before
    assert seen and all(key.startswith(prefix) for key in seen), sorted(seen)
    families = {key.removeprefix(prefix).split(":", 1)[0].split("{", 1)[0] for key in seen}
    assert {"readyz", "login", "session", "customer", "cid", "rl", "logout"} <= families, families


@pytest.mark.parametrize("who", ["--sub", "--customer-id"])
async def test_end_sessions_with_a_prefix_ends_only_that_deployments_sessions(
    shop: Shop, redis_url: str, tmp_path: Path, who: str
) -> None:
    prefix_a, prefix_b = fresh_prefix("shop-a"), fresh_prefix("shop-b")
    async with two_bffs(shop, redis_url, prefix_a, prefix_b) as (a, b):
        await login(a, EMAIL)
        await login(b, EMAIL)  # the same customer, signed in on both
        customer = (await a.get("/auth/session")).json()["customer"]["sub"]
        if who == "--customer-id":
            customer = str(customer_number(EMAIL))
        env = {**bff_environment(8000, shop.url), "REDIS_URL": redis_url, "BFF_REDIS_PREFIX": prefix_a}
        done = run(python("-m", "app", "end-sessions", who, customer), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "ended 1 session(s)" in done.stdout

        async def signed_out() -> bool:
            answer: object = (await a.get("/auth/session")).json()
            return answer == {"authenticated": False}

        # Another process ended it: A's copy is dropped when Redis's invalidation arrives. Had B's session been
        # ended too, B's would be here by then: Redis sends BCAST invalidations before the command's reply.
        await eventually(signed_out, what="A's session ended by end-sessions refused")
        assert (await b.get("/auth/session")).json()["authenticated"] is True


@pytest.mark.parametrize("prefix", ["shop a:", "shop{a}:", "shop*:"])
def test_an_unusable_prefix_stops_serve_with_one_line_naming_it(tmp_path: Path, prefix: str) -> None:
    env = {**bff_environment(8000, "http://127.0.0.1:9"), "BFF_REDIS_PREFIX": prefix}
    done = run(python("-m", "app", "serve"), cwd=tmp_path, env=env)
    assert done.returncode == 2
    first, *rest = done.stderr.splitlines()
    assert first == "invalid configuration:"
    assert len(rest) == 1 and rest[0].strip().startswith("BFF_REDIS_PREFIX: "), done.stderr


@pytest.mark.parametrize("prefix", ["", "x" * 33, "shöp:", "shop}:", "shop?", "[shop]", "shop\\"])
def test_prefixes_that_break_hash_tags_or_scans_are_refused(shop: Shop, redis_url: str, prefix: str) -> None:
    with pytest.raises(ConfigError, match="BFF_REDIS_PREFIX"):
        make_settings(shop.url, redis_url, bff_redis_prefix=prefix)


async def test_doctor_counts_only_its_deployments_session_records(shop: Shop, redis_url: str, tmp_path: Path) -> None:
    prefix_a, prefix_b = fresh_prefix("shop-a"), fresh_prefix("shop-b")
    async with two_bffs(shop, redis_url, prefix_a, prefix_b) as (a, b):
        await login(a, EMAIL)
        await login(b, EMAIL)
        await login(b, "ada.lovelace@example.com")
        env = {**bff_environment(8000, shop.url), "REDIS_URL": redis_url, "BFF_REDIS_PREFIX": prefix_a}
        done = run(python("-m", "app", "doctor"), cwd=tmp_path, env=env)
    assert f"keys start with {prefix_a!r}" in done.stdout, done.stdout
    assert "ok    1 session record(s), none under an older token encryption key" in done.stdout, done.stdout
