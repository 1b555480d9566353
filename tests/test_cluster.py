"""The whole BFF on a real three-node Redis Cluster: every script and multi-key call stays in one slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from devkit.redis_server import RedisCluster, start_cluster
from tests.helpers import CSRF, Clock, Shop, gql, login_with_expired_token, make_settings, running_bff

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    try:
        started = start_cluster()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        started.cleanup()


@pytest.fixture
async def cluster_bff(shop: Shop, cluster: RedisCluster) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(shop.url, cluster.url, bff_rate_limit_graphql="1000/second")
    async with running_bff(settings) as client:
        yield client


async def test_login_proxy_refresh_logout_on_a_cluster(
    cluster_bff: httpx.AsyncClient, shop: Shop, cluster: RedisCluster
) -> None:
    await login_with_expired_token(cluster_bff, shop)
    assert (await cluster_bff.get("/auth/session")).json()["authenticated"] is True
    responses = await asyncio.gather(*(gql(cluster_bff) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
    assert (await shop.stats())["grants"]["refresh_token"] == 1
    assert (await cluster_bff.get("/readyz")).status_code == 200

    # Keys really are spread over the nodes, and each session's keys share one slot.
    client = AsyncRedisCluster.from_url(cluster.url.replace("redis+cluster://", "redis://").split(",")[0])
    try:
        keys = [k async for k in client.scan_iter(match="bff:*")]
        assert any(k.startswith(b"bff:session:") for k in keys)
        sid = cluster_bff.cookies["bff_session"].rsplit(".", 1)[0]
        slots = {client.keyslot(f"bff:{kind}:{{{sid}}}") for kind in ("session", "lock", "refresh", "rl:graphql")}
        assert len(slots) == 1
    finally:
        await client.aclose()

    out = await cluster_bff.post("/auth/logout", params={"everywhere": "true"}, headers=CSRF)
    assert out.status_code == 303
    assert (await cluster_bff.get("/auth/session")).json() == {"authenticated": False}


async def test_rate_limits_work_on_a_cluster(shop: Shop, cluster: RedisCluster) -> None:
    settings = make_settings(shop.url, cluster.url, bff_rate_limit_login="2/minute")
    async with running_bff(settings, client_ip="192.0.2.77", clock=Clock()) as client:
        codes = [(await client.get("/auth/login")).status_code for _ in range(3)]
    assert codes == [302, 302, 429]
