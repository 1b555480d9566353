"""The GraphQL proxy: forwarding, CSRF and CORS, body limits, token refresh and failure semantics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from devkit.redis_server import start_redis
from tests.helpers import (
    BFF_URL,
    CSRF,
    CUSTOMER_QUERY,
    STOREFRONT,
    Shop,
    eventually,
    gql,
    login,
    login_with_expired_token,
    make_settings,
    running_bff,
)


async def test_forwards_query_with_raw_token_and_no_cookies(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    response = await gql(bff, headers={"Accept-Language": "fr-CA", "X-Secret-Header": "nope"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    customer = response.json()["data"]["customer"]
    assert customer["emailAddress"]["emailAddress"] == "ada.lovelace@example.com"
    seen = (await shop.stats())["last_graphql_request"]
    assert seen["authorization"].startswith("shcat_")  # raw token, no "Bearer"
    assert "cookie" not in seen["headers"] and "x-secret-header" not in seen["headers"]
    assert "x-csrf" not in seen["headers"]
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["user-agent"].startswith("customer-account-bff")
    assert seen["headers"]["accept-language"] == "fr-CA"
    assert "shcat_" not in response.text
    # One X-Request-ID (ours); Shopify's own id is passed on under its own name.
    assert len([k for k in response.headers.raw if k[0].lower() == b"x-request-id"]) == 1
    assert response.headers["x-shopify-request-id"] != response.headers["x-request-id"]


async def test_graphql_errors_pass_through_with_200(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    response = await gql(bff, {"query": "{ customer { noSuchField } }"})
    assert response.status_code == 200
    assert response.json()["errors"]


async def test_mutation_user_errors_pass_through(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    me = (await gql(bff, {"query": "{ customer { defaultAddress { id } } }"})).json()
    address_id = me["data"]["customer"]["defaultAddress"]["id"]
    mutation = (
        "mutation Up($id: ID!, $a: CustomerAddressInput!) { "
        "customerAddressUpdate(addressId: $id, address: $a) "
        "{ customerAddress { id city } userErrors { field code message } } }"
    )
    bad = await gql(bff, {"query": mutation, "variables": {"id": address_id, "a": {"territoryCode": "ZZ"}}})
    assert bad.json()["data"]["customerAddressUpdate"]["userErrors"][0]["code"] == "INVALID_TERRITORY_CODE"
    good = await gql(bff, {"query": mutation, "variables": {"id": address_id, "a": {"city": "Montréal"}}})
    assert good.json()["data"]["customerAddressUpdate"]["customerAddress"]["city"] == "Montréal"


async def test_throttling_passes_through_with_retry_after(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    await shop.knob("fail_graphql", count=1, status=429, retry_after=7)
    response = await gql(bff)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["errors"][0]["extensions"]["code"] == "THROTTLED"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),
        ({"X-CSRF": "0"}, 403),
        ({"Origin": STOREFRONT}, 403),  # a form-style request without the header
        ({"X-CSRF": "1", "Origin": "https://evil.example"}, 403),
        ({"X-CSRF": "1", "Origin": STOREFRONT}, 200),
        ({"X-CSRF": "1", "Origin": BFF_URL}, 200),
        ({"X-CSRF": "1"}, 200),
    ],
    ids=[
        "none",
        "wrong-value",
        "origin-only",
        "foreign-origin",
        "allowed-origin",
        "own-origin",
        "header-only",
    ],
)
async def test_csrf_matrix(bff: httpx.AsyncClient, shop: Shop, headers: dict[str, str], status: int) -> None:
    await login(bff)
    before = (await shop.stats())["graphql_requests"]
    response = await bff.post("/graphql", json=CUSTOMER_QUERY, headers=headers)
    assert response.status_code == status
    sent = (await shop.stats())["graphql_requests"] - before
    if status == 403:
        assert response.json()["error"] == "csrf_failed"
        assert sent == 0  # nothing reached Shopify
    else:
        assert sent == 1


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_request"),
        (b'"query"', "invalid_request"),
        (b'{"query": 42}', "invalid_request"),
        (b'{"query": "{ customer { id } }", "variables": [1]}', "invalid_request"),
        (b'{"variables": {}}', "invalid_request"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
async def test_malformed_bodies_are_400(bff: httpx.AsyncClient, shop: Shop, content: bytes, code: str) -> None:
    await login(bff)
    response = await bff.post("/graphql", content=content, headers={**CSRF, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == code


async def test_oversized_body_is_413(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    big = json.dumps({"query": "{ customer { id } }", "variables": {"x": "a" * 70_000}}).encode()
    response = await bff.post("/graphql", content=big, headers={**CSRF, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"a" * 1000

    streamed = await bff.post("/graphql", content=chunks(), headers=CSRF)  # no Content-Length
    assert streamed.status_code == 413


async def test_requires_a_session(bff: httpx.AsyncClient, shop: Shop) -> None:
    response = await gql(bff)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


async def test_cors_preflight_allowed_and_denied(bff: httpx.AsyncClient, shop: Shop) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-csrf",
    }
    allowed = await bff.options("/graphql", headers={"Origin": STOREFRONT, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == STOREFRONT
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "x-csrf" in allowed.headers["access-control-allow-headers"].lower()
    denied = await bff.options("/graphql", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers
    await login(bff)
    simple = await gql(bff, headers={"Origin": STOREFRONT})
    assert simple.headers["access-control-allow-origin"] == STOREFRONT


async def test_expired_token_is_refreshed_before_the_call(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login_with_expired_token(bff, shop)
    assert (await gql(bff)).status_code == 200
    stats = await shop.stats()
    assert stats["grants"]["refresh_token"] == 1


async def test_rotated_refresh_token_is_stored(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login_with_expired_token(bff, shop)
    for turn in range(3):
        if turn:  # the first refresh is the early one; the next two follow Shopify's 401
            await shop.knob("expire_access_tokens")
        # Each refresh presents the token the previous one returned; the old ones are dead at the shop.
        assert (await gql(bff)).status_code == 200
    assert (await shop.stats())["grants"]["refresh_token"] == 3
    assert (await bff.get("/auth/session")).json()["authenticated"] is True


async def test_fifty_concurrent_requests_refresh_once(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login_with_expired_token(bff, shop)
    await shop.knob("delay_token", count=1, seconds=0.3)  # widen the race window
    responses = await asyncio.gather(*(gql(bff) for _ in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert (await shop.stats())["grants"]["refresh_token"] == 1


async def test_concurrent_refresh_across_two_apps_sharing_redis(shop: Shop, redis_url: str) -> None:
    """Two BFF instances (separate apps, separate in-process locks) share one Redis lock."""
    settings = make_settings(shop.url, redis_url)
    async with running_bff(settings) as a, running_bff(settings) as b:
        await login_with_expired_token(a, shop)
        b.cookies.update(a.cookies)
        await shop.knob("delay_token", count=1, seconds=0.3)  # widen the race window
        responses = await asyncio.gather(*(gql(c) for _ in range(25) for c in (a, b)))
    assert [r.status_code for r in responses] == [200] * 50
    assert (await shop.stats())["grants"]["refresh_token"] == 1


async def test_invalid_grant_ends_the_session(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login_with_expired_token(bff, shop)
    await shop.knob("revoke_refresh_tokens")
    response = await gql(bff)
    assert response.status_code == 401
    assert response.json()["error"] == "session_expired"
    assert (await bff.get("/auth/session")).json() == {"authenticated": False}


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "token_endpoint_unavailable"),
        (401, "token_endpoint_unavailable"),
        (429, "token_endpoint_throttled"),
    ],
)
async def test_transient_refresh_failure_keeps_the_session(
    bff: httpx.AsyncClient, shop: Shop, status: int, code: str
) -> None:
    await login_with_expired_token(bff, shop)
    await shop.knob("fail_token", count=1, status=status, retry_after=3)
    failed = await gql(bff)
    assert failed.status_code == 503
    assert failed.json()["error"] == code
    assert failed.headers["retry-after"] == "3"  # Shopify's own, passed on
    assert (await bff.get("/auth/session")).json()["authenticated"] is True
    assert (await gql(bff)).status_code == 200  # the kept refresh token still works


async def test_refresh_timeout_keeps_the_session(shop: Shop, redis_url: str) -> None:
    settings = make_settings(shop.url, redis_url, bff_upstream_read_timeout=0.5, bff_upstream_connect_timeout=0.5)
    async with running_bff(settings) as client:
        await login_with_expired_token(client, shop)
        await shop.knob("delay_token", count=1, seconds=2)
        failed = await gql(client)
        assert failed.status_code == 504
        assert failed.json()["error"] == "token_endpoint_timeout"
        assert (await gql(client)).status_code == 200


async def test_upstream_401_refreshes_once_and_retries_once(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    await shop.knob("expire_access_tokens")
    response = await gql(bff)
    assert response.status_code == 200
    assert (await shop.stats())["grants"]["refresh_token"] == 1


async def test_upstream_401_twice_is_not_a_loop(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    before = (await shop.stats())["graphql_requests"]
    await shop.knob("fail_graphql", count=5, status=401)
    response = await gql(bff)
    assert response.status_code == 401
    stats = await shop.stats()
    assert stats["graphql_requests"] - before == 2
    assert stats["grants"]["refresh_token"] == 1


async def test_upstream_timeout_and_outage(shop: Shop, redis_url: str) -> None:
    settings = make_settings(shop.url, redis_url, bff_upstream_read_timeout=0.5)
    async with running_bff(settings) as client:
        await login(client)
        await shop.knob("delay_graphql", count=1, seconds=1.5)
        slow = await gql(client)
        assert slow.status_code == 504
        assert slow.json()["error"] == "upstream_timeout"
        await shop.knob("fail_graphql", count=1, status=502)
        bad_gateway = await gql(client)
        assert bad_gateway.status_code == 502  # Shopify's own status, passed through
        assert (await gql(client)).status_code == 200


async def test_redis_outage_is_503_and_keeps_the_session(shop: Shop) -> None:
    server = start_redis(persist=True)
    try:
        settings = make_settings(shop.url, server.url)
        async with running_bff(settings) as client:
            await login(client)
            cookie = client.cookies["bff_session"]
            server.stop()
            for call in (gql(client), client.get("/auth/session"), client.get("/auth/login")):
                down = await call
                assert down.status_code == 503
                assert down.json()["error"] == "session_store_unavailable"
                assert down.headers["retry-after"] == "1"
                assert "bff_session" not in down.headers.get("set-cookie", "")
            assert (await client.get("/readyz")).status_code == 503
            server.start()
            assert client.cookies["bff_session"] == cookie
            assert (await gql(client)).status_code == 200
            assert (await client.get("/auth/session")).json()["authenticated"] is True
            assert (await client.get("/readyz")).status_code == 200
    finally:
        server.cleanup()


@pytest.mark.slow
async def test_redis_failing_right_after_a_refresh_does_not_log_the_customer_out(shop: Shop) -> None:
    """Shopify rotated the refresh token but Redis went away before the new one was stored: the BFF keeps
    the new tokens in memory and stores them once Redis is back, instead of presenting the dead token."""
    server = start_redis(persist=True)
    try:
        settings = make_settings(shop.url, server.url, bff_upstream_connect_timeout=0.5, bff_upstream_read_timeout=1.5)
        async with running_bff(settings) as client:
            await login_with_expired_token(client, shop)
            await shop.knob("delay_token", count=1, seconds=0.8)
            before = (await shop.stats())["token_requests"]
            pending = asyncio.ensure_future(gql(client))

            async def refresh_reached_shopify() -> bool:
                return bool((await shop.stats())["token_requests"] > before)

            await eventually(refresh_reached_shopify, what="the refresh reached Shopify")
            server.stop()  # while Shopify is answering the refresh
            failed = await pending
            assert failed.status_code == 503
            assert failed.json()["error"] == "session_store_unavailable"
            server.start()
            recovered = await gql(client)
            assert recovered.status_code == 200, recovered.text
            assert (await shop.stats())["grants"]["refresh_token"] == 1  # the rotated token was reused
            assert (await client.get("/auth/session")).json()["authenticated"] is True
    finally:
        server.cleanup()
