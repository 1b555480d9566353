"""The pipelined session-read connection: replies reach the right caller, and trouble becomes a clean error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from devkit.redis_server import start_redis
from tests.helpers import RedisConnections, supports

ECHO = "return {ARGV[1], redis.call('GET', KEYS[1])}"


@asynccontextmanager
async def script_runner(url: str, script: str = ECHO) -> AsyncIterator[Any]:
    """The pipelined runner as the app builds it: from REDIS_URL, through RedisConnections."""
    connections = RedisConnections(url, max_connections=2)
    try:
        yield connections.hot_script(script)
    finally:
        await connections.aclose()


async def test_concurrent_calls_each_get_their_own_reply(redis_url: str, redis_client: aioredis.Redis) -> None:
    await redis_client.set("fast:{k}", b"v")
    async with script_runner(redis_url) as runner:
        replies = await asyncio.gather(*(runner(keys=["fast:{k}"], args=[i]) for i in range(300)))
    assert replies == [[str(i).encode(), b"v"] for i in range(300)]


async def test_script_cache_flush_is_recovered(redis_url: str, redis_client: aioredis.Redis) -> None:
    async with script_runner(redis_url) as runner:
        assert (await runner(keys=["fast:none"], args=["a"]))[0] == b"a"
        await redis_client.script_flush()
        assert (await runner(keys=["fast:none"], args=["b"]))[0] == b"b"


async def test_script_errors_are_redis_errors(redis_url: str) -> None:
    async with script_runner(redis_url, "return redis.call('INCR', KEYS[1], 'too', 'many')") as runner:
        with pytest.raises(ResponseError):
            await runner(keys=["fast:x"], args=[])


async def test_database_number_in_the_url_is_selected(redis_url: str) -> None:
    other_db = redis_url.rsplit("/", 1)[0] + "/3"
    writer = aioredis.Redis.from_url(other_db)
    try:
        await writer.set("fast:db", b"three")
        async with script_runner(other_db) as runner:
            assert await runner(keys=["fast:db"], args=["x"]) == [b"x", b"three"]
    finally:
        await writer.aclose()


async def test_a_stuck_redis_fails_calls_then_recovers(redis_client: aioredis.Redis, redis_url: str) -> None:
    # The URL's socket_timeout is the runner's too: past it, a connection counts as stuck.
    async with script_runner(f"{redis_url}?socket_timeout=0.4") as runner:
        try:
            await runner(keys=["fast:k"], args=["warm"])
            # WRITE mode holds every script (ours too) but, unlike ALL, lets UNPAUSE through: Redis comes
            # back when we say so, not when the pause runs out (that is only a safety net).
            await redis_client.client_pause(1500, all=False)
            with pytest.raises(RedisConnectionError):
                await runner(keys=["fast:k"], args=["stuck"])
            await redis_client.client_unpause()
            assert (await runner(keys=["fast:k"], args=["back"]))[0] == b"back"
        finally:
            await redis_client.client_unpause()


async def test_a_dead_then_restarted_redis() -> None:
    server = start_redis()
    try:
        async with script_runner(server.url) as runner:
            assert (await runner(keys=["fast:k"], args=["up"]))[0] == b"up"
            server.stop()
            with pytest.raises(RedisConnectionError):
                await runner(keys=["fast:k"], args=["down"])
            server.start()
            assert (await runner(keys=["fast:k"], args=["again"]))[0] == b"again"
    finally:
        server.cleanup()


def test_only_standalone_urls_take_the_fast_path() -> None:
    assert supports("redis://127.0.0.1:6379/0") and not supports("rediss://h:6380")
    assert not supports("redis+cluster://h:7000,h:7001") and not supports("redis+sentinel://h:26379/m")
    assert not supports("unix:///tmp/redis.sock")
