"""REDIS_URL's options reach every Redis path, or stop startup: the hot path's pipelined connection and
redis-py read and write the same database as the same user, and /readyz checks both."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from devkit.redis_server import RedisProcess, start_redis
from tests.helpers import RedisConnections, Shop, gql, login, make_settings, running_bff

PASSWORD = "s3cret-pw"


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A redis-server for one test, so its keys, clients and settings are the test's alone."""
    server = start_redis()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def admin(own_redis: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def password_redis(own_redis: RedisProcess, admin: aioredis.Redis) -> RedisProcess:
    await admin.config_set("requirepass", PASSWORD)  # the admin's connection stays authenticated
    return own_redis


def base(server: RedisProcess) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


async def test_a_db_option_is_the_database_of_every_path(shop: Shop, own_redis: RedisProcess) -> None:
    async with running_bff(make_settings(shop.url, f"{base(own_redis)}?db=8")) as client:
        await login(client)
        response = await gql(client)
        assert response.status_code == 200, response.text
    for db, expected in ((8, 1), (0, 0)):
        reader = aioredis.Redis.from_url(f"{base(own_redis)[:-1]}{db}")
        try:
            assert len(await reader.keys("bff:session:*")) == expected, f"db {db}"
        finally:
            await reader.aclose()


async def test_a_password_option_authenticates_every_path(shop: Shop, password_redis: RedisProcess) -> None:
    async with running_bff(make_settings(shop.url, f"{base(password_redis)}?password={PASSWORD}")) as client:
        await login(client)
        response = await gql(client)
        assert response.status_code == 200, response.text
        assert (await client.get("/readyz")).status_code == 200


async def test_a_wrong_password_is_an_outage_not_a_500(shop: Shop, password_redis: RedisProcess) -> None:
    good = make_settings(shop.url, f"{base(password_redis)}?password={PASSWORD}")
    wrong = make_settings(shop.url, f"{base(password_redis)}?password=not-it")
    logs = io.StringIO()
    async with running_bff(good) as first, running_bff(wrong, log_stream=logs) as second:
        await login(first)
        second.cookies = first.cookies  # a session Redis holds, presented to a BFF with the wrong password
        response = await gql(second)
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "session_store_unavailable"
        ready = await second.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] == "session_store_unavailable"
    assert "check REDIS_URL" in logs.getvalue()


async def test_readyz_round_trips_on_the_hot_path_connection(
    shop: Shop, own_redis: RedisProcess, admin: aioredis.Redis
) -> None:
    async with running_bff(make_settings(shop.url, base(own_redis))) as client:
        await login(client)  # redis-py's pool now holds a connection; the hot path has none yet
        # No new connection is let in: redis-py's pooled one still works, the hot path cannot connect.
        await admin.config_set("maxclients", len(await admin.client_list()))
        try:
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["redis"] == "session_store_unavailable"
            assert (await gql(client)).status_code == 503
        finally:
            await admin.config_set("maxclients", 10_000)
        assert (await client.get("/readyz")).status_code == 200
        assert (await gql(client)).status_code == 200


@pytest.mark.parametrize("cache", ["off", "on"])
async def test_client_name_names_every_connection(
    shop: Shop, own_redis: RedisProcess, admin: aioredis.Redis, cache: str
) -> None:
    url = f"{base(own_redis)}?client_name=bff-test&socket_timeout=3&socket_connect_timeout=1"
    # With the session cache on, its two connections (invalidations, tracking) are named too.
    async with running_bff(make_settings(shop.url, url, bff_session_cache=cache)) as client:
        await login(client)
        assert (await gql(client)).status_code == 200
        me = await admin.client_id()
        names = {c["name"] for c in await admin.client_list() if int(c["id"]) != me}
    assert names == {"bff-test"}


async def test_an_unsupported_option_stops_startup(shop: Shop, own_redis: RedisProcess) -> None:
    with pytest.raises(ValueError, match=r"REDIS_URL.*health_check_interval"):
        async with running_bff(make_settings(shop.url, f"{base(own_redis)}?health_check_interval=5")):
            pass


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "ssl_cert_reqs"),  # TLS is rediss://
        ("redis://127.0.0.1:6379/0?max_connections=5", "BFF_REDIS_MAX_CONNECTIONS"),
        ("redis://127.0.0.1:6379/0?protocol=3", "protocol"),
        ("redis://user@127.0.0.1:6379/0", "no password"),
        ("redis://127.0.0.1:6379/0?db=eight", "db"),
        ("unix:///run/redis.sock?dbb=2", "dbb"),
        ("rediss://127.0.0.1:6380/0?ssl_verify=no", "ssl_verify"),
        ("redis+sentinel://127.0.0.1:26379/main?password=x", "remove password$"),
        ("redis+cluster://127.0.0.1:7000?db=1", "remove db$"),
    ],
)
def test_options_no_path_would_honour_are_refused(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=rf"REDIS_URL.*{named}"):
        RedisConnections(url, max_connections=2)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pw@127.0.0.1:6379/2?client_name=bff&socket_timeout=1.5",
        "redis://127.0.0.1:6379?db=3&username=bff&password=pw",
        "unix:///run/redis.sock?db=2&health_check_interval=5",
        "rediss://127.0.0.1:6380/0?ssl_cert_reqs=none&health_check_interval=5",
    ],
)
async def test_options_every_path_honours_are_taken(url: str) -> None:
    connections = RedisConnections(url, max_connections=2)  # no I/O until the first command
    await connections.aclose()
