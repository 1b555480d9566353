"""Login → callback → session → logout, and every way a login can be forged or go wrong."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis

from app.store.sessions import session_key
from tests.helpers import (
    BFF_URL,
    CLIENT_ID,
    CSRF,
    LOGOUT_URL,
    STOREFRONT,
    Settings,
    Shop,
    authorize_at_shop,
    login,
    make_settings,
    query_of,
    running_bff,
    start_login,
)


async def session_keys(redis_client: aioredis.Redis) -> set[bytes]:
    return {k async for k in redis_client.scan_iter(match="bff:session:*")}


async def test_round_trip_login_session_logout(bff: httpx.AsyncClient, shop: Shop) -> None:
    assert (await bff.get("/auth/session")).json() == {"authenticated": False}

    authorize_url = await start_login(bff, return_to="/account?tab=orders", locale="fr-CA")
    params = query_of(authorize_url)
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == f"{BFF_URL}/auth/callback"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["locale"] == "fr-CA" and params["state"] and params["nonce"]
    assert "code_verifier" not in authorize_url

    callback = await authorize_at_shop(authorize_url)
    done = await bff.get(callback)
    assert done.status_code == 302
    assert done.headers["location"] == f"{STOREFRONT}/account?tab=orders"
    cookie = done.headers["set-cookie"]
    assert "bff_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "shcat_" not in cookie and "shcrt_" not in cookie

    body = (await bff.get("/auth/session")).json()
    assert body["authenticated"] is True
    assert body["customer"]["email"] == "ada.lovelace@example.com"
    assert body["customer"]["sub"]
    assert isinstance(body["expires_at"], int)
    assert "token" not in str(body).lower()

    stats = await shop.stats()
    assert stats["grants"]["authorization_code"] == 1
    assert stats["last_token_request"]["auth_method"] == "client_secret_basic"
    assert stats["last_token_request"]["user_agent"]

    out = await bff.post("/auth/logout", headers=CSRF)
    assert out.status_code == 303
    end_session = out.headers["location"]
    assert end_session.startswith(f"{shop.url}/authentication/")
    logout_params = query_of(end_session)
    assert logout_params["post_logout_redirect_uri"] == LOGOUT_URL
    assert logout_params["id_token_hint"].count(".") == 2
    assert (await bff.get("/auth/session")).json() == {"authenticated": False}

    # The shop accepts our id_token_hint and post_logout_redirect_uri, and sends the browser home.
    async with httpx.AsyncClient(headers={"User-Agent": "browser"}) as browser:
        at_shop = await browser.get(end_session)
    assert at_shop.status_code == 302 and at_shop.headers["location"] == LOGOUT_URL


async def test_login_creates_a_new_session_id_each_time(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis
) -> None:
    await login(bff)
    first = bff.cookies.get("bff_session")
    await login(bff)
    second = bff.cookies.get("bff_session")
    assert first and second and first != second
    # The pre-login session is deleted, not left behind for a fixation attacker.
    old_sid = first.rsplit(".", 1)[0]
    assert not await redis_client.exists(session_key(old_sid))


async def test_logout_as_form_post_from_allowed_origin(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    out = await bff.post("/auth/logout", headers={"Origin": STOREFRONT})
    assert out.status_code == 303
    assert (await bff.get("/auth/session")).json() == {"authenticated": False}


async def test_logout_json_for_fetch_callers_carries_no_token(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    out = await bff.post("/auth/logout", headers={**CSRF, "Accept": "application/json"})
    assert out.status_code == 200
    continuation = out.json()["redirect_to"]
    assert continuation.startswith(f"{BFF_URL}/auth/logout/continue?c=")
    assert "id_token_hint" not in out.text and "eyJ" not in out.text
    # The browser navigates there; the BFF adds the ID token server-side, once.
    onward = await bff.get(continuation.removeprefix(BFF_URL))
    assert onward.status_code == 303
    assert onward.headers["location"].startswith(f"{shop.url}/authentication/")
    assert query_of(onward.headers["location"])["id_token_hint"].startswith("eyJ")
    again = await bff.get(continuation.removeprefix(BFF_URL))
    assert again.status_code == 303
    assert again.headers["location"] == LOGOUT_URL


@pytest.mark.parametrize(
    "accept",
    ["text/html,application/json;q=0.9", "application/json;q=0", "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"],
)
async def test_logout_answers_anything_but_a_json_preference_with_a_303(
    bff: httpx.AsyncClient, shop: Shop, accept: str
) -> None:
    await login(bff)
    out = await bff.post("/auth/logout", headers={**CSRF, "Accept": accept})
    assert out.status_code == 303
    assert out.headers["location"].startswith(f"{shop.url}/authentication/")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "X-CSRF": "1"},
        {"Origin": "null"},
    ],
    ids=["no-proof", "foreign-origin", "foreign-origin-with-header", "null-origin"],
)
async def test_logout_without_csrf_proof_keeps_the_session(
    bff: httpx.AsyncClient, shop: Shop, headers: dict[str, str]
) -> None:
    await login(bff)
    out = await bff.post("/auth/logout", headers=headers)
    assert out.status_code == 403
    assert out.json()["error"] == "csrf_failed"
    assert (await bff.get("/auth/session")).json()["authenticated"] is True


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "https://localhost:3000.evil.example/",
        "http://localhost:3000@evil.example/",
        "\t//evil.example",
        "data:text/html,hi",
    ],
)
async def test_login_refuses_return_to_off_the_allowlist(bff: httpx.AsyncClient, shop: Shop, return_to: str) -> None:
    response = await bff.get("/auth/login", params={"return_to": return_to})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_return_to"


async def test_path_like_return_to_stays_a_path_on_the_storefront(bff: httpx.AsyncClient, shop: Shop) -> None:
    # An encoded tab is not a second slash: the value is a path on the storefront, never another host.
    done = await login(bff, return_to="/%09/evil.example")
    assert done.headers["location"] == f"{STOREFRONT}/%09/evil.example"


async def test_return_to_on_allowed_origin_and_path(bff: httpx.AsyncClient, shop: Shop) -> None:
    done = await login(bff, return_to=f"{STOREFRONT}/account")
    assert done.headers["location"] == f"{STOREFRONT}/account"
    done = await login(bff, return_to=f"{BFF_URL}/auth/session")
    assert done.headers["location"] == f"{BFF_URL}/auth/session"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"locale": "fr_CA<script>"}, "invalid_request"),
        ({"region_country": "c"}, "invalid_request"),
        ({"prompt": "login"}, "invalid_request"),
    ],
)
async def test_login_rejects_malformed_parameters(
    bff: httpx.AsyncClient, shop: Shop, params: dict[str, str], code: str
) -> None:
    response = await bff.get("/auth/login", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == code


async def test_callback_without_state(bff: httpx.AsyncClient, shop: Shop) -> None:
    response = await bff.get("/auth/callback", params={"code": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_state"


async def test_callback_with_unknown_state(bff: httpx.AsyncClient, shop: Shop) -> None:
    response = await bff.get("/auth/callback", params={"code": "x", "state": "A" * 43})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_state"


async def test_callback_replayed_state_is_rejected(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis
) -> None:
    callback = await authorize_at_shop(await start_login(bff))
    first = await bff.get(callback)
    assert first.status_code == 302
    bff.cookies.clear()
    await bff.get("/auth/login")  # a new binding cookie, so only the state is at fault
    replay = await bff.get(callback)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_state"
    assert "bff_session" not in replay.headers.get("set-cookie", "")


async def test_callback_from_another_browser_is_rejected(
    bff: httpx.AsyncClient, settings: Settings, shop: Shop, redis_client: aioredis.Redis
) -> None:
    callback = await authorize_at_shop(await start_login(bff))
    before = await session_keys(redis_client)
    other = httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL)  # no cookies: another browser
    async with other:
        response = await other.get(callback)
    assert response.status_code == 400
    assert response.json()["error"] == "state_mismatch"
    assert await session_keys(redis_client) == before


async def test_callback_failure_in_a_browser_redirects_with_error_flag(bff: httpx.AsyncClient, shop: Shop) -> None:
    response = await bff.get("/auth/callback", params={"state": "nope"}, headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response.headers["location"] == f"{STOREFRONT}/?login_error=invalid_state"


async def test_prompt_none_without_shop_session_returns_with_error_flag(bff: httpx.AsyncClient, shop: Shop) -> None:
    for accept, expect_redirect in (("text/html,application/xhtml+xml", True), ("application/json", False)):
        authorize_url = await start_login(bff, prompt="none", return_to="/shop")
        async with httpx.AsyncClient(headers={"User-Agent": "browser"}) as browser:
            at_shop = await browser.get(authorize_url)
        assert at_shop.status_code == 302
        callback = at_shop.headers["location"].removeprefix(BFF_URL)
        response = await bff.get(callback, headers={"Accept": accept})
        assert "bff_session" not in response.headers.get("set-cookie", "")
        if expect_redirect:  # a browser navigation goes back to the storefront with a flag
            assert response.status_code == 302
            assert response.headers["location"] == f"{STOREFRONT}/shop?login_error=login_required"
        else:  # an API client gets the JSON error
            assert response.status_code == 400
            assert response.json()["error"] == "login_required"


async def test_code_replay_is_rejected(bff: httpx.AsyncClient, shop: Shop) -> None:
    callback = await authorize_at_shop(await start_login(bff))
    code = query_of(callback)["code"]
    assert (await bff.get(callback)).status_code == 302
    # A second login whose callback carries the already-used code.
    fresh_state = query_of(await start_login(bff))["state"]
    replay = await bff.get("/auth/callback", params={"code": code, "state": fresh_state})
    assert replay.status_code == 400
    assert replay.json()["error"] == "code_rejected"


async def test_wrong_client_secret_fails_login_cleanly(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    settings = make_settings(shop.url, redis_url, shopify_client_secret="wrong-secret-0123456789abcdef")
    async with running_bff(settings) as client:
        before = await session_keys(redis_client)
        callback = await authorize_at_shop(await start_login(client))
        response = await client.get(callback)
    assert response.status_code == 502
    assert response.json()["error"] == "invalid_client"
    assert "wrong-secret" not in response.text
    assert await session_keys(redis_client) == before


@pytest.mark.parametrize("kind", ["bad_signature", "wrong_iss", "wrong_aud", "wrong_nonce", "expired", "unknown_kid"])
async def test_bad_id_token_creates_no_session(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis, kind: str
) -> None:
    await shop.knob("tamper_next_id_token", kind=kind)
    before = await session_keys(redis_client)
    callback = await authorize_at_shop(await start_login(bff))
    response = await bff.get(callback)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_id_token"
    assert await session_keys(redis_client) == before
    assert (await bff.get("/auth/session")).json() == {"authenticated": False}


async def test_signing_key_rotation_is_followed(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)  # caches the JWKS
    await shop.knob("rotate_signing_key", drop_old=True)
    await login(bff)  # a token with a new kid: one refetch, then it verifies
    assert (await bff.get("/auth/session")).json()["authenticated"] is True


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "A" * 43, "A" * 43 + ".forgedsignature", ""],
    ids=["garbage", "unsigned", "bad-signature", "empty"],
)
async def test_tampered_or_unsigned_cookie_is_no_session(bff: httpx.AsyncClient, shop: Shop, cookie: str) -> None:
    await login(bff)
    sid = bff.cookies["bff_session"].rsplit(".", 1)[0]
    bff.cookies.clear()
    forged = cookie.replace("A" * 43, sid)
    bff.cookies.set("bff_session", forged)
    body = (await bff.get("/auth/session")).json()
    assert body == {"authenticated": False}
    response = await bff.post("/graphql", json={"query": "{ customer { id } }"}, headers=CSRF)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


async def test_session_idle_timeout_is_a_redis_ttl(shop: Shop, redis_url: str, redis_client: aioredis.Redis) -> None:
    settings = make_settings(shop.url, redis_url, bff_session_idle_timeout=120, bff_session_absolute_lifetime=600)
    async with running_bff(settings) as client:
        await login(client)
        sid = client.cookies["bff_session"].rsplit(".", 1)[0]
        ttl = await redis_client.pttl(session_key(sid))
        assert 110_000 < ttl <= 120_000
        # The absolute deadline caps the TTL: pretend the session is nearly at its end.
        key = session_key(sid)
        stored = await redis_client.get(key)
        assert isinstance(stored, bytes)
        _, rest = stored.split(b":", 1)
        await redis_client.set(key, b"1:" + rest, keepttl=True)
        assert (await client.get("/auth/session")).json() == {"authenticated": False}
        assert not await redis_client.exists(session_key(sid))


async def test_errors_are_json_never_stack_traces(bff: httpx.AsyncClient, shop: Shop) -> None:
    for response, status, code in (
        (await bff.get("/nope"), 404, "not_found"),
        (await bff.put("/auth/logout"), 405, "method_not_allowed"),
        (await bff.get("/auth/callback", params={"state": "x" * 500}), 400, "invalid_request"),
    ):
        assert response.status_code == status
        assert set(response.json()) == {"error", "detail"}
        assert response.json()["error"] == code
        assert "Traceback" not in response.text
