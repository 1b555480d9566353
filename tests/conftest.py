"""Fixtures: a real Redis, the Shopify stand-in over real HTTP, and the BFF under its lifespan."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from asgi_lifespan import LifespanManager

from app.config import Settings, load_settings
from app.main import create_app
from devkit.redis_server import INSTALL_HINT, RedisProcess, env_redis_url, free_port, start_redis, wait_port
from mock_shopify.app import create_app as create_mock_app
from mock_shopify.config import MockConfig

BFF_URL = "http://127.0.0.1:8000"
STOREFRONT = "http://localhost:3000"
LOGOUT_URL = f"{STOREFRONT}/goodbye"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-7d0c1e"
SESSION_SECRET = "k3Jx9-tq0Zp4-0a5f2c7e9b1d4f6a8c0e2b4d6f8a0c2e7Lw"


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


class ServerThread:
    """A uvicorn server on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Shop:
    """The running stand-in and a client for its test knobs."""

    url: str
    http: httpx.AsyncClient

    async def knob(self, name: str, **body: Any) -> dict[str, Any]:
        response = await self.http.post(f"/_mock/{name}", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/_mock/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


@pytest.fixture(scope="session")
def shop_server() -> Iterator[ServerThread]:
    port = free_port()
    config = MockConfig(
        base_url=f"http://127.0.0.1:{port}",
        credentials=[(CLIENT_ID, CLIENT_SECRET)],
        redirect_uris=[f"{BFF_URL}/auth/callback"],
        logout_uris=[LOGOUT_URL, f"{STOREFRONT}/"],
    )
    server = ServerThread(create_mock_app(config), port).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def shop(shop_server: ServerThread) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=shop_server.url, headers={"User-Agent": "tests"}) as http:
        await http.post("/_mock/reset")
        yield Shop(shop_server.url, http)


# --- The BFF --------------------------------------------------------------------------------------


def make_settings(shop_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "shopify_shop_domain": shop_url,
        "shopify_client_id": CLIENT_ID,
        "shopify_client_secret": CLIENT_SECRET,
        "bff_public_url": BFF_URL,
        "bff_allowed_origins": STOREFRONT,
        "bff_post_logout_redirect_url": LOGOUT_URL,
        "bff_session_secret": SESSION_SECRET,
        "redis_url": redis_url,
        "bff_upstream_read_timeout": 3.0,
        "bff_upstream_connect_timeout": 1.0,
        # Every test comes from 127.0.0.1; the rate-limit tests set their own low limits.
        "bff_rate_limit_login": "100000/minute",
        "bff_rate_limit_graphql": "100000/minute",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(shop: Shop, redis_url: str) -> Settings:
    return make_settings(shop.url, redis_url)


@asynccontextmanager
async def running_bff(settings: Settings, *, client_ip: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """One BFF, in this process under its lifespan; the client keeps cookies like a browser would."""
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BFF_URL) as client:
            yield client


@pytest.fixture
async def bff(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_bff(settings) as client:
        yield client


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def start_login(bff: httpx.AsyncClient, **params: str) -> str:
    """GET /auth/login; returns the authorize URL it redirects to."""
    response = await bff.get("/auth/login", params=params)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def authorize_at_shop(authorize_url: str, email: str = "ada.lovelace@example.com") -> str:
    """Sign in on the stand-in's login page as a browser would; returns the callback URL."""
    async with httpx.AsyncClient(headers={"User-Agent": "browser"}) as browser:
        page = await browser.get(authorize_url)
        assert page.status_code == 200, page.text
        form = {**query_of(authorize_url), "email": email}
        done = await browser.post(authorize_url.split("?")[0], data=form)
        assert done.status_code == 302, done.text
        return done.headers["location"]


async def login(bff: httpx.AsyncClient, email: str = "ada.lovelace@example.com", **params: str) -> httpx.Response:
    """The whole login round trip; returns the callback's response (a redirect with the cookie)."""
    callback_url = await authorize_at_shop(await start_login(bff, **params), email)
    assert callback_url.startswith(f"{BFF_URL}/auth/callback?"), callback_url
    response = await bff.get(callback_url.removeprefix(BFF_URL))
    assert response.status_code == 302, response.text
    return response
