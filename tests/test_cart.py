"""Logged-in checkout: the customer put on the cart server-side, never a token in the browser, CSRF-proof,
taken off again at logout, re-attached after refreshes; against the stand-in's Storefront API over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devkit.redis_server import free_port
from mock_shopify.customers import company_location
from tests.helpers import (
    BFF_URL,
    CSRF,
    EMAIL,
    STOREFRONT,
    STOREFRONT_TOKEN,
    Clock,
    Settings,
    Shop,
    create_cart,
    login,
    make_settings,
    running_bff,
)

FORM_POST = {"Origin": STOREFRONT}  # what a browser sends with a form post from the storefront
B2B_EMAIL = "buyer@acme.example"


@pytest.fixture
def settings(shop: Shop, redis_url: str) -> Settings:
    """The test deployment with the cart endpoints on (every `bff` in this module uses it)."""
    return make_settings(shop.url, redis_url, shopify_storefront_token=STOREFRONT_TOKEN)


@pytest.fixture
async def cart(shop: Shop) -> str:
    return await create_cart(shop.url)


async def cart_state(shop: Shop, cart_id: str) -> dict[str, Any]:
    """The cart as the stand-in holds it: whose it is right now, and what it carries."""
    response = await shop.http.get("/_mock/storefront/cart", params={"id": cart_id})
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


async def storefront_stats(shop: Shop) -> dict[str, Any]:
    stats: dict[str, Any] = (await shop.http.get("/_mock/storefront/stats")).raise_for_status().json()
    return stats


async def attach(client: httpx.AsyncClient, cart_id: str, **extra: str) -> httpx.Response:
    return await client.post("/cart/buyer-identity", json={"cartId": cart_id, **extra}, headers=CSRF)


async def checkout_page(location: str) -> str:
    """What the buyer sees at the checkout URL (a fresh browser: no cookies from the stand-in's login)."""
    async with httpx.AsyncClient(headers={"User-Agent": "browser"}) as browser:
        page = await browser.get(location)
        assert page.status_code == 200, page.text
        return page.text


async def checkout(client: httpx.AsyncClient, cart_id: str) -> httpx.Response:
    """The storefront's checkout button: a plain form post."""
    return await client.post("/cart/checkout", data={"cartId": cart_id}, headers=FORM_POST)


# --- attaching ---------------------------------------------------------------------------------------


async def test_buyer_identity_puts_the_customer_on_the_cart(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    response = await attach(bff, cart)
    assert response.status_code == 200, response.text
    assert response.json()["cartId"] == cart
    assert response.json()["checkoutUrl"].startswith(f"{shop.url}/cart/c/")
    assert (await cart_state(shop, cart))["customer"] == EMAIL


async def test_no_answer_carries_the_token(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    answers = [await attach(bff, cart), await checkout(bff, cart), await attach(bff, "gid://shopify/Cart/nope?key=0")]
    answers.append(await attach(bff, cart, companyLocationId="gid://shopify/CompanyLocation/1"))
    assert [a.status_code for a in answers] == [200, 303, 404, 422]
    for answer in answers:
        assert "shcat_" not in answer.text and "shcat_" not in str(answer.headers)
        assert STOREFRONT_TOKEN not in answer.text and STOREFRONT_TOKEN not in str(answer.headers)


async def test_storefront_calls_carry_the_private_token_and_the_buyer_ip(
    bff: httpx.AsyncClient, shop: Shop, cart: str
) -> None:
    await login(bff)
    assert (await attach(bff, cart)).status_code == 200
    stats = await storefront_stats(shop)
    assert stats["private_requests"] == 1 and stats["unauthorized"] == 0
    assert stats["buyer_ips"] == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("trusted", "buyer_ip"),
    [("127.0.0.1", "203.0.113.9"), ("", "127.0.0.1")],
    ids=["behind-a-trusted-proxy", "forwarded-header-not-believed"],
)
async def test_buyer_ip_follows_the_trusted_proxy_rules(
    shop: Shop, redis_url: str, cart: str, trusted: str, buyer_ip: str
) -> None:
    settings = make_settings(
        shop.url, redis_url, shopify_storefront_token=STOREFRONT_TOKEN, bff_trusted_proxies=trusted
    )
    async with running_bff(settings) as client:
        await login(client)
        response = await client.post(
            "/cart/buyer-identity", json={"cartId": cart}, headers={**CSRF, "X-Forwarded-For": "203.0.113.9"}
        )
        assert response.status_code == 200, response.text
    assert (await storefront_stats(shop))["buyer_ips"] == [buyer_ip]


async def test_the_endpoints_are_off_without_a_storefront_token(shop: Shop, redis_url: str, cart: str) -> None:
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        await login(client)
        attached = await attach(client, cart)
        checked_out = await checkout(client, cart)
    assert (attached.status_code, attached.json()["error"]) == (404, "cart_disabled")
    assert (checked_out.status_code, checked_out.json()["error"]) == (404, "cart_disabled")
    assert (await storefront_stats(shop))["private_requests"] == 0


async def test_not_signed_in_is_401(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    response = await attach(bff, cart)
    assert (response.status_code, response.json()["error"]) == (401, "not_authenticated")
    assert (await storefront_stats(shop))["private_requests"] == 0


async def test_user_errors_come_back_as_422(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    location = company_location(B2B_EMAIL)
    assert location is not None
    response = await attach(bff, cart, companyLocationId=location.id)  # Ada does not buy for Acme
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "cart_rejected" and body["detail"]
    assert body["userErrors"] == [
        {
            "field": ["buyerIdentity", "companyLocationId"],
            "code": "INVALID_COMPANY_LOCATION",
            "message": "Company location not found or not allowed.",
        }
    ]
    assert (await cart_state(shop, cart))["customer"] is None  # a refused update changes nothing


async def test_a_company_location_of_the_customer_is_accepted(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff, B2B_EMAIL)
    location = company_location(B2B_EMAIL)
    assert location is not None
    response = await attach(bff, cart, companyLocationId=location.id, countryCode="CA")
    assert response.status_code == 200, response.text
    page = await checkout_page((await checkout(bff, cart)).headers["location"])
    assert f"Checking out as {B2B_EMAIL}" in page and "For Acme Wholesale (Head office)" in page


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "signed-out"])
async def test_an_unknown_cart_is_404(bff: httpx.AsyncClient, shop: Shop, signed_in: bool) -> None:
    if signed_in:
        await login(bff)
    unknown = "gid://shopify/Cart/c1-doesnotexist?key=0123456789abcdef"
    response = await checkout(bff, unknown)
    assert (response.status_code, response.json()["error"]) == (404, "cart_not_found")


# --- CSRF: a foreign page must not put the victim on the attacker's cart --------------------------------


@pytest.mark.parametrize("path", ["/cart/buyer-identity", "/cart/checkout"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},  # a form post from the attacker's page
        {"Origin": "https://evil.example", **CSRF},  # a fetch that got past CORS somehow
        {"Origin": "null"},  # a sandboxed frame, or a no-referrer page
        {},  # no proof at all
    ],
    ids=["foreign-form", "foreign-fetch", "null-origin", "no-proof"],
)
async def test_a_foreign_origin_attempt_changes_nothing(
    bff: httpx.AsyncClient, shop: Shop, path: str, headers: dict[str, str]
) -> None:
    await login(bff)  # the victim is signed in; the attacker made this cart and knows its id
    attackers_cart = await create_cart(shop.url)
    response = await bff.post(path, data={"cartId": attackers_cart}, headers=headers)
    assert (response.status_code, response.json()["error"]) == (403, "csrf_failed")
    assert (await cart_state(shop, attackers_cart))["has_customer_access_token"] is False
    assert (await storefront_stats(shop))["private_requests"] == 0


# --- checkout --------------------------------------------------------------------------------------------


async def test_checkout_as_a_customer(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    response = await checkout(bff, cart)
    assert response.status_code == 303
    assert response.headers["cache-control"] == "no-store"
    assert f"Checking out as {EMAIL}" in await checkout_page(response.headers["location"])


async def test_checkout_signed_out_is_a_guest_checkout(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    response = await checkout(bff, cart)
    assert response.status_code == 303
    assert "Guest checkout" in await checkout_page(response.headers["location"])


async def test_a_signed_out_checkout_goes_as_a_guest_even_on_a_cart_that_kept_a_customer(
    bff: httpx.AsyncClient, shop: Shop, cart: str
) -> None:
    ada = httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL)  # another browser, signed in
    async with ada:
        await login(ada)
        assert (await attach(ada, cart)).status_code == 200
    response = await checkout(bff, cart)  # someone else, signed out, with the same cart
    assert "Guest checkout" in await checkout_page(response.headers["location"])


async def test_checkout_answers_json_to_a_script(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    response = await bff.post("/cart/checkout", json={"cartId": cart}, headers={**CSRF, "Accept": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"cartId": cart, "checkoutUrl": (await attach(bff, cart)).json()["checkoutUrl"]}


async def test_a_checkout_url_on_a_foreign_host_is_refused(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    await shop.knob("storefront/domains", checkout_origin="https://evil.example")
    response = await checkout(bff, cart)
    assert (response.status_code, response.json()["error"]) == (502, "checkout_url_refused")
    assert "location" not in response.headers


async def test_a_checkout_url_on_the_shops_primary_domain_is_followed(
    bff: httpx.AsyncClient, shop: Shop, cart: str
) -> None:
    await login(bff)
    primary = "https://checkout.maple-and-mug.example"
    await shop.knob("storefront/domains", checkout_origin=primary, primary_domain=primary)
    response = await checkout(bff, cart)
    assert response.status_code == 303
    assert response.headers["location"].startswith(f"{primary}/cart/c/")


# --- logout ------------------------------------------------------------------------------------------------


async def test_logout_takes_the_customer_off_the_cart(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    assert (await attach(bff, cart)).status_code == 200
    assert (await bff.post("/auth/logout", headers=CSRF)).status_code == 303
    state = await cart_state(shop, cart)
    assert (state["has_customer_access_token"], state["email"]) == (False, None)


async def test_logout_everywhere_takes_the_customer_off_every_sessions_carts(
    bff: httpx.AsyncClient, shop: Shop
) -> None:
    laptop_cart, phone_cart = await create_cart(shop.url), await create_cart(shop.url)
    phone = httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL)
    async with phone:
        await login(bff)
        await login(phone)
        assert (await attach(bff, laptop_cart)).status_code == 200
        assert (await attach(phone, phone_cart)).status_code == 200
        out = await bff.post("/auth/logout", params={"everywhere": "true"}, headers=CSRF)
        assert out.status_code == 303
    for cart_id in (laptop_cart, phone_cart):
        assert (await cart_state(shop, cart_id))["has_customer_access_token"] is False


async def test_logout_goes_through_during_a_storefront_outage(bff: httpx.AsyncClient, shop: Shop, cart: str) -> None:
    await login(bff)
    assert (await attach(bff, cart)).status_code == 200
    await shop.knob("storefront/fail", status=503, count=5)
    assert (await bff.post("/auth/logout", headers=CSRF)).status_code == 303
    assert (await bff.get("/auth/session")).json() == {"authenticated": False}


async def test_a_cart_pushed_out_of_the_sessions_memory_keeps_no_token(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    carts = [await create_cart(shop.url) for _ in range(6)]  # one more than a session remembers
    for cart_id in carts:
        assert (await attach(bff, cart_id)).status_code == 200
    assert (await cart_state(shop, carts[0]))["has_customer_access_token"] is False
    assert (await cart_state(shop, carts[-1]))["customer"] == EMAIL


# --- refreshes -------------------------------------------------------------------------------------------


@pytest.fixture
async def clocked(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Clock]]:
    clock = Clock()
    async with running_bff(settings, clock=clock) as client:
        yield client, clock


async def test_checkout_after_a_refresh_attaches_the_new_token(
    clocked: tuple[httpx.AsyncClient, Clock], shop: Shop, cart: str
) -> None:
    client, clock = clocked
    await login(client)
    assert (await attach(client, cart)).status_code == 200
    await shop.knob("expire_access_tokens")  # the token the cart holds is dead at Shopify
    clock.advance(3600)  # and due for the BFF
    response = await checkout(client, cart)
    assert (await shop.stats())["grants"]["refresh_token"] == 1
    assert f"Checking out as {EMAIL}" in await checkout_page(response.headers["location"])


async def test_a_token_shopify_refuses_early_is_refreshed_once_and_retried(
    bff: httpx.AsyncClient, shop: Shop, cart: str
) -> None:
    await login(bff)
    await shop.knob("expire_access_tokens")  # dead at Shopify, though the BFF thinks it has an hour
    response = await checkout(bff, cart)
    assert (await shop.stats())["grants"]["refresh_token"] == 1
    assert f"Checking out as {EMAIL}" in await checkout_page(response.headers["location"])


async def test_carts_remembered_during_a_refresh_keep_the_session(
    clocked: tuple[httpx.AsyncClient, Clock], shop: Shop
) -> None:
    client, clock = clocked
    await login(client)
    carts = [await create_cart(shop.url) for _ in range(3)]
    clock.advance(3600)  # every request below finds the token due
    answers = await asyncio.gather(*(attach(client, c) for c in carts))
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert (await client.get("/auth/session")).json()["authenticated"] is True
    assert (await client.post("/auth/logout", headers=CSRF)).status_code == 303
    for cart_id in carts:  # all three were remembered, so all three were released
        assert (await cart_state(shop, cart_id))["has_customer_access_token"] is False


# --- upstream failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "answer", "code"),
    [
        (503, 502, "storefront_unavailable"),
        (502, 502, "storefront_unavailable"),
        (500, 502, "storefront_unavailable"),
        (401, 502, "storefront_error"),
        (429, 429, "rate_limited"),
    ],
)
async def test_a_storefront_failure_is_a_stable_error_and_no_logout(
    bff: httpx.AsyncClient, shop: Shop, cart: str, status: int, answer: int, code: str
) -> None:
    await login(bff)
    await shop.knob("storefront/fail", status=status, retry_after=7)
    response = await attach(bff, cart)
    assert (response.status_code, response.json()["error"]) == (answer, code)
    assert (await bff.get("/auth/session")).json()["authenticated"] is True


async def test_a_slow_storefront_is_504(shop: Shop, redis_url: str, cart: str) -> None:
    settings = make_settings(
        shop.url, redis_url, shopify_storefront_token=STOREFRONT_TOKEN, bff_upstream_total_timeout=0.3
    )
    await shop.knob("storefront/delay", seconds=1)
    async with running_bff(settings) as client:
        response = await checkout(client, cart)
    assert (response.status_code, response.json()["error"]) == (504, "storefront_timeout")


async def test_an_unreachable_storefront_is_502(redis_url: str, cart: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with running_bff(make_settings(nowhere, redis_url, shopify_storefront_token=STOREFRONT_TOKEN)) as client:
        response = await checkout(client, cart)
    assert (response.status_code, response.json()["error"]) == (502, "storefront_unavailable")
    assert response.headers["retry-after"] == "2"


# --- hostile input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "body", "status", "code"),
    [
        ("/cart/buyer-identity", "application/json", b"{not json", 400, "invalid_json"),
        ("/cart/buyer-identity", "application/json", b"[1]", 400, "invalid_request"),
        ("/cart/buyer-identity", "application/json", b'{"cartId": 42}', 400, "invalid_request"),
        ("/cart/buyer-identity", "application/json", b'{"cartId": "gid://shopify/Order/1"}', 400, "invalid_request"),
        ("/cart/buyer-identity", "application/json", b'{"cartId": "javascript:alert(1)"}', 400, "invalid_request"),
        ("/cart/buyer-identity", "application/json", b"\xff\xfe", 400, "invalid_json"),
        ("/cart/checkout", "application/json", b'{"cartId": "gid://shopify/Cart/a b"}', 400, "invalid_request"),
        ("/cart/checkout", "application/x-www-form-urlencoded", b"cartId=1&cartId=2", 400, "invalid_request"),
        ("/cart/checkout", "application/x-www-form-urlencoded", b"cartId=%ff", 400, "invalid_request"),
        ("/cart/checkout", "application/json", b'{"cartId": "@", "countryCode": "QQ"}', 400, "invalid_request"),
        ("/cart/buyer-identity", "application/x-www-form-urlencoded", b"cartId=x", 415, "unsupported_media_type"),
        ("/cart/checkout", "text/plain", b'{"cartId": "x"}', 415, "unsupported_media_type"),
        ("/cart/checkout", "multipart/form-data; boundary=x", b"--x--", 415, "unsupported_media_type"),
        ("/cart/checkout", "application/json", b'{"cartId": "' + b"a" * 5000 + b'"}', 413, "body_too_large"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "id-not-a-string",
        "not-a-cart-gid",
        "script-url",
        "not-utf8",
        "space-in-id",
        "repeated-field",
        "bad-form-encoding",
        "bad-country",
        "form-where-json",
        "text-plain",
        "multipart",
        "oversized",
    ],
)
async def test_hostile_input_is_a_precise_4xx(
    bff: httpx.AsyncClient, shop: Shop, path: str, content_type: str, body: bytes, status: int, code: str
) -> None:
    await login(bff)
    response = await bff.post(path, content=body, headers={**CSRF, "Content-Type": content_type})
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert (await storefront_stats(shop))["private_requests"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("countryCode", "QQ"), ("countryCode", "ca"), ("companyLocationId", "gid://shopify/Company/1")],
)
async def test_malformed_options_are_400(bff: httpx.AsyncClient, shop: Shop, cart: str, field: str, value: str) -> None:
    await login(bff)
    response = await attach(bff, cart, **{field: value})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert (await storefront_stats(shop))["private_requests"] == 0
