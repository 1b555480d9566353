"""Deadlines and bounds over real sockets: a body that never finishes, upstreams that drip-feed their answer,
and uvicorn's connection and keep-alive limits on `python -m app serve`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from app.store.sessions import session_key
from devkit.redis_server import free_port
from tests.helpers import (
    CSRF,
    CUSTOMER_QUERY,
    STOREFRONT,
    Launcher,
    Process,
    ServerThread,
    Settings,
    Shop,
    bff_command,
    create_app,
    eventually,
    login,
    login_with_expired_token,
    make_settings,
    run,
    running_bff,
)

# What a test waits, at most, for an answer that must come within a deadline of a second or less.
PATIENCE = 5.0


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, lower-cased headers, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines if line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split(" ")[1]), headers, body


@pytest.fixture
def bff_thread(settings_with_deadlines: Settings) -> Iterator[ServerThread]:
    """The BFF under a real uvicorn, in a thread: only a real server shows how a slow body arrives."""
    server = ServerThread(create_app(settings_with_deadlines), lifespan=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings_with_deadlines(shop: Shop, redis_url: str) -> Settings:
    return make_settings(
        shop.url,
        redis_url,
        bff_body_read_timeout=0.5,
        bff_upstream_total_timeout=0.6,
        # Per-read timeouts well above the total, so only the total can end a drip-fed answer in time.
        bff_upstream_read_timeout=5.0,
    )


async def session_cookie(settings: Settings) -> str:
    """A logged-in session's cookie, from a login through the in-process BFF (same Redis, same secret)."""
    async with running_bff(settings) as client:
        await login(client)
        return f"bff_session={client.cookies['bff_session']}"


# --- The request body -----------------------------------------------------------------------------


async def test_a_body_that_never_finishes_gets_408_within_the_deadline(
    bff_thread: ServerThread, settings_with_deadlines: Settings
) -> None:
    cookie = await session_cookie(settings_with_deadlines)
    head = (
        "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Origin: {STOREFRONT}\r\nX-CSRF: {CSRF['X-CSRF']}\r\nCookie: {cookie}\r\nContent-Length: 1000\r\n\r\n"
    )
    async with connection(bff_thread.port) as (reader, writer):
        writer.write(head.encode() + b'{"query": "{')
        await writer.drain()
        started = time.monotonic()
        async with asyncio.timeout(PATIENCE):
            status, headers, body = await read_response(reader)
            # The rest of the body will not be read: the server closes rather than wait for it.
            assert await reader.read() == b""
        took = time.monotonic() - started
    assert status == 408
    assert json.loads(body)["error"] == "body_timeout"
    assert headers["connection"] == "close"
    assert 0.4 < took < 0.5 + 1.5, took


# --- Upstream calls -------------------------------------------------------------------------------


async def test_the_drip_knob_sends_the_whole_answer_a_byte_at_a_time(shop: Shop) -> None:
    token_url = "/authentication/1234567890/oauth/token"
    at_once = await shop.http.post(token_url)
    await shop.knob("drip_token", count=1, interval=0.001)
    async with shop.http.stream("POST", token_url) as dripped:
        chunks = [chunk async for chunk in dripped.aiter_raw()]
    assert dripped.status_code == at_once.status_code
    assert b"".join(chunks) == at_once.content
    assert len(chunks) > 1
    assert (await shop.http.post(token_url)).content == at_once.content  # count=1: the next answers at once


async def test_a_drip_fed_graphql_answer_is_504_within_the_total_deadline(
    settings_with_deadlines: Settings, shop: Shop
) -> None:
    async with running_bff(settings_with_deadlines) as client:
        await login(client)
        # One byte every 0.2 s: each read is well inside the 5 s read timeout, the whole answer is not.
        await shop.knob("drip_graphql", count=1, interval=0.2)
        started = time.monotonic()
        async with asyncio.timeout(PATIENCE):
            slow = await client.post("/graphql", json=CUSTOMER_QUERY, headers=CSRF)
        assert time.monotonic() - started < 0.6 + 1.0
        assert slow.status_code == 504
        assert slow.json()["error"] == "upstream_timeout"
        assert (await client.post("/graphql", json=CUSTOMER_QUERY, headers=CSRF)).status_code == 200


async def test_a_drip_fed_token_answer_is_504_within_the_total_deadline_and_keeps_the_session(
    settings_with_deadlines: Settings, shop: Shop, redis_client: aioredis.Redis
) -> None:
    async with running_bff(settings_with_deadlines) as client:
        await login_with_expired_token(client, shop)
        sid = client.cookies["bff_session"].rsplit(".", 1)[0]
        await shop.knob("drip_token", count=1, interval=0.2)
        started = time.monotonic()
        async with asyncio.timeout(PATIENCE):
            failed = await client.post("/graphql", json=CUSTOMER_QUERY, headers=CSRF)
        assert time.monotonic() - started < 0.6 + 1.0
        assert failed.status_code == 504
        assert failed.json()["error"] == "token_endpoint_timeout"
        # The timeout ends nothing. (The session may not be usable: the stand-in rotated the refresh token
        # before its answer dripped, so the next refresh presents a dead one, as after any answer cut short.)
        assert await redis_client.exists(session_key(sid))


# --- uvicorn's limits on `python -m app serve` ----------------------------------------------------

GET_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture(scope="module")
def limited_bff(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Process]:
    """`python -m app serve` as a real process: the limits are uvicorn's, set by the command."""
    launcher = Launcher(tmp_path_factory.mktemp("limited"))
    try:
        env = {"BFF_MAX_CONNECTIONS": "2", "BFF_KEEPALIVE_TIMEOUT": "1"}
        yield launcher.deployment(redis_url, bffs=1, **env).bffs[0]
    finally:
        launcher.stop_all()


async def healthz_on(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> tuple[int, bytes]:
    reader, writer = connection
    writer.write(GET_HEALTHZ)
    await writer.drain()
    async with asyncio.timeout(PATIENCE):
        status, _, body = await read_response(reader)
    return status, body


@pytest.mark.slow
async def test_serve_answers_503_past_bff_max_connections(limited_bff: Process) -> None:
    port = limited_bff.port
    # uvicorn counts open connections, answered or not: each one is opened only after the last answer.
    async with connection(port) as first:
        assert (await healthz_on(first))[0] == 200
        async with connection(port) as second:
            assert (await healthz_on(second))[0] == 200
            # Both stay open (keep-alive): a third is one past the limit, refused by uvicorn itself.
            async with connection(port) as third:
                assert await healthz_on(third) == (503, b"Service Unavailable")

    async def served_again() -> bool:
        # Once uvicorn has seen those connections close, their slots are free again.
        async with connection(port) as fresh:
            if (await healthz_on(fresh))[0] != 200:
                return False
            async with connection(port) as other:
                return (await healthz_on(other))[0] == 200

    await eventually(served_again, what="two connections served again")


@pytest.mark.slow
async def test_serve_closes_idle_keep_alive_connections(limited_bff: Process) -> None:
    async with connection(limited_bff.port) as (reader, writer):
        assert (await healthz_on((reader, writer)))[0] == 200
        started = time.monotonic()
        async with asyncio.timeout(PATIENCE - 2):  # under uvicorn's default of 5 s
            assert await reader.read() == b""  # EOF: the server closed the idle connection
        assert time.monotonic() - started > 0.5


def test_serve_with_a_bad_setting_names_it_and_exits_2(tmp_path: Path) -> None:
    done = run(bff_command(free_port()), cwd=tmp_path, env={"BFF_MAX_CONNECTIONS": "none"})
    assert done.returncode == 2
    assert "BFF_MAX_CONNECTIONS:" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
