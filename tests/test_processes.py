"""Real processes: BFF instances (`python -m app serve`) sharing one Redis and one Shopify stand-in.

The BFFs are child processes started with the Docker image's command; the stand-in runs in a thread of the test
process (cheap to start, and its knobs are plain HTTP). tests/test_deploy.py uses these helpers too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.redis_server import RedisProcess, free_port, start_redis
from mock_shopify.app import create_app as create_mock_app
from mock_shopify.config import MockConfig
from tests.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    LOGOUT_URL,
    SESSION_SECRET,
    STOREFRONT,
    ServerThread,
    authorize_at_shop,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# Settings a developer may have exported for `make dev`; children must see only the ones we give them.
INHERITED_SETTINGS = ("SHOPIFY_", "BFF_", "REDIS_URL", "MOCK_SHOPIFY_")
CSRF = {"X-CSRF": "1"}
CUSTOMER_QUERY = {"query": "query Me { customer { id emailAddress { emailAddress } } }"}
EMAIL = "grace.hopper@example.com"


# --- Processes ------------------------------------------------------------------------------------


@dataclass
class Child:
    """A server process of ours on a loopback port; its output goes to a log file quoted on failure."""

    name: str
    args: list[str]
    port: int
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Child:
        # The working directory is the test's own: a developer's `.env` in the checkout is never read.
        env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_SETTINGS)}
        env |= {"PYTHONPATH": str(ROOT), **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.args, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ok(self, path: str, timeout: float = 20.0) -> None:
        """Until GET `path` answers 200; fails early, with the log, if the process dies."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: GET {path} not 200 within {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; the exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Deployment:
    """One stand-in and the BFF processes registered with it."""

    shop: ServerThread
    bffs: list[Child]


class Launcher:
    """Starts what one test (or module) needs; the owning fixture's finalizer stops every piece of it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []
        self.shops: list[ServerThread] = []
        self.redis_servers: list[RedisProcess] = []

    def redis(self) -> RedisProcess:
        """A dedicated redis-server with an append-only file, so a stop and start keeps the sessions."""
        server = start_redis(persist=True)
        self.redis_servers.append(server)
        return server

    def shop(self, bff_ports: list[int]) -> ServerThread:
        """The stand-in, with a callback registered for each BFF port."""
        port = free_port()
        config = MockConfig(
            base_url=f"http://127.0.0.1:{port}",
            credentials=[(CLIENT_ID, CLIENT_SECRET)],
            redirect_uris=[f"http://127.0.0.1:{p}/auth/callback" for p in bff_ports],
            logout_uris=[LOGOUT_URL],
        )
        server = ServerThread(create_mock_app(config), port)
        self.shops.append(server)
        return server.start()

    def bff(self, port: int, shop_url: str, redis_url: str, **env: str) -> Child:
        """`python -m app serve`, the image's command, with settings from the environment only."""
        settings = {
            "SHOPIFY_SHOP_DOMAIN": shop_url,
            "SHOPIFY_CLIENT_ID": CLIENT_ID,
            "SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
            "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "BFF_ALLOWED_ORIGINS": STOREFRONT,
            "BFF_POST_LOGOUT_REDIRECT_URL": LOGOUT_URL,
            "BFF_SESSION_SECRET": SESSION_SECRET,
            "REDIS_URL": redis_url,
            "BFF_UPSTREAM_CONNECT_TIMEOUT": "1",
            "BFF_UPSTREAM_READ_TIMEOUT": "2",
            "BFF_WORKERS": "1",
            **env,
        }
        args = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
        child = Child(f"bff-{port}", args, port, self.workdir, settings)
        self.children.append(child)
        return child.start()

    def deployment(self, redis_url: str, *, bffs: int = 2, **bff_env: str) -> Deployment:
        """A stand-in and `bffs` BFF processes (started side by side); returns once all are ready."""
        ports = [free_port() for _ in range(bffs)]
        shop = self.shop(ports)
        processes = [self.bff(port, shop.url, redis_url, **bff_env) for port in ports]
        for bff in processes:
            bff.wait_ok("/healthz")
            bff.wait_ok("/readyz")
        return Deployment(shop, processes)

    def stop_all(self) -> None:
        for child in self.children:
            child.stop()
        for shop in self.shops:
            shop.stop()
        for server in self.redis_servers:
            server.cleanup()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


# --- HTTP, as a browser and as a test harness -----------------------------------------------------


@asynccontextmanager
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client. Cookies ignore ports, so a session from one BFF is sent to all of them."""
    async with httpx.AsyncClient(headers={"User-Agent": "browser"}, timeout=10) as client:
        yield client


async def login(client: httpx.AsyncClient, bff: Child, email: str = EMAIL) -> str:
    """The whole login round trip through `bff` over real HTTP; returns the session cookie."""
    started = await client.get(f"{bff.url}/auth/login")
    assert started.status_code == 302, started.text
    callback = await authorize_at_shop(started.headers["location"], email)
    assert callback.startswith(f"{bff.url}/auth/callback?"), callback
    done = await client.get(callback)
    assert done.status_code == 302, done.text
    return client.cookies["bff_session"]


async def gql(client: httpx.AsyncClient, bff: Child) -> httpx.Response:
    return await client.post(f"{bff.url}/graphql", json=CUSTOMER_QUERY, headers=CSRF)


async def knob(shop: ServerThread, name: str, **body: Any) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{shop.url}/_mock/{name}", json=body)).raise_for_status()


async def shop_stats(shop: ServerThread) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{shop.url}/_mock/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not true within {timeout}s"
        await asyncio.sleep(0.02)


def assert_store_down(response: httpx.Response) -> None:
    """503 with Retry-After and the stable code, and the session cookie left alone."""
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "session_store_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert "bff_session" not in response.headers.get("set-cookie", "")


# --- Tests ----------------------------------------------------------------------------------------


@dataclass
class Pair:
    """Two BFF processes, A and B, sharing the test Redis and one stand-in."""

    shop: ServerThread
    a: Child
    b: Child


@pytest.fixture(scope="module")
def pair_processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Pair]:
    # Started once per module: process start-up is most of these tests' time.
    launcher = Launcher(tmp_path_factory.mktemp("pair"))
    try:
        deployment = launcher.deployment(redis_url)
        yield Pair(deployment.shop, *deployment.bffs)
    finally:
        launcher.stop_all()


@pytest.fixture
async def pair(pair_processes: Pair) -> Pair:
    """The shared pair, its stand-in reset: no tokens, knobs or counters from an earlier test."""
    await knob(pair_processes.shop, "reset")
    return pair_processes


class StaleRedisConnections(AssertionError):
    """Requests failed after Redis came back: pooled connections to the old server were used without a retry."""


async def test_a_session_made_on_one_process_works_on_another(pair: Pair) -> None:
    a, b = pair.a, pair.b
    async with browser() as client:
        await login(client, a)
        session = (await client.get(f"{b.url}/auth/session")).json()
        assert session["authenticated"] is True
        assert session["customer"]["email"] == EMAIL
        on_b = await gql(client, b)
        assert on_b.status_code == 200, on_b.text
        assert on_b.json()["data"]["customer"]["emailAddress"]["emailAddress"] == EMAIL
        # Logging out on B ends the session on A too: nothing lives in one process's memory.
        out = await client.post(f"{b.url}/auth/logout", headers={**CSRF, "Accept": "application/json"})
        assert out.status_code == 200, out.text
        assert (await client.get(f"{a.url}/auth/session")).json() == {"authenticated": False}


async def test_concurrent_requests_on_two_processes_refresh_once(pair: Pair) -> None:
    await knob(pair.shop, "settings", access_token_ttl=1)
    async with browser() as client:
        await login(client, pair.a)
        await knob(pair.shop, "delay_token", count=1, seconds=0.3)  # widen the race window
        await asyncio.sleep(1.1)  # the access token is now expired
        responses = await asyncio.gather(*(gql(client, bff) for _ in range(25) for bff in (pair.a, pair.b)))
    assert [r.status_code for r in responses] == [200] * 50
    # Shopify rotates refresh tokens: a second refresh would have presented a dead one.
    assert (await shop_stats(pair.shop))["grants"]["refresh_token"] == 1


async def test_redis_outage_is_503_everywhere_and_keeps_the_session(launcher: Launcher) -> None:
    redis = launcher.redis()
    a, b = launcher.deployment(redis.url).bffs
    async with browser() as client:
        cookie = await login(client, a)
        # Traffic before the outage leaves several connections in each process's pool.
        warm = await asyncio.gather(*(gql(client, bff) for _ in range(10) for bff in (a, b)))
        assert {r.status_code for r in warm} == {200}

        redis.stop()
        for bff in (a, b):
            assert_store_down(await gql(client, bff))
            assert_store_down(await client.get(f"{bff.url}/auth/session"))
            ready = await client.get(f"{bff.url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"] != "ok"

        redis.start()  # same port, same append-only file; neither BFF process is restarted
        assert client.cookies["bff_session"] == cookie
        # The first calls after the restart: A's login rate limiter and both session stores hold connections
        # to the old server. Each may fail once (503, never a logout); then every call must succeed.
        first = [await client.get(f"{bff.url}/auth/login") for bff in (a, b)]
        first += await asyncio.gather(*(gql(client, bff) for _ in range(10) for bff in (a, b)))
        assert {r.status_code for r in first} <= {200, 302, 503}
        for bff in (a, b):
            assert (await gql(client, bff)).status_code == 200
            assert (await client.get(f"{bff.url}/auth/session")).json()["authenticated"] is True
            assert (await client.get(f"{bff.url}/readyz")).status_code == 200
            assert (await client.get(f"{bff.url}/auth/login")).status_code == 302
        failed = [f"{r.request.method} {r.request.url.path}" for r in first if r.status_code == 503]
        if failed:
            raise StaleRedisConnections(f"503 right after the restart: {failed}")


async def test_shopify_errors_and_timeouts_keep_the_session(pair: Pair) -> None:
    async with browser() as client:
        await login(client, pair.a)
        await knob(pair.shop, "fail_graphql", count=1, status=503)
        failed = await gql(client, pair.a)
        assert failed.status_code == 503  # Shopify's own status, passed through
        await knob(pair.shop, "delay_graphql", count=1, seconds=2.5)  # past BFF_UPSTREAM_READ_TIMEOUT=2
        slow = await gql(client, pair.b)
        assert slow.status_code == 504
        assert slow.json()["error"] == "upstream_timeout"
        for bff in (pair.a, pair.b):
            assert (await gql(client, bff)).status_code == 200


async def test_shopify_outage_is_502_and_keeps_the_session(launcher: Launcher, redis_url: str) -> None:
    deployment = launcher.deployment(redis_url, bffs=1)
    (bff,) = deployment.bffs
    async with browser() as client:
        await login(client, bff)
        # Stopped for good: a restarted stand-in would have forgotten the tokens it issued.
        deployment.shop.stop()
        down = await gql(client, bff)
        assert down.status_code == 502  # connection refused
        assert down.json()["error"] == "upstream_unavailable"
        assert int(down.headers["retry-after"]) > 0
        assert "bff_session" not in down.headers.get("set-cookie", "")
        assert (await client.get(f"{bff.url}/auth/session")).json()["authenticated"] is True
