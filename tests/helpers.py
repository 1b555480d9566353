"""What the tests share: the test deployment's names and secrets, the app's internals they reach past HTTP,
browser-like login round trips, a client for the stand-in's knobs, and one runner for child processes.

Fixtures live in conftest.py and build on these; test modules import from here, never from conftest.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO
from urllib.parse import parse_qsl, urlsplit

import httpx
import uvicorn
import yaml
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

# The app's internals the tests use beyond HTTP, all in one place to remap when app/ moves.
from app.config import ConfigError as ConfigError
from app.config import Settings as Settings
from app.config import load_settings as load_settings
from app.logs import configure_logging as configure_logging
from app.main import create_app as create_app
from app.store.connections import RedisConnections as RedisConnections
from app.store.pipelined import ScriptRunner as ScriptRunner
from app.store.pipelined import supports as supports
from app.store.rate_limits import RateLimits as RateLimits
from app.store.sessions import INDEX_PRUNE_AT as INDEX_PRUNE_AT
from devkit.redis_server import RedisProcess, free_port, start_redis, wait_port
from mock_shopify.app import create_app as create_mock_app
from mock_shopify.config import DEFAULT_STOREFRONT_PRIVATE_TOKEN, DEFAULT_STOREFRONT_PUBLIC_TOKEN, MockConfig

ROOT = Path(__file__).resolve().parent.parent
BFF_URL = "http://127.0.0.1:8000"
STOREFRONT = "http://localhost:3000"
LOGOUT_URL = f"{STOREFRONT}/goodbye"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret-7d0c1e"
SESSION_SECRET = "k3Jx9-tq0Zp4-0a5f2c7e9b1d4f6a8c0e2b4d6f8a0c2e7Lw"
EMAIL = "ada.lovelace@example.com"
CSRF = {"X-CSRF": "1"}
CUSTOMER_QUERY = {"query": "query Me { customer { id firstName emailAddress { emailAddress } } }"}
STOREFRONT_TOKEN = DEFAULT_STOREFRONT_PRIVATE_TOKEN  # the stand-in's private Storefront token


def load_yaml(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


# --- The BFF in this process ------------------------------------------------------------------------


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
        "bff_rate_limit_graphql_customer": "100000/minute",
        # Many BFFs run in this process; the metrics tests ask for the public listener themselves.
        "bff_metrics_listener": "off",
    }
    values.update(overrides)
    return load_settings(**values)


class Clock:
    """A clock the test moves by hand, for the BFF's `clock`: it starts at the next whole minute, so a
    rate-limit window (per second or per minute) only ends when the test says so, and nothing it stamps
    looks older than what real-clock instances of the suite wrote before (a logout-everywhere epoch)."""

    def __init__(self) -> None:
        self.now = float((int(time.time()) // 60 + 1) * 60)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def running_bff(
    settings: Settings,
    *,
    client_ip: str = "127.0.0.1",
    log_stream: TextIO | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[httpx.AsyncClient]:
    """One BFF, in this process under its lifespan; the client keeps cookies like a browser would.

    `log_stream`: the BFF's JSON logs at info level go there (create_app configures logging, so this comes after).
    """
    app = create_app(settings, clock=clock)
    if log_stream is not None:
        configure_logging("info", "json", stream=log_stream)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BFF_URL) as client:
            yield client


class ServerThread:
    """A uvicorn server on a loopback port, in a thread of this process; `lifespan` runs the app's lifespan."""

    def __init__(self, app: ASGIApp, port: int | None = None, *, lifespan: bool = False) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on" if lifespan else "off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self.thread.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def shop_config(port: int, *, redirect_uris: Sequence[str], logout_uris: Sequence[str]) -> MockConfig:
    return MockConfig(
        base_url=f"http://127.0.0.1:{port}",
        credentials=[(CLIENT_ID, CLIENT_SECRET)],
        redirect_uris=list(redirect_uris),
        logout_uris=list(logout_uris),
    )


# --- The stand-in's knobs ---------------------------------------------------------------------------


class Shop:
    """The stand-in's test knobs (`POST /_mock/<name>`) and counters (`GET /_mock/stats`), through `http`."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @property
    def url(self) -> str:
        return str(self.http.base_url).rstrip("/")

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


@asynccontextmanager
async def shop_at(url: str) -> AsyncIterator[Shop]:
    async with httpx.AsyncClient(base_url=url, headers={"User-Agent": "tests"}) as http:
        yield Shop(http)


# --- HTTP, as a browser would ----------------------------------------------------------------------


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def redirect_query(response: httpx.Response) -> dict[str, str]:
    """The query string of the redirect `response` must be."""
    assert response.status_code == 302, response.text
    return query_of(response.headers["location"])


@asynccontextmanager
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client. Cookies ignore ports, so a session from one BFF is sent to all of them."""
    async with httpx.AsyncClient(headers={"User-Agent": "browser"}, timeout=10) as client:
        yield client


async def start_login(client: httpx.AsyncClient, *, at: str = "", **params: str) -> str:
    """GET /auth/login (on the BFF at `at`, else the client's own); returns the authorize URL it redirects to."""
    response = await client.get(f"{at}/auth/login", params=params)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    return location


async def authorize_at_shop(authorize_url: str, email: str = EMAIL) -> str:
    """Sign in on the stand-in's login page as a browser would; returns the callback URL."""
    async with httpx.AsyncClient(headers={"User-Agent": "browser"}) as shop_browser:
        page = await shop_browser.get(authorize_url)
        assert page.status_code == 200, page.text
        form = {**query_of(authorize_url), "email": email}
        done = await shop_browser.post(authorize_url.split("?")[0], data=form)
        assert done.status_code == 302, done.text
        location: str = done.headers["location"]
        return location


async def login(client: httpx.AsyncClient, email: str = EMAIL, *, at: str = "", **params: str) -> httpx.Response:
    """The whole login round trip; returns the callback's response (a redirect with the cookie)."""
    callback_url = await authorize_at_shop(await start_login(client, at=at, **params), email)
    assert callback_url.startswith(f"{at or BFF_URL}/auth/callback?"), callback_url
    response = await client.get(callback_url)
    assert response.status_code == 302, response.text
    return response


async def login_with_expired_token(
    client: httpx.AsyncClient, shop: Shop, email: str = EMAIL, *, at: str = ""
) -> httpx.Response:
    """Log in with an access token born expired, so the BFF's next call refreshes it first, at once.

    Tokens issued afterwards live an hour again: the refreshed one is healthy for the rest of the test.
    """
    await shop.knob("settings", access_token_ttl=0)
    try:
        return await login(client, email, at=at)
    finally:
        await shop.knob("settings", access_token_ttl=3600)


async def gql(
    client: httpx.AsyncClient,
    body: object = CUSTOMER_QUERY,
    *,
    at: str = "",
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST /graphql with the CSRF header (and `headers`), on the BFF at `at`, else the client's own."""
    return await client.post(f"{at}/graphql", json=body, headers={**CSRF, **(headers or {})})


_CART_CREATE = """
mutation Create($lines: [CartLineInput!]) {
  cartCreate(input: {lines: $lines}) { cart { id } userErrors { field code message } }
}
"""


async def create_cart(shop_url: str, *, product: int = 0, quantity: int = 1) -> str:
    """A cart made as a storefront page makes one: the public token, straight to the Storefront API; its id."""
    headers = {"X-Shopify-Storefront-Access-Token": DEFAULT_STOREFRONT_PUBLIC_TOKEN, "User-Agent": "browser"}
    url = f"{shop_url}/api/2026-10/graphql.json"
    async with httpx.AsyncClient(headers=headers) as client:
        listed = await client.post(
            url, json={"query": "{ products(first: 10) { nodes { variants(first: 1) { nodes { id } } } } }"}
        )
        variant = listed.json()["data"]["products"]["nodes"][product]["variants"]["nodes"][0]["id"]
        lines = [{"merchandiseId": variant, "quantity": quantity}]
        created = await client.post(url, json={"query": _CART_CREATE, "variables": {"lines": lines}})
        cart_id: str = created.json()["data"]["cartCreate"]["cart"]["id"]
        return cart_id


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, what: str = "check") -> None:
    """Poll `check` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not true within {timeout}s"
        await asyncio.sleep(0.02)


# --- Child processes --------------------------------------------------------------------------------

# Settings a developer may have exported for `make dev`; children must see only the ones we give them.
INHERITED_SETTINGS = ("SHOPIFY_", "BFF_", "REDIS_URL", "MOCK_SHOPIFY_")


def child_env(env: Mapping[str, str] | None = None, *, inherit: bool = True) -> dict[str, str]:
    """Our environment without app settings, this checkout first on the path, then `env`.

    `inherit=False`: exactly `env` (plus PATH), for tools that must see nothing of ours.
    """
    if not inherit:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_SETTINGS)}
    return {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}


def run(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end, its output captured as text. `cwd` is the test's own (no checkout `.env`)."""
    return subprocess.run(  # noqa: S603 - our own interpreter, tools and arguments
        list(args),
        cwd=cwd,
        env=child_env(env, inherit=inherit_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def python(*args: str) -> list[str]:
    """A command line for this interpreter, e.g. python("-m", "app", "serve")."""
    return [sys.executable, *args]


class Process:
    """A long-running child process of ours, listening on `port`: its output goes to a log file quoted on
    failure, and it is stopped by pid (SIGTERM, then SIGKILL after a timeout). Also a context manager."""

    def __init__(
        self, name: str, args: Sequence[str], *, port: int, workdir: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.args = list(args)
        self.port = port
        self.workdir = workdir
        self.env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None, f"{self.name} was not started"
        return self._proc

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Self:
        # The working directory is the test's own: a developer's `.env` in the checkout is never read.
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.args, cwd=self.workdir, env=child_env(self.env), stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ok(self, path: str, timeout: float = 20.0) -> None:
        """Until GET `path` answers 200; fails early, with the output, if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: GET {path} not 200 within {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    async def wait_for_output(self, text: str, count: int = 1, timeout: float = 5.0) -> None:
        async def logged() -> bool:
            return self.output().count(text) >= count

        await eventually(logged, timeout=timeout, what=f"{text!r} logged {count}x by {self.name}")

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    async def exit_code(self, timeout: float) -> int:
        """Wait (off the event loop) for the process to exit on its own; its exit code."""
        return await asyncio.to_thread(self.proc.wait, timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (negative: killed by that signal)."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def bff_command(port: int) -> list[str]:
    """`python -m app serve`, the image's command."""
    return python("-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port))


def bff_environment(port: int, shop_url: str) -> dict[str, str]:
    """The settings of a BFF on 127.0.0.1:`port` registered with the stand-in at `shop_url`, but REDIS_URL."""
    return {
        "SHOPIFY_SHOP_DOMAIN": shop_url,
        "SHOPIFY_CLIENT_ID": CLIENT_ID,
        "SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BFF_ALLOWED_ORIGINS": STOREFRONT,
        "BFF_POST_LOGOUT_REDIRECT_URL": LOGOUT_URL,
        "BFF_SESSION_SECRET": SESSION_SECRET,
        "BFF_UPSTREAM_CONNECT_TIMEOUT": "1",
        "BFF_UPSTREAM_READ_TIMEOUT": "2",
        "BFF_WORKERS": "1",
    }


@dataclass
class Deployment:
    """One stand-in and the BFF processes registered with it."""

    shop: ServerThread
    bffs: list[Process]


class Launcher:
    """Starts what one test (or module) needs; the owning fixture's finalizer stops every piece of it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Process] = []
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
        redirect_uris = [f"http://127.0.0.1:{p}/auth/callback" for p in bff_ports]
        config = shop_config(port, redirect_uris=redirect_uris, logout_uris=[LOGOUT_URL])
        server = ServerThread(create_mock_app(config), port)
        self.shops.append(server)
        return server.start()

    def bff(self, port: int, shop_url: str, redis_url: str, **env: str) -> Process:
        """`python -m app serve`, the image's command, with settings from the environment only."""
        settings = {**bff_environment(port, shop_url), "REDIS_URL": redis_url, **env}
        child = Process(f"bff-{port}", bff_command(port), port=port, workdir=self.workdir, env=settings)
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
