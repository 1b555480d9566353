"""The BFF behind Redis Sentinel: it finds the primary through the Sentinel and works as usual."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from devkit.redis_server import RedisSentinel, start_sentinel
from tests.helpers import Shop, gql, login_with_expired_token, make_settings, running_bff

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentinel() -> Iterator[RedisSentinel]:
    try:
        started = start_sentinel()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield started
    finally:
        started.cleanup()


async def test_login_proxy_refresh_and_limits_through_sentinel(shop: Shop, sentinel: RedisSentinel) -> None:
    settings = make_settings(shop.url, sentinel.url, bff_rate_limit_login="3/minute")
    async with running_bff(settings, client_ip="192.0.2.88") as client:
        await login_with_expired_token(client, shop)
        assert (await client.get("/auth/session")).json()["authenticated"] is True
        responses = await asyncio.gather(*(gql(client) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10
        assert (await shop.stats())["grants"]["refresh_token"] == 1
        assert (await client.get("/readyz")).status_code == 200
        codes = [(await client.get("/auth/login")).status_code for _ in range(3)]
        assert codes == [302, 302, 429]  # the login above used the first of three
