"""One stand-in process serving several shops: each on its own port, with its own credentials, state and knobs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from devkit.redis_server import free_port
from mock_shopify.config import MockConfig
from mock_shopify.keys import KeyRing
from mock_shopify.shops import ServedShop, ShopListing, create_shops_app, running_shops
from mock_shopify.shops_file import load_shops_file
from tests.helpers import ROOT, Process, eventually, python, redirect_query, run

UA = {"User-Agent": "bff-tests/1.0"}
EMAIL = "ada.lovelace@example.com"
# Each shop's one app: (client_id, client_secret, redirect_uri).
APPS = {
    "snowboards": ("snow-client", "snow-secret-1a2b", "http://localhost:8000/auth/callback"),
    "surfboards": ("surf-client", "surf-secret-3c4d", "http://127.0.0.1:8000/auth/callback"),
}
SHOP_IDS = {"snowboards": "1234567890", "surfboards": "2345678901"}
STOREFRONT_TOKENS = {"snowboards": "snow-storefront-private", "surfboards": "surf-storefront-private"}


def shop_config(name: str, url: str) -> MockConfig:
    client_id, secret, redirect_uri = APPS[name]
    return MockConfig(
        base_url=url,
        shop_id=SHOP_IDS[name],
        shop_name=name.title(),
        credentials=[(client_id, secret)],
        redirect_uris=[redirect_uri],
        storefront_private_token=STOREFRONT_TOKENS[name],
    )


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    # One RSA key for the module: generating one per shop per test would dominate the run time.
    return KeyRing.generate_key()


@pytest.fixture
def shops(signing_key: RSAKey) -> Iterator[dict[str, ServedShop]]:
    configs = {name: (lambda url, name=name: shop_config(name, url)) for name in APPS}
    with running_shops(configs, signing_key=signing_key) as served:
        yield served


async def sign_in(shop: ServedShop, client_id: str, redirect_uri: str) -> tuple[str, str]:
    """Sign in on `shop`'s hosted page as the app `client_id`; returns (code, verifier)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    form = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "openid email customer-account-api:full",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "email": EMAIL,
    }
    async with httpx.AsyncClient(base_url=shop.url, headers=UA) as client:
        response = await client.post(f"/authentication/{shop.store.config.shop_id}/oauth/authorize", data=form)
    return redirect_query(response)["code"], verifier


async def exchange(shop: ServedShop, code: str, verifier: str, app: tuple[str, str, str]) -> httpx.Response:
    client_id, secret, redirect_uri = app
    data = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    async with httpx.AsyncClient(base_url=shop.url, headers=UA) as client:
        return await client.post(
            f"/authentication/{shop.store.config.shop_id}/oauth/token", data=data, auth=(client_id, secret)
        )


@pytest.mark.parametrize("name", list(APPS))
async def test_each_shop_exchanges_a_code_with_its_own_credentials(shops: dict[str, ServedShop], name: str) -> None:
    client_id, _, redirect_uri = APPS[name]
    code, verifier = await sign_in(shops[name], client_id, redirect_uri)
    response = await exchange(shops[name], code, verifier, APPS[name])
    assert response.status_code == 200, response.text
    assert response.json()["access_token"].startswith("shcat_")


async def test_a_shop_refuses_the_other_shops_credentials(shops: dict[str, ServedShop]) -> None:
    client_id, _, redirect_uri = APPS["snowboards"]
    code, verifier = await sign_in(shops["snowboards"], client_id, redirect_uri)
    response = await exchange(shops["snowboards"], code, verifier, APPS["surfboards"])
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert shops["snowboards"].store.stats.grants["authorization_code"] == 0


async def test_a_code_from_one_shop_is_unknown_to_the_other(shops: dict[str, ServedShop]) -> None:
    client_id, _, redirect_uri = APPS["surfboards"]
    code, verifier = await sign_in(shops["surfboards"], client_id, redirect_uri)
    # The other shop's own app, its own paths: only the code comes from elsewhere.
    response = await exchange(shops["snowboards"], code, verifier, APPS["snowboards"])
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


async def test_holding_one_shops_discovery_leaves_the_other_answering(shops: dict[str, ServedShop]) -> None:
    held, other = shops["snowboards"].url, shops["surfboards"].url
    async with httpx.AsyncClient(headers=UA, timeout=5) as client:
        assert (await client.post(f"{held}/_mock/hold_discovery", json={"hold": True})).status_code == 200
        waiting = asyncio.create_task(client.get(f"{held}/.well-known/openid-configuration"))
        try:

            async def arrived() -> bool:
                stats: dict[str, Any] = (await client.get(f"{held}/_mock/stats")).json()
                return bool(stats["discovery_requests"] == 1)

            # The held shop has the request and sits on it while the other answers.
            await eventually(arrived, what="the held shop's discovery request")
            answer = await client.get(f"{other}/.well-known/openid-configuration")
            assert (answer.status_code, waiting.done()) == (200, False)
        finally:
            await client.post(f"{held}/_mock/hold_discovery", json={"hold": False})
            await waiting


async def test_each_shop_answers_with_its_own_name(shops: dict[str, ServedShop]) -> None:
    names = {}
    async with httpx.AsyncClient(headers=UA) as client:
        for name, shop in shops.items():
            response = await client.post(
                f"{shop.url}/api/2026-10/graphql.json",
                json={"query": "{ shop { name } }"},
                headers={"Shopify-Storefront-Private-Token": STOREFRONT_TOKENS[name]},
            )
            names[name] = response.json()["data"]["shop"]["name"]
    assert names == {"snowboards": "Snowboards", "surfboards": "Surfboards"}


async def test_a_port_no_shop_listens_on_is_shopifys_404(signing_key: RSAKey) -> None:
    listing = ShopListing(name="a", port=9000, config=MockConfig(base_url="http://127.0.0.1:9000"))
    app = create_shops_app([listing], signing_key=signing_key)
    # ASGITransport reports the URL's port as the server's: a connection that came in on a port of no shop.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:9999") as client:
        response = await client.get("/.well-known/openid-configuration")
    assert (response.status_code, response.json()) == (404, {"errors": "Not Found"})


def test_the_dev_file_lists_two_shops_on_their_own_ports() -> None:
    listings = load_shops_file(ROOT / "mock_shopify" / "dev_shops.toml", host="127.0.0.1")
    assert [(x.name, x.port, x.config.base_url) for x in listings] == [
        ("snowboards", 9000, "http://127.0.0.1:9000"),
        ("surfboards", 9100, "http://127.0.0.1:9100"),
    ]


BAD_FILE = """
[shops.a]
port = 9000
colour = "blue"

[shops.b]
port = 9000
shop_id = 42
redirect_uris = "http://localhost:8000/auth/callback"

[shops.c]
port = 9001
extra_credentials = ["no-colon"]
base_url = "http://127.0.0.1:9001/shop"
"""


def test_cli_with_a_bad_file_prints_a_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "shops.toml"
    path.write_text(BAD_FILE)
    result = run(python("-m", "mock_shopify", "--shops", str(path)), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"{path}: shops.a.colour: unknown key",
        f'{path}: shops.b.shop_id: must be a string of digits, e.g. "1234567890"',
        f"{path}: shops.b.redirect_uris: must be a non-empty list of URL strings",
        f'{path}: shops.c.extra_credentials: must be a list of "ID:SECRET" strings',
        f"{path}: shops.c.base_url: must be an origin such as http://127.0.0.1:9000 (or empty)",
    ]


def test_cli_names_both_shops_of_a_duplicate_port_and_shop_id(tmp_path: Path) -> None:
    path = tmp_path / "shops.toml"
    path.write_text("[shops.a]\nport = 9000\n[shops.b]\nport = 9000\n")
    result = run(python("-m", "mock_shopify", "--shops", str(path)), cwd=tmp_path)
    assert (result.returncode, result.stderr.splitlines()) == (
        2,
        [
            f"{path}: shops.b.port: 9000 is already shops.a's port",
            f"{path}: shops.b.shop_id: 1234567890 is already shops.a's shop_id",
            f"{path}: shops.b.base_url: http://127.0.0.1:9000 is already shops.a's base_url",
        ],
    )


def test_cli_with_a_good_file_serves_each_shop_on_its_port(tmp_path: Path) -> None:
    ports = {"snowboards": free_port(), "surfboards": free_port()}
    path = tmp_path / "shops.toml"
    path.write_text(
        "".join(
            f'[shops.{name}]\nport = {port}\nshop_id = "{SHOP_IDS[name]}"\n'
            f'client_id = "{APPS[name][0]}"\nclient_secret = "{APPS[name][1]}"\n'
            for name, port in ports.items()
        )
    )
    with Process(
        "shops", python("-m", "mock_shopify", "--shops", str(path)), port=ports["snowboards"], workdir=tmp_path
    ) as proc:
        # One server binds every port before it serves any: once one answers, all do.
        proc.wait_ok("/_mock/stats")
        issuers = {
            name: httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", headers=UA).json()["issuer"]
            for name, port in ports.items()
        }
    assert issuers == {name: f"https://shopify.com/authentication/{SHOP_IDS[name]}" for name in ports}


async def test_cli_access_log_names_the_shop(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "shops.toml"
    path.write_text(f"[shops.surfboards]\nport = {port}\n")
    with Process("shops", python("-m", "mock_shopify", "--shops", str(path)), port=port, workdir=tmp_path) as proc:
        proc.wait_ok("/_mock/stats")
        await proc.wait_for_output("surfboards GET /_mock/stats 200")


def test_cli_with_shops_refuses_a_single_shop_option(tmp_path: Path) -> None:
    # Each shop's port is in the file: a --port beside --shops would be silently ignored, so it is refused.
    result = run(python("-m", "mock_shopify", "--shops", "x.toml", "--port", "9000"), cwd=tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments: --port 9000" in result.stderr
