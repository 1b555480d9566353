"""The customer's sessions follow the shop: Shopify's customer webhooks, the customer's own list of sessions,
and the operator's `end-sessions --customer-id` (issue 14).

Deliveries come from the stand-in over real HTTP, signed and retried as Shopify does, to real BFF processes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from app.store.sessions import customer_tag
from mock_shopify.customers import customer_number
from mock_shopify.webhooks import signature
from tests.helpers import (
    BFF_URL,
    CSRF,
    Deployment,
    Launcher,
    Process,
    Shop,
    bff_environment,
    gql,
    login,
    make_settings,
    python,
    run,
    running_bff,
    shop_at,
)

SECRET = "whsec-4fQ9zL2mX7pR1vT8kN3bW6yH0cJ5dG"
OLD_SECRET = "whsec-old-Vb7Kq2Wm9Xr4Tz1Ln6Pd3Hs8Fj0Gc"
VICTIM = "deleted.customer@example.com"
OTHER = "another.customer@example.com"


def gid(email: str) -> str:
    return f"gid://shopify/Customer/{customer_number(email)}"


@dataclass
class Pair:
    shop: Shop
    a: Process
    b: Process

    @property
    def hook_url(self) -> str:
        return f"{self.a.url}/webhooks/shopify"


@pytest.fixture(scope="module")
def webhook_processes(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Deployment]:
    launcher = Launcher(tmp_path_factory.mktemp("webhooks"))
    try:
        yield launcher.deployment(redis_url, SHOPIFY_WEBHOOK_SECRET=f"{SECRET},{OLD_SECRET}")
    finally:
        launcher.stop_all()


@pytest.fixture
async def pair(webhook_processes: Deployment) -> AsyncIterator[Pair]:
    async with shop_at(webhook_processes.shop.url) as shop:
        await shop.knob("reset")
        pair = Pair(shop, *webhook_processes.bffs)
        await shop.knob("webhooks", url=pair.hook_url, secret=SECRET)
        yield pair


async def signed_in(at: str, email: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(headers={"User-Agent": "browser"}, timeout=10)
    await login(client, email, at=at)
    return client


def post_hook(
    url: str, topic: str, payload: object, *, secret: str = SECRET, webhook_id: str = "wh-1"
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature(body, secret),
        "X-Shopify-Webhook-Id": webhook_id,
    }
    return httpx.post(url, content=body, headers=headers, timeout=10)


# --- deliveries -----------------------------------------------------------------------------------------


async def test_a_deleted_customer_is_signed_out_on_every_process_and_no_one_else(pair: Pair) -> None:
    on_a, on_b, other = await signed_in(pair.a.url, VICTIM), await signed_in(pair.b.url, VICTIM), None
    other = await signed_in(pair.a.url, OTHER)
    try:
        delivered = await pair.shop.knob("customers/delete", email=VICTIM)
        assert delivered["delivered"] is True and delivered["delivery"]["statuses"] == [200]
        for client, at in ((on_a, pair.b.url), (on_b, pair.a.url)):
            ended = await gql(client, at=at)
            assert ended.status_code == 401 and ended.json()["error"] == "session_expired"
        assert (await gql(other, at=pair.b.url)).status_code == 200
    finally:
        for client in (on_a, on_b, other):
            await client.aclose()


async def test_redaction_leaves_no_record_of_the_customer(pair: Pair, redis_client: aioredis.Redis) -> None:
    client = await signed_in(pair.a.url, VICTIM)
    await client.aclose()
    tag = customer_tag("", gid(VICTIM))
    assert [k async for k in redis_client.scan_iter(match=f"bff:session:{{{tag}}}*")]
    assert (await pair.shop.knob("customers/redact", email=VICTIM))["delivered"] is True
    left = {k.decode().split(":", 2)[1] async for k in redis_client.scan_iter(match=f"*{{{tag}}}*")}
    # What stays is bookkeeping without the customer in it: the delivery's id and when their sessions ended.
    assert left <= {"hook", "cepoch", "rl"}
    async for key in redis_client.scan_iter(match="*"):
        if await redis_client.type(key) == b"string":
            assert VICTIM.encode() not in (await redis_client.get(key) or b"")


async def test_a_forged_delivery_is_refused_every_time_and_changes_nothing(pair: Pair) -> None:
    client = await signed_in(pair.a.url, VICTIM)
    try:
        await pair.shop.knob("webhooks", url=pair.hook_url, secret=SECRET, wrong_secret=True, attempts=2)
        forged = await pair.shop.knob("customers/delete", email=VICTIM)
        assert forged["delivered"] is False and forged["delivery"]["statuses"] == [401, 401]
        unsigned = httpx.post(
            pair.hook_url, json={"id": customer_number(VICTIM)}, headers={"X-Shopify-Topic": "customers/delete"}
        )
        assert unsigned.status_code == 401 and unsigned.json()["error"] == "invalid_signature"
        # Nothing ended at the BFF (the stand-in did end the customer's tokens, so look at the record).
        assert (await client.get(f"{pair.b.url}/auth/session")).json()["authenticated"] is True
    finally:
        await client.aclose()


async def test_a_replayed_delivery_does_nothing_twice(pair: Pair) -> None:
    assert (await pair.shop.knob("customers/delete", email=VICTIM))["delivered"] is True
    client = await signed_in(pair.a.url, VICTIM)  # the customer comes back and signs in again
    try:
        replay = await pair.shop.knob("webhooks/replay")
        assert replay["delivery"]["statuses"] == [200]
        assert (await gql(client, at=pair.b.url)).status_code == 200
    finally:
        await client.aclose()


async def test_a_retried_delivery_after_a_failure_is_delivered(pair: Pair) -> None:
    client = await signed_in(pair.a.url, VICTIM)
    try:
        # The first attempt goes to an address nobody answers; Shopify's retry then reaches the BFF.
        await pair.shop.knob("webhooks", url="http://127.0.0.1:9/webhooks/shopify", secret=SECRET, attempts=1)
        assert (await pair.shop.knob("customers/delete", email=VICTIM))["delivered"] is False
        await pair.shop.knob("webhooks", url=pair.hook_url, secret=SECRET)
        assert (await pair.shop.knob("webhooks/replay"))["delivery"]["statuses"] == [200]
        assert (await gql(client, at=pair.a.url)).status_code == 401
    finally:
        await client.aclose()


def test_the_previous_secret_still_verifies_during_a_rotation(pair: Pair) -> None:
    answer = post_hook(pair.hook_url, "customers/delete", {"id": customer_number(OTHER)}, secret=OLD_SECRET)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("topic", "payload", "status", "code"),
    [
        ("customer_account_settings/update", {"url": "x"}, 200, None),
        ("orders/create", {"id": 1}, 200, None),
        ("customers/delete", {"id": "not-a-number"}, 400, "invalid_request"),
        ("customers/redact", {"customer": {}}, 400, "invalid_request"),
    ],
)
def test_other_topics_are_acknowledged_and_bad_payloads_refused(
    pair: Pair, topic: str, payload: object, status: int, code: str | None
) -> None:
    answer = post_hook(pair.hook_url, topic, payload)
    assert answer.status_code == status
    if code is not None:
        assert answer.json()["error"] == code


def test_an_oversized_delivery_is_413_unread(pair: Pair) -> None:
    answer = post_hook(pair.hook_url, "customers/delete", {"id": 1, "pad": "x" * 70_000})
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"


async def test_without_a_secret_the_endpoint_is_404(shop: Shop, redis_url: str) -> None:
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        answer = await client.post("/webhooks/shopify", content=b"{}")
    assert answer.status_code == 404 and answer.json()["error"] == "webhooks_disabled"


# --- the customer's own list ------------------------------------------------------------------------------

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


async def test_the_sessions_list_shows_the_customers_own_devices_and_ends_one_from_another(
    shop: Shop, redis_url: str
) -> None:
    async with running_bff(make_settings(shop.url, redis_url)) as laptop:
        transport = laptop._transport
        laptop.headers["User-Agent"] = CHROME_MAC
        await login(laptop, "devices@example.com")
        async with (
            httpx.AsyncClient(transport=transport, base_url=BFF_URL, headers={"User-Agent": FIREFOX_LINUX}) as phone,
            httpx.AsyncClient(transport=transport, base_url=BFF_URL) as stranger,
        ):
            await login(phone, "devices@example.com")
            await login(stranger, "stranger@example.com")
            listed = (await laptop.get("/auth/sessions")).json()["sessions"]
            assert sorted(s["device"] for s in listed) == ["Chrome on Mac OS X", "Firefox on Ubuntu"]
            assert [s["current"] for s in listed if s["device"].startswith("Chrome")] == [True]
            sid = laptop.cookies["bff_session"].rsplit(".", 1)[0]
            assert sid not in json.dumps(listed)
            assert all(s["last_used_at"] >= s["created_at"] > 0 for s in listed)

            phone_handle = next(s["handle"] for s in listed if s["device"].startswith("Firefox"))
            refused = await laptop.post(f"/auth/sessions/{phone_handle}/end")  # no CSRF proof
            assert refused.status_code == 403
            assert (await phone.get("/auth/session")).json()["authenticated"] is True

            theirs = (await stranger.get("/auth/sessions")).json()["sessions"][0]["handle"]
            assert (await laptop.post(f"/auth/sessions/{theirs}/end", headers=CSRF)).status_code == 404
            assert (await stranger.get("/auth/session")).json()["authenticated"] is True

            ended = await laptop.post(f"/auth/sessions/{phone_handle}/end", headers=CSRF)
            assert ended.status_code == 200 and ended.json()["current"] is False
            assert (await phone.get("/auth/session")).json() == {"authenticated": False}
            assert (await laptop.get("/auth/session")).json()["authenticated"] is True
            assert len((await laptop.get("/auth/sessions")).json()["sessions"]) == 1


async def test_the_operator_ends_a_customers_sessions_by_customer_id(
    shop: Shop, redis_url: str, tmp_path: Path
) -> None:
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        await login(client, "operator.case@example.com")
        env = {**bff_environment(8000, shop.url), "REDIS_URL": redis_url}
        number = str(customer_number("operator.case@example.com"))
        done = run(python("-m", "app", "end-sessions", "--customer-id", number), cwd=tmp_path, env=env)
        assert f"ended 1 session(s) of gid://shopify/Customer/{number}" in done.stdout
        assert (await client.get("/auth/session")).json() == {"authenticated": False}
