"""Discovery: every discovered endpoint is checked before use, and a slow shop never stalls requests that a
cached copy can serve (stale-while-revalidate, one background refresh, a backoff after a failure)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from joserfc.jwk import RSAKey

from mock_shopify import MockConfig
from mock_shopify import create_app as create_mock_app
from mock_shopify.keys import KeyRing
from tests.helpers import (
    BFF_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    Clock,
    Shop,
    create_app,
    eventually,
    gql,
    login,
    make_settings,
    running_bff,
)

ENDPOINT_FIELDS = ["authorization_endpoint", "token_endpoint", "end_session_endpoint", "jwks_uri", "graphql_api"]


@dataclass
class Trap:
    """A loopback listener that only counts connections: where a tampered document points the BFF."""

    url: str
    connections: list[int] = field(default_factory=list)


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    found = Trap("")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections.append(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    found.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/steal"
    async with server:
        yield found


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    # One RSA key for the module: generating one per stand-in would dominate the run time.
    return KeyRing.generate_key()


@asynccontextmanager
async def bff_on_domain(
    domain: str, redis_url: str, signing_key: RSAKey, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Shop]]:
    """A BFF for a real-looking https shop domain, its auth client talking to a stand-in served on that domain."""
    mock = create_mock_app(
        MockConfig(base_url=f"https://{domain}", credentials=[(CLIENT_ID, CLIENT_SECRET)]), signing_key=signing_key
    )
    shop_transport = httpx.ASGITransport(app=mock)
    settings = make_settings(domain, redis_url, **overrides)
    async with (
        httpx.AsyncClient(transport=shop_transport, headers={"User-Agent": "customer-account-bff/0.1"}) as http,
        httpx.AsyncClient(transport=shop_transport, base_url=f"https://{domain}") as knobs,
        LifespanManager(create_app(settings, http=http)) as manager,
    ):
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BFF_URL) as client:
            yield client, Shop(knobs)


def assert_refused(response: httpx.Response, name: str, url: str) -> None:
    """A 502 discovery_failed that names the field and does not echo the URL."""
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "discovery_failed"
    assert name in body["detail"]
    assert url not in body["detail"]
    assert not urlsplit(url).netloc or urlsplit(url).netloc not in response.text


# --- Every endpoint is checked before use ---------------------------------------------------------


@pytest.mark.parametrize("name", ENDPOINT_FIELDS)
async def test_an_endpoint_off_the_shop_fails_login_and_readiness_and_is_never_called(
    name: str, shop: Shop, redis_url: str, trap: Trap
) -> None:
    # Loopback like the stand-in, but another origin: a loopback shop's http is allowed on its own origin only.
    await shop.knob("discovery_fields", **{name: trap.url})
    async with running_bff(make_settings(shop.url, redis_url)) as bff:
        assert_refused(await bff.get("/auth/login"), name, trap.url)
        ready = await bff.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["discovery"] == "discovery_failed"
    assert trap.connections == []


@pytest.mark.parametrize(
    ("name", "url"),
    [("token_endpoint", "http://203.0.113.7/steal"), ("end_session_endpoint", "javascript:alert(1)")],
    ids=["secret-to-plain-http", "script-as-logout-redirect"],
)
async def test_the_reported_tampered_documents_are_refused(name: str, url: str, shop: Shop, redis_url: str) -> None:
    await shop.knob("discovery_fields", **{name: url})
    async with running_bff(make_settings(shop.url, redis_url)) as bff:
        assert_refused(await bff.get("/auth/login"), name, url)
        assert (await bff.get("/readyz")).json()["checks"]["discovery"] == "discovery_failed"
    assert (await shop.stats())["token_requests"] == 0


AUTHORIZE = "/authentication/oauth/authorize"


@pytest.mark.parametrize(
    ("domain", "url", "allowed"),
    [
        ("www.crukafe.com", f"https://account.crukafe.com{AUTHORIZE}", True),
        ("crukafe.com", f"https://account.crukafe.com{AUTHORIZE}", True),
        ("www.crukafe.com", f"https://www.crukafe.com{AUTHORIZE}", True),
        ("crukafe.com", "https://shopify.com/authentication/14702456/oauth/authorize", True),
        ("example.myshopify.com", f"https://example.myshopify.com{AUTHORIZE}", True),
        ("crukafe.com", f"https://evil.crukafe.com{AUTHORIZE}", False),
        ("www.crukafe.com", f"https://crukafe.com.evil.example{AUTHORIZE}", False),
        ("crukafe.com", f"https://account.crukafe.com.evil.example{AUTHORIZE}", False),
        ("crukafe.com", "https://shopify.com.evil.example/authentication/1/oauth/authorize", False),
        ("crukafe.com", "https://notshopify.com/authentication/1/oauth/authorize", False),
        ("example.myshopify.com", f"https://other.myshopify.com{AUTHORIZE}", False),
        ("crukafe.com", "http://shopify.com/authentication/1/oauth/authorize", False),
        ("crukafe.com", "https://shopify.com:8443/authentication/1/oauth/authorize", False),
        ("crukafe.com", "https://user@shopify.com/authentication/1/oauth/authorize", False),
        ("crukafe.com", "https://evil.example\\@shopify.com/authentication/1/oauth/authorize", False),
        ("crukafe.com", "https://shopify.com/authentication/1/oauth/authorize#x", False),
        ("crukafe.com", AUTHORIZE, False),
        ("crukafe.com", "javascript:alert(1)", False),
    ],
)
async def test_the_allowed_hosts_are_shopify_the_shop_and_its_account_domain(
    domain: str, url: str, allowed: bool, redis_url: str, signing_key: RSAKey
) -> None:
    async with bff_on_domain(domain, redis_url, signing_key) as (bff, shop):
        await shop.knob("discovery_fields", authorization_endpoint=url)
        response = await bff.get("/auth/login")
    if allowed:
        assert response.status_code == 302, response.text
        assert response.headers["location"].startswith(f"{url}?")
    else:
        assert_refused(response, "authorization_endpoint", url)


async def test_bff_discovery_extra_hosts_allows_one_more_host(redis_url: str, signing_key: RSAKey) -> None:
    url = "https://login.example.net/authentication/oauth/token"
    async with bff_on_domain("crukafe.com", redis_url, signing_key) as (bff, shop):
        await shop.knob("discovery_fields", token_endpoint=url)
        assert_refused(await bff.get("/auth/login"), "token_endpoint", url)
    extra = {"bff_discovery_extra_hosts": "cdn.example.net, LOGIN.example.net"}
    async with bff_on_domain("crukafe.com", redis_url, signing_key, **extra) as (bff, shop):
        await shop.knob("discovery_fields", token_endpoint=url)
        assert (await bff.get("/auth/login")).status_code == 302
        assert (await bff.get("/readyz")).json()["checks"]["discovery"] == "ok"


# --- Stale-while-revalidate -----------------------------------------------------------------------


async def test_past_the_ttl_requests_use_the_cached_copy_while_one_refresh_waits_on_a_slow_shop(
    shop: Shop, redis_url: str
) -> None:
    clock = Clock()
    # A read timeout far past the bound below: a request that waited on the refetch could not answer in time.
    settings = make_settings(shop.url, redis_url, bff_discovery_ttl=60, bff_upstream_read_timeout=30)
    async with running_bff(settings, clock=clock) as bff:
        await login(bff)
        authorize = (await bff.get("/auth/login")).headers["location"].split("?")[0]
        before = (await shop.stats())["discovery_requests"]
        await shop.knob("hold_discovery", hold=True)
        try:
            clock.advance(61)
            async with asyncio.timeout(10):
                for _ in range(3):
                    assert (await gql(bff)).status_code == 200
                    assert (await bff.get("/auth/login")).headers["location"].startswith(f"{authorize}?")
                assert (await bff.get("/readyz")).status_code == 200

            async def refresh_requested() -> bool:
                return bool((await shop.stats())["discovery_requests"] == before + 2)

            await eventually(refresh_requested, what="one refresh (two documents) held at the stand-in")
            # The refresh still held: the calls above did not start another one.
            assert (await gql(bff)).status_code == 200
            assert (await shop.stats())["discovery_requests"] == before + 2
            # The refreshed copy is the one used once the shop answers.
            await shop.knob("discovery_fields", authorization_endpoint=f"{authorize}-v2")
        finally:
            await shop.knob("hold_discovery", hold=False)

        async def refreshed() -> bool:
            return (await bff.get("/auth/login")).headers["location"].startswith(f"{authorize}-v2?")

        await eventually(refreshed, what="the refreshed copy in use")
        assert (await shop.stats())["discovery_requests"] == before + 2


async def test_a_failed_refresh_keeps_the_copy_and_is_retried_after_a_backoff_not_per_request(
    shop: Shop, redis_url: str
) -> None:
    clock = Clock()
    logs = io.StringIO()
    settings = make_settings(shop.url, redis_url, bff_discovery_ttl=60)
    async with running_bff(settings, clock=clock, log_stream=logs) as bff:
        await login(bff)
        before = (await shop.stats())["discovery_requests"]
        await shop.knob("fail_discovery", status=503, count=2)
        clock.advance(61)
        assert (await gql(bff)).status_code == 200

        async def requested(count: int) -> bool:
            return bool((await shop.stats())["discovery_requests"] == before + count)

        async def logged() -> bool:
            return "discovery refresh failed (discovery_failed)" in logs.getvalue()

        await eventually(lambda: requested(2), what="the failing refresh")
        await eventually(logged, what="the failure logged")
        for _ in range(3):
            assert (await gql(bff)).status_code == 200
        assert await requested(2)  # within the backoff: no new attempt
        clock.advance(30)
        assert (await gql(bff)).status_code == 200
        await eventually(lambda: requested(4), what="the retry after the backoff")


async def test_a_cold_start_waits_once_for_all_callers_and_fails_cleanly(shop: Shop, redis_url: str) -> None:
    settings = make_settings(shop.url, redis_url, bff_upstream_read_timeout=0.5)
    await shop.knob("hold_discovery", hold=True)
    try:
        async with running_bff(settings) as bff:
            responses = await asyncio.gather(*(bff.get("/auth/login") for _ in range(3)))
            assert [r.status_code for r in responses] == [504, 504, 504]
            assert {r.json()["error"] for r in responses} == {"discovery_timeout"}
            # One fetch of the two documents served all three callers.
            assert (await shop.stats())["discovery_requests"] == 2
            ready = await bff.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["discovery"] == "discovery_timeout"
    finally:
        await shop.knob("hold_discovery", hold=False)


async def test_shutdown_cancels_a_refresh_in_flight(shop: Shop, redis_url: str) -> None:
    clock = Clock()
    settings = make_settings(shop.url, redis_url, bff_discovery_ttl=60, bff_upstream_read_timeout=30)
    try:
        async with asyncio.timeout(10), running_bff(settings, clock=clock) as bff:
            await login(bff)
            before = (await shop.stats())["discovery_requests"]
            await shop.knob("hold_discovery", hold=True)
            clock.advance(61)
            assert (await gql(bff)).status_code == 200

            async def held() -> bool:
                return bool((await shop.stats())["discovery_requests"] == before + 2)

            await eventually(held, what="a refresh held at the stand-in")
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "discovery"]
    finally:
        await shop.knob("hold_discovery", hold=False)
