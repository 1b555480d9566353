"""What the multi-shop tests share (BFF_SHOPS_FILE, issue 17): two shops with apps of their own, each one's
stand-in, the shops file written from tables, the BFF of a file in this process, and a relay that makes a
stand-in hang.

Every shop has its own stand-in instance, registered with its own client id, so a request that reached the
wrong shop shows in which stand-in it went to and with which client id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from app.cookies import CookieJar as CookieJar
from app.shops import Shops as Shops
from app.shops import load_shops as load_shops
from app.store.sessions import session_key as session_key
from devkit.redis_server import free_port as free_port
from mock_shopify.app import create_app as create_mock_app
from mock_shopify.config import MockConfig
from tests.helpers import SESSION_SECRET, ServerThread, authorize_at_shop, create_app

TableValue = str | bool | list[str]
Table = Mapping[str, TableValue]


@dataclass(frozen=True)
class ShopSpec:
    """One shop of the test deployment: its id in the file, where the BFF serves it, its app at Shopify."""

    id: str
    public_url: str
    client_id: str
    client_secret: str
    storefront: str  # the storefront's origin: allowed origin and where logout returns
    numeric_id: str  # the stand-in's shop id, in its authorize URL's path
    webhook_secret: str

    @property
    def callback(self) -> str:
        return f"{self.public_url}/auth/callback"

    @property
    def logout_url(self) -> str:
        return f"{self.storefront}/"

    @property
    def host(self) -> str:
        return urlsplit(self.public_url).netloc

    @property
    def path(self) -> str:
        return urlsplit(self.public_url).path


# alpha at the root of its own host, beta under a path prefix of a shared one: the two ways a shop is served.
ALPHA = ShopSpec(
    id="alpha",
    public_url="https://alpha.test",
    client_id="alpha-client-id",
    client_secret="alpha-client-secret-5e1f0c",
    storefront="https://alpha-store.test",
    numeric_id="1111111111",
    webhook_secret="whsec-alpha-3Kq9Vz1Lm7Xp4Rt0Nb6Wc",
)
BETA = ShopSpec(
    id="beta",
    public_url="https://shops.test/beta",
    client_id="beta-client-id",
    client_secret="beta-client-secret-9a7d2b",
    storefront="https://beta-store.test",
    numeric_id="2222222222",
    webhook_secret="whsec-beta-8Hs2Jd5Fk1Gl9Qw3Ez7Ry",
)
SHOPS = (ALPHA, BETA)


def stand_in(spec: ShopSpec, *, base_url: str | None = None, port: int | None = None) -> ServerThread:
    """`spec`'s stand-in, not yet started; `base_url` when it is reached through something else (a relay)."""
    port = port or free_port()
    config = MockConfig(
        base_url=base_url or f"http://127.0.0.1:{port}",
        shop_id=spec.numeric_id,
        credentials=[(spec.client_id, spec.client_secret)],
        redirect_uris=[spec.callback],
        logout_uris=[spec.logout_url],
    )
    return ServerThread(create_mock_app(config), port)


@contextlib.contextmanager
def every_stand_in() -> Iterator[dict[str, ServerThread]]:
    """Every shop's stand-in, started, by shop id; stopped on exit."""
    servers = {spec.id: stand_in(spec).start() for spec in SHOPS}
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def shop_table(spec: ShopSpec, shop_url: str, **extra: TableValue) -> dict[str, TableValue]:
    """`spec`'s `[shops.<id>]` table, its Shopify at `shop_url`; limits high (every test comes from one address)."""
    table: dict[str, TableValue] = {
        "shop_domain": shop_url,
        "client_id": spec.client_id,
        "client_secret": spec.client_secret,
        "public_url": spec.public_url,
        "allowed_origins": [spec.storefront],
        "post_logout_redirect_url": spec.logout_url,
        "webhook_secret": spec.webhook_secret,
        "rate_limit_login": "100000/minute",
        "rate_limit_graphql": "100000/minute",
        "rate_limit_graphql_customer": "100000/minute",
    }
    table.update(extra)
    return table


def toml_of(tables: Mapping[str, Table]) -> str:
    """A shops file: one `[shops.<id>]` table each. JSON's string escapes are TOML's basic strings'."""
    lines: list[str] = []
    for shop_id, table in tables.items():
        lines.append(f"[shops.{json.dumps(shop_id)}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


def write_shops_file(directory: Path, tables: Mapping[str, Table], name: str = "shops.toml") -> Path:
    path = directory / name
    path.write_text(toml_of(tables))
    return path


def deployment_settings(redis_url: str, **overrides: object) -> dict[str, object]:
    """The deployment's settings (what the environment holds beside BFF_SHOPS_FILE), as load_shops takes them;
    a Redis prefix of its own, so a test's keys are the only ones under it."""
    values: dict[str, object] = {
        "bff_session_secret": SESSION_SECRET,
        "redis_url": redis_url,
        "bff_redis_prefix": f"t{secrets.token_hex(4)}:",
        "bff_upstream_connect_timeout": 1.0,
        "bff_upstream_read_timeout": 3.0,
        "bff_metrics_listener": "off",
    }
    values.update(overrides)
    return values


class ShopsBFF:
    """A multi-shop BFF running in this process: `client(url)` is a cookie-keeping browser at one address."""

    def __init__(self, app: ASGIApp, shops: Shops) -> None:
        self.app = app
        self.shops = shops
        self._transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))

    def client(self, base_url: str, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport, base_url=base_url, headers={"User-Agent": "browser", **headers}
        )

    def jar(self, spec: ShopSpec) -> CookieJar:
        """The cookie jar of `spec`'s shop, as its keys make it: what someone holding those keys could sign."""
        settings = self.shops.by_id(spec.id)
        return CookieJar.from_settings(settings)


@asynccontextmanager
async def running_shops(shops: Shops, *, clock: Callable[[], float] = time.time) -> AsyncIterator[ShopsBFF]:
    """The BFF of `shops`, under its lifespan."""
    async with LifespanManager(create_app(shops, clock=clock)) as manager:
        yield ShopsBFF(manager.app, shops)


async def sign_in(client: httpx.AsyncClient, spec: ShopSpec, email: str = "ada.lovelace@example.com") -> None:
    """A whole login at `spec`'s shop through `client` (based at its public URL): the session cookie is kept."""
    started = await client.get(f"{spec.public_url}/auth/login")
    assert started.status_code == 302, started.text
    callback = await authorize_at_shop(started.headers["location"], email)
    assert callback.startswith(f"{spec.callback}?"), callback
    done = await client.get(callback)
    assert done.status_code == 302, done.text


class HangingRelay:
    """A TCP relay in front of a stand-in that can stop answering, as a hung shop does: after `hang()` every
    connection, open (pooled) or new, stays open and nothing more passes either way; `recover()` drops them
    all, so whatever waited on them fails at once. Runs in the test's event loop."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._hung: asyncio.Event | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    def hang(self) -> None:
        self._hung = asyncio.Event()

    def recover(self) -> None:
        if self._hung is not None:
            self._hung.set()
            self._hung = None

    async def stop(self) -> None:
        self.recover()
        for writer in list(self._clients):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            if self._hung is not None:
                await self._hung.wait()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                hung = self._hung
                if hung is not None:
                    await hung.wait()  # nothing passes while hung; on recovery the connection is dropped
                    break
                sink.write(data)
                await sink.drain()
        sink.close()
