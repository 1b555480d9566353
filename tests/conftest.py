"""Fixtures: a real Redis, the Shopify stand-in over real HTTP, the BFF under its lifespan, child processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from devkit.redis_server import INSTALL_HINT, RedisProcess, env_redis_url, free_port, start_redis
from mock_shopify.app import create_app as create_mock_app
from tests.helpers import (
    BFF_URL,
    LOGOUT_URL,
    STOREFRONT,
    Launcher,
    ServerThread,
    Settings,
    Shop,
    make_settings,
    running_bff,
    shop_at,
    shop_config,
)

# --- Redis ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess | None]:
    """Our own throwaway redis-server, unless REDIS_URL points at one (then None)."""
    if env_redis_url():
        yield None
        return
    try:
        server = start_redis()
    except RuntimeError:
        pytest.exit(INSTALL_HINT, returncode=3)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisProcess | None) -> str:
    return redis_server.url if redis_server else str(env_redis_url())


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


# --- The Shopify stand-in -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shop_server() -> Iterator[ServerThread]:
    port = free_port()
    config = shop_config(port, redirect_uris=[f"{BFF_URL}/auth/callback"], logout_uris=[f"{STOREFRONT}/", LOGOUT_URL])
    server = ServerThread(create_mock_app(config), port).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def shop(shop_server: ServerThread) -> AsyncIterator[Shop]:
    """The stand-in's knobs, reset first: no tokens, carts, knobs or counters from an earlier test."""
    async with shop_at(shop_server.url) as knobs:
        await knobs.knob("reset")
        await knobs.knob("storefront/reset")
        yield knobs


# --- The BFF --------------------------------------------------------------------------------------


@pytest.fixture
def settings(shop: Shop, redis_url: str) -> Settings:
    return make_settings(shop.url, redis_url)


@pytest.fixture
async def bff(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_bff(settings) as client:
        yield client


# --- Child processes ------------------------------------------------------------------------------


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()
