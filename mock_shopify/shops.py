"""Several shops in one process: one stand-in app per shop, picked by the local port a connection came in on.

A shop's identity for the BFF is its origin, so each shop listens on a port of its own; one uvicorn server (one
event loop) serves all the ports, and `ShopsApp` hands each request to the app of the port it arrived on.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from joserfc.jwk import RSAKey
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mock_shopify.access_log import AccessLog
from mock_shopify.app import create_app
from mock_shopify.config import MockConfig
from mock_shopify.state import Store


@dataclass(frozen=True, kw_only=True)
class ShopListing:
    """One shop of a multi-shop stand-in: its name (for logs), the port it listens on, and its config."""

    name: str
    port: int
    config: MockConfig


@dataclass(frozen=True, kw_only=True)
class ServedShop:
    """A shop as it is being served: where it listens and its state (the same `Store` as `app.state.store`)."""

    name: str
    port: int
    store: Store

    @property
    def url(self) -> str:
        """The shop's origin: its `base_url`, which the BFF takes as its shop domain."""
        return self.store.config.base_url


class ShopsApp:
    """Pure ASGI: the app of the shop listening on the connection's local port; any other port gets a 404."""

    def __init__(self, apps: Mapping[int, ASGIApp], shops: Mapping[str, ServedShop]) -> None:
        self.apps = dict(apps)
        self.shops = dict(shops)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        # scope["server"] is the socket's own address (getsockname), not the Host header a client may spoof.
        server = scope.get("server")
        app = self.apps.get(server[1]) if server else None
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await JSONResponse({"errors": "Not Found"}, status_code=404)(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008})


async def _lifespan(receive: Receive, send: Send) -> None:
    # The shops' apps hold no resources, so startup and shutdown have nothing to do but say so.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_shops_app(
    listings: Sequence[ShopListing], *, signing_key: RSAKey | None = None, access_log: bool = False
) -> ShopsApp:
    """One fresh stand-in per listing, each with its own state and knobs, behind one dispatcher.

    Each shop generates its own signing key unless `signing_key` is given (tests share one, for speed).
    `access_log`: a line per request, starting with the shop's name.
    """
    ports = [listing.port for listing in listings]
    names = [listing.name for listing in listings]
    if len(set(ports)) != len(ports) or len(set(names)) != len(names):
        raise ValueError("every shop needs a name and a port of its own")
    apps: dict[int, ASGIApp] = {}
    shops: dict[str, ServedShop] = {}
    for listing in listings:
        app = create_app(listing.config, signing_key=signing_key)
        apps[listing.port] = AccessLog(app, shop=listing.name) if access_log else app
        shops[listing.name] = ServedShop(name=listing.name, port=listing.port, store=app.state.store)
    return ShopsApp(apps, shops)


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening (port 0: a free one); OSError if it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn binds its own sockets: a restart may reuse a port still in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # Listening now, before the server starts, so a client that connects early waits instead of being refused.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def running_shops(
    configs: Mapping[str, Callable[[str], MockConfig]],
    *,
    host: str = "127.0.0.1",
    signing_key: RSAKey | None = None,
    timeout: float = 10.0,
) -> Iterator[dict[str, ServedShop]]:
    """Serve several shops from one uvicorn server in a thread of this process, each on a free port.

    `configs` maps each shop's name to a function from its base URL (`http://HOST:PORT`, known only once the
    port is bound) to its config, e.g. `lambda url: MockConfig(base_url=url, credentials=[...])`.
    Yields each shop by name; the server stops when the block ends.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in configs:
            sockets.append(listen(host, 0))
        listings = [
            ShopListing(name=name, port=(port := sock.getsockname()[1]), config=make(f"http://{host}:{port}"))
            for (name, make), sock in zip(configs.items(), sockets, strict=True)
        ]
        app = create_shops_app(listings, signing_key=signing_key)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
        thread.start()
        try:
            _wait_started(server, thread, timeout)
            yield app.shops
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        for sock in sockets:
            sock.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the shops' server stopped while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the shops' server did not start within {timeout}s")
        time.sleep(0.01)
