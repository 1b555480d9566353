"""Behaving like a real shop does: Shopify's login options, error classes and URL shapes (issue 12).

Every test talks to the stand-in over real HTTP; where Shopify's behaviour is unconfirmed, the stand-in has a
knob (`/_mock/fidelity`) and the test says which side of it the BFF must cope with.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from app.rates import Rate
from app.store.sessions import session_key
from tests.helpers import (
    BFF_URL,
    CLIENT_ID,
    STOREFRONT,
    Settings,
    Shop,
    authorize_at_shop,
    bff_environment,
    gql,
    login,
    login_with_expired_token,
    make_settings,
    python,
    query_of,
    run,
    running_bff,
    start_login,
)

BROWSER = {"Accept": "text/html,application/xhtml+xml"}


def error_lines(logs: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("level") == "error"]


# --- 1. login options ------------------------------------------------------------------------------


async def test_social_login_and_auto_submit_reach_the_shop(bff: httpx.AsyncClient, shop: Shop) -> None:
    authorize = await start_login(
        bff, acr_values="provider:google", login_hint="grace@example.com", login_hint_mode="submit", locale="ZH_CN"
    )
    params = query_of(authorize)
    assert params["acr_values"] == "provider:google"
    assert params["login_hint_mode"] == "submit" and params["locale"] == "zh-CN"
    # The shop signs the hinted customer in without showing its form: straight back to the callback.
    async with httpx.AsyncClient(headers={"User-Agent": "browser"}) as browser:
        at_shop = await browser.get(authorize)
    assert at_shop.status_code == 302 and at_shop.headers["location"].startswith(f"{BFF_URL}/auth/callback?")
    assert (await bff.get(at_shop.headers["location"])).status_code == 302
    assert (await bff.get("/auth/session")).json()["customer"]["email"] == "grace@example.com"


@pytest.mark.parametrize(
    ("given", "sent"), [("zh_CN", "zh-CN"), ("ZH_CN", "zh-CN"), ("zh-cn", "zh-CN"), ("EN", "en"), ("pt-br", "pt-BR")]
)
async def test_locales_are_normalised_like_shopifys_own_client(bff: httpx.AsyncClient, given: str, sent: str) -> None:
    assert query_of(await start_login(bff, locale=given))["locale"] == sent


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"locale": "zh_CN_x"}, "locale"),
        ({"locale": "english"}, "locale"),
        ({"acr_values": "google"}, "acr_values"),
        ({"acr_values": "provider:goo gle<"}, "acr_values"),
        ({"login_hint_mode": "auto", "login_hint": "a@example.com"}, "login_hint_mode"),
        ({"login_hint_mode": "submit"}, "login_hint"),
        ({"login_hint": "not an email"}, "login_hint"),
    ],
)
async def test_unknown_login_option_forms_are_a_400_naming_the_parameter(
    bff: httpx.AsyncClient, params: dict[str, str], named: str
) -> None:
    response = await bff.get("/auth/login", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and named in response.json()["detail"]


# --- 2. PKCE as a setting ---------------------------------------------------------------------------


async def test_pkce_off_sends_no_challenge_and_the_login_works(shop: Shop, redis_url: str) -> None:
    async with running_bff(make_settings(shop.url, redis_url, shopify_pkce=False)) as client:
        authorize = await start_login(client)
        assert "code_challenge" not in query_of(authorize)
        # The stand-in refuses a verifier for a code issued without a challenge: none was sent.
        assert (await client.get(await authorize_at_shop(authorize))).status_code == 302
        assert (await client.get("/auth/session")).json()["authenticated"] is True


async def test_a_shop_refusing_pkce_from_a_confidential_client_names_the_setting(shop: Shop, redis_url: str) -> None:
    await shop.knob("fidelity", confidential_pkce="refused")  # unconfirmed Shopify behaviour, as a knob
    logs = io.StringIO()
    async with running_bff(make_settings(shop.url, redis_url), log_stream=logs) as client:
        callback = await authorize_at_shop(await start_login(client, return_to="/account"))
        failed = await client.get(callback, headers=BROWSER)
    assert failed.headers["location"] == f"{STOREFRONT}/account?login_error=token_endpoint_error"
    assert any("SHOPIFY_PKCE" in str(line["event"]) for line in error_lines(logs))
    async with running_bff(make_settings(shop.url, redis_url, shopify_pkce=False)) as client:
        assert (await login(client)).status_code == 302


# --- 3. a lost login state recovers once ----------------------------------------------------------------


async def test_a_callback_in_another_browser_restarts_the_login_once(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis
) -> None:
    callback = await authorize_at_shop(await start_login(bff, return_to="/account"))
    # The in-app browser handed the page to the system browser, which has none of the BFF's cookies.
    async with httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL, headers=BROWSER) as system:
        restarted = await system.get(callback)
        assert restarted.status_code == 302
        again = restarted.headers["location"]
        assert again.startswith(f"{shop.url}/") and "/oauth/authorize?" in again
        assert "bff_session" not in restarted.headers.get("set-cookie", "")
        assert system.cookies.get("bff_login")
        assert (await shop.stats())["grants"]["authorization_code"] == 0  # the first code was never redeemed

        done = await system.get(await authorize_at_shop(again))
        assert done.status_code == 302 and done.headers["location"] == f"{STOREFRONT}/account"
        assert (await system.get("/auth/session")).json()["authenticated"] is True


async def test_a_second_lost_state_ends_with_the_login_error(bff: httpx.AsyncClient, shop: Shop) -> None:
    callback = await authorize_at_shop(await start_login(bff))
    async with httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL, headers=BROWSER) as second:
        again = (await second.get(callback)).headers["location"]
        second_callback = await authorize_at_shop(again)
    async with httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL, headers=BROWSER) as third:
        ended = await third.get(second_callback)
    assert ended.status_code == 302
    assert ended.headers["location"] == f"{STOREFRONT}/?login_error=state_mismatch"
    assert (await shop.stats())["grants"]["authorization_code"] == 0


# --- 4. error= before state ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", [None, "mangled", "A" * 43])
async def test_an_error_without_a_usable_state_returns_the_customer_with_the_error(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis, state: str | None
) -> None:
    params = {"error": "login_required", "error_description": "End-User authentication required."}
    if state is not None:
        params["state"] = state
    before = {k async for k in redis_client.scan_iter(match="bff:session:*")}
    response = await bff.get("/auth/callback", params=params, headers=BROWSER)
    assert response.status_code == 302
    assert response.headers["location"] == f"{STOREFRONT}/?login_error=login_required"
    assert "bff_session" not in response.headers.get("set-cookie", "")
    assert {k async for k in redis_client.scan_iter(match="bff:session:*")} == before


async def test_an_error_with_a_code_redeems_nothing(bff: httpx.AsyncClient, shop: Shop) -> None:
    callback = await authorize_at_shop(await start_login(bff, return_to="/shop"))
    response = await bff.get(f"{callback}&error=access_denied", headers=BROWSER)
    assert response.headers["location"] == f"{STOREFRONT}/shop?login_error=access_denied"
    assert (await shop.stats())["grants"]["authorization_code"] == 0


# --- 5. the token endpoint's 401s ----------------------------------------------------------------------


@pytest.mark.parametrize("error", ["invalid_client", "unauthorized_client", "invalid_token"])
async def test_misconfiguration_at_refresh_is_a_502_named_in_logs_readyz_and_session_never_a_logout(
    shop: Shop, redis_url: str, error: str
) -> None:
    logs = io.StringIO()
    async with running_bff(make_settings(shop.url, redis_url), log_stream=logs) as client:
        await login_with_expired_token(client, shop)
        await shop.knob("fail_token", status=401, error=error, count=100)
        refused = await gql(client)
        assert refused.status_code == 502 and refused.json()["error"] == "invalid_client"
        status = (await client.get("/auth/session")).json()
        assert status["authenticated"] is True and status["degraded"] == "invalid_client"
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["token_endpoint"] == {"last_error": "invalid_client", "reason": error}
        named = [str(line["event"]) for line in error_lines(logs)]
        assert any(error in line and ("SHOPIFY_CLIENT" in line or "Confidential" in line) for line in named)

        await shop.knob("fail_token", status=401, count=0)  # fixed: the same session goes on
        assert (await gql(client)).status_code == 200
        assert "degraded" not in (await client.get("/auth/session")).json()
        assert "token_endpoint" not in (await client.get("/readyz")).json()


async def test_misconfiguration_is_counted_by_reason(shop: Shop, redis_url: str) -> None:
    settings = make_settings(shop.url, redis_url, bff_metrics_listener="public")
    async with running_bff(settings) as client:
        await login_with_expired_token(client, shop)
        await shop.knob("fail_token", status=401, error="invalid_token", count=1)
        assert (await gql(client)).status_code == 502
        metrics = (await client.get("/metrics")).text
    assert 'bff_token_endpoint_misconfigured_total{reason="invalid_token"} 1.0' in metrics


async def test_a_transient_401_keeps_the_session_and_says_degraded(shop: Shop, redis_url: str) -> None:
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        await login_with_expired_token(client, shop)
        await shop.knob("fail_token", status=401, error="empty", count=100)
        failed = await gql(client)
        assert failed.status_code == 503 and failed.json()["error"] == "token_endpoint_unavailable"
        status = (await client.get("/auth/session")).json()
        assert status["authenticated"] is True and status["degraded"] == "token_endpoint_unavailable"
        await shop.knob("fail_token", status=401, count=0)
        assert (await gql(client)).status_code == 200


async def test_a_dead_refresh_token_ends_the_session_at_auth_session(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        await login_with_expired_token(client, shop)
        sid = client.cookies["bff_session"].rsplit(".", 1)[0]
        await shop.knob("revoke_refresh_tokens")
        assert (await client.get("/auth/session")).json() == {"authenticated": False}
        assert not await redis_client.exists(session_key(sid))


# --- 6. GraphQL error shapes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (402, "This shop's plan does not have access to this feature"),
        (403, "User does not have access"),
        (423, "This shop is unavailable"),
    ],
)
async def test_shopifys_http_errors_pass_through_unchanged(
    bff: httpx.AsyncClient, shop: Shop, status: int, message: str
) -> None:
    await login(bff)
    await shop.knob("fail_graphql", status=status)
    response = await gql(bff)
    assert response.status_code == status
    assert response.json() == {"errors": message}


async def test_shopifys_per_customer_limit_passes_through_with_retry_after(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)  # its one `customer { id }` call counts at Shopify too
    await shop.knob("settings", customer_requests_per_minute=3)
    assert [(await gql(bff)).status_code for _ in range(2)] == [200, 200]
    throttled = await gql(bff)
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert int(throttled.headers["retry-after"]) >= 1


def test_the_default_per_customer_limit_sits_below_shopifys() -> None:
    customer = Rate.parse(Settings.model_fields["bff_rate_limit_graphql_customer"].default)
    assert customer.amount * 60 / customer.period < 3000


# --- 7. discovery like a browser ------------------------------------------------------------------------


async def test_discovery_follows_a_redirect_within_the_shops_domain(shop: Shop, redis_url: str) -> None:
    await shop.knob("discovery_redirect", to=f"{shop.url}/_moved", status=301)
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        assert (await login(client)).status_code == 302


async def test_discovery_refuses_a_redirect_to_another_host(shop: Shop, redis_url: str) -> None:
    elsewhere = shop.url.replace("127.0.0.1", "localhost")  # the same server under another name
    await shop.knob("discovery_redirect", to=f"{elsewhere}/_moved", status=302)
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        refused = await client.get("/auth/login")
        assert refused.status_code == 502 and refused.json()["error"] == "discovery_failed"
        assert "myshopify.com" in refused.json()["detail"]
        assert (await client.get("/readyz")).json()["checks"]["discovery"] == "discovery_failed"


@pytest.mark.parametrize(
    "layout", [{"graphql_shape": "account"}, {"auth_layout": "custom_domain"}, {"reject_bearer": False}]
)
async def test_the_whole_flow_works_on_each_url_shape_shopify_advertises(
    shop: Shop, redis_url: str, layout: dict[str, object]
) -> None:
    await shop.knob("fidelity", **layout)
    async with running_bff(make_settings(shop.url, redis_url)) as client:
        await login_with_expired_token(client, shop)  # the first call refreshes: the token endpoint too
        assert (await gql(client)).status_code == 200
        assert (await client.post("/auth/logout", headers={"X-CSRF": "1"})).status_code == 303


def doctor(shop: Shop, redis_url: str, cwd: Path, **env: str) -> str:
    base = {**bff_environment(8000, shop.url), "REDIS_URL": redis_url}
    return run(python("-m", "app", "doctor"), cwd=cwd, env={**base, **env}).stdout


async def test_doctor_checks_the_credentials_the_version_and_pkce(shop: Shop, redis_url: str, tmp_path: Path) -> None:
    out = doctor(shop, redis_url, tmp_path, SHOPIFY_API_VERSION="2025-01")
    assert f"ok    Shopify accepts SHOPIFY_CLIENT_SECRET for client {CLIENT_ID}" in out
    assert "the shop advertises 2026-10" in out and "2025-01 is" in out and "months old" in out
    assert "SHOPIFY_PKCE=false" in out

    wrong = doctor(shop, redis_url, tmp_path, SHOPIFY_CLIENT_SECRET="not-the-right-secret-0123456789")
    assert "FAIL  Shopify refuses SHOPIFY_CLIENT_SECRET" in wrong and "invalid_client" in wrong
    assert "not-the-right-secret" not in wrong
