"""The stand-in's Storefront API: as strict as the BFF needs Shopify to be, and its knobs work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from mock_shopify import MockConfig, create_app
from mock_shopify.__main__ import parse_args
from mock_shopify.config import DEFAULT_STOREFRONT_PRIVATE_TOKEN, DEFAULT_STOREFRONT_PUBLIC_TOKEN
from mock_shopify.customers import company_location
from mock_shopify.keys import KeyRing
from tests.test_mock_shopify import BASE, CLIENT_ID, LOGOUT, REDIRECT, SECRET, SHOP_ID, tokens

API = "/api/2026-10/graphql.json"
PRIVATE = {
    "Shopify-Storefront-Private-Token": DEFAULT_STOREFRONT_PRIVATE_TOKEN,
    "Shopify-Storefront-Buyer-IP": "198.51.100.4",
}
PUBLIC = {"X-Shopify-Storefront-Access-Token": DEFAULT_STOREFRONT_PUBLIC_TOKEN}
CREATE = "mutation { cartCreate { cart { id checkoutUrl } userErrors { field code message } } }"
UPDATE = """
mutation Update($id: ID!, $b: CartBuyerIdentityInput!) {
  cartBuyerIdentityUpdate(cartId: $id, buyerIdentity: $b) {
    cart { id buyerIdentity { email customer { email } purchasingCompany { location { id } } } }
    userErrors { field code message }
  }
}
"""


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return KeyRing.generate_key()


@pytest.fixture
async def client(signing_key: RSAKey) -> AsyncIterator[httpx.AsyncClient]:
    config = MockConfig(
        base_url=BASE,
        shop_id=SHOP_ID,
        credentials=[(CLIENT_ID, SECRET)],
        redirect_uris=[REDIRECT],
        logout_uris=[LOGOUT],
    )
    transport = httpx.ASGITransport(app=create_app(config, signing_key=signing_key))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


async def call(client: httpx.AsyncClient, query: str, headers: dict[str, str], **variables: Any) -> dict[str, Any]:
    response = await client.post(API, json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_cart(client: httpx.AsyncClient) -> str:
    cart_id: str = (await call(client, CREATE, PUBLIC))["data"]["cartCreate"]["cart"]["id"]
    return cart_id


async def update(client: httpx.AsyncClient, cart_id: str, **identity: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (await call(client, UPDATE, PRIVATE, id=cart_id, b=identity))["data"][
        "cartBuyerIdentityUpdate"
    ]
    return payload


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Shopify-Storefront-Private-Token": "wrong"},
        {"X-Shopify-Storefront-Access-Token": "wrong"},
        {**PRIVATE, **PUBLIC},  # one kind of token, never both
    ],
    ids=["none", "wrong-private", "wrong-public", "both"],
)
async def test_requests_without_one_valid_token_are_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post(API, json={"query": "{ shop { name } }"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"


async def test_private_requests_record_the_buyer_ip(client: httpx.AsyncClient) -> None:
    await call(client, "{ shop { name } }", PRIVATE)
    await call(client, "{ shop { name } }", {"Shopify-Storefront-Private-Token": DEFAULT_STOREFRONT_PRIVATE_TOKEN})
    assert (await client.get("/_mock/storefront/stats")).json()["buyer_ips"] == ["198.51.100.4", None]


async def test_public_access_gets_cors(client: httpx.AsyncClient) -> None:
    preflight = await client.options(API, headers={"Origin": "https://shop.example"})
    assert preflight.status_code == 204
    assert "X-Shopify-Storefront-Access-Token" in preflight.headers["access-control-allow-headers"]
    answer = await client.post(API, json={"query": "{ shop { name } }"}, headers={**PUBLIC, "Origin": "https://a"})
    assert answer.headers["access-control-allow-origin"] == "*"


async def test_only_a_live_token_it_issued_puts_a_customer_on_a_cart(client: httpx.AsyncClient) -> None:
    cart_id = await new_cart(client)
    refused = await update(client, cart_id, customerAccessToken="shcat_made_up")
    assert refused["cart"] is None
    assert refused["userErrors"][0]["field"] == ["buyerIdentity", "customerAccessToken"]
    access = (await tokens(client))["access_token"]
    accepted = await update(client, cart_id, customerAccessToken=access)
    assert accepted["cart"]["buyerIdentity"]["customer"]["email"] == "ada.lovelace@example.com"
    await client.post("/_mock/expire_access_tokens")
    # Resolved when read: an expired token on the cart stands for nobody.
    state = (await client.get("/_mock/storefront/cart", params={"id": cart_id})).json()
    assert (state["has_customer_access_token"], state["customer"]) == (True, None)


async def test_a_company_location_needs_a_customer_who_belongs_to_it(client: httpx.AsyncClient) -> None:
    location = company_location("buyer@acme.example")
    assert location is not None
    cart_id = await new_cart(client)
    outsider = (await tokens(client))["access_token"]
    refused = await update(client, cart_id, customerAccessToken=outsider, companyLocationId=location.id)
    assert refused["userErrors"][0]["code"] == "INVALID_COMPANY_LOCATION"
    member = (await tokens(client, "buyer@acme.example"))["access_token"]
    accepted = await update(client, cart_id, customerAccessToken=member, companyLocationId=location.id)
    assert accepted["cart"]["buyerIdentity"]["purchasingCompany"]["location"]["id"] == location.id
    cleared = await update(client, cart_id, customerAccessToken=None)  # no customer, no company
    assert cleared["cart"]["buyerIdentity"] == {"email": None, "customer": None, "purchasingCompany": None}


async def test_an_unknown_cart_is_a_user_error_on_cart_id(client: httpx.AsyncClient) -> None:
    cart_id = await new_cart(client)
    wrong_key = cart_id.rsplit("=", 1)[0] + "=" + "0" * 32
    payload = await update(client, wrong_key, email="a@b.example")
    assert payload == {
        "cart": None,
        "userErrors": [{"field": ["cartId"], "code": "INVALID", "message": "The specified cart does not exist."}],
    }


async def test_the_checkout_page_needs_the_carts_key(client: httpx.AsyncClient) -> None:
    url = (await call(client, CREATE, PUBLIC))["data"]["cartCreate"]["cart"]["checkoutUrl"]
    assert "Guest checkout" in (await client.get(url)).text
    assert (await client.get(url.rsplit("=", 1)[0] + "=nope")).status_code == 404


@pytest.mark.parametrize(
    ("knob", "body"),
    [
        ("fail", {"status": 418}),
        ("delay", {"seconds": -1}),
        ("domains", {"checkout_origin": "javascript:alert(1)"}),
        ("domains", {"elsewhere": "https://a.example"}),
    ],
)
async def test_bad_knob_bodies_are_400(client: httpx.AsyncClient, knob: str, body: dict[str, Any]) -> None:
    assert (await client.post(f"/_mock/storefront/{knob}", json=body)).status_code == 400


def test_the_cli_takes_the_storefront_tokens() -> None:
    _, config = parse_args(["--storefront-private-token", "p-1", "--storefront-public-token", "q-2"])
    assert (config.storefront_private_token, config.storefront_public_token) == ("p-1", "q-2")
    assert "p-1" not in repr(config)
