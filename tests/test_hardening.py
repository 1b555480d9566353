"""Credential and key rotation without logouts, tokens encrypted at rest, log out everywhere, rate limits,
the GraphQL allowlist and depth limit, and security headers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from devkit.redis_server import RedisProcess, free_port, redis_binary
from mock_shopify.customers import customer_number
from mock_shopify.webhooks import signature
from tests.helpers import (
    BFF_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    CSRF,
    INDEX_PRUNE_AT,
    LOGOUT_URL,
    SESSION_SECRET,
    STOREFRONT,
    Clock,
    RateLimits,
    RedisConnections,
    Settings,
    Shop,
    authorize_at_shop,
    create_app,
    eventually,
    gql,
    login,
    make_settings,
    python,
    query_of,
    run,
    running_bff,
    start_login,
)

NEW_SECRET = "rotated-client-7Hq2xZ9kP4mW1vB6"
OTHER_SESSION_SECRET = "Pz8rT2vK9qW4xN7mB1cJ5hL3dF6gS0aY"


@asynccontextmanager
async def bff_app(
    shop: Shop, redis_url: str, *, clock: Clock | None = None, peer: str = "127.0.0.1", **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """One BFF 'deployment' with these settings; the client is a browser (at `peer`) that keeps cookies."""
    settings = make_settings(shop.url, redis_url, **overrides)
    async with running_bff(settings, clock=clock or Clock(), client_ip=peer) as client:
        yield client


def adopt(client: httpx.AsyncClient, cookie: str) -> None:
    """Give this browser a session cookie obtained elsewhere (another deployment of the BFF)."""
    client.cookies.clear()
    client.cookies.set("bff_session", cookie, domain="127.0.0.1", path="/")


async def expire_tokens(shop: Shop) -> None:
    """Make the next GraphQL call find its access token dead at Shopify (one reactive refresh)."""
    await shop.knob("expire_access_tokens")


# --- Shopify credential rotation --------------------------------------------------------------------


async def test_credential_rotation_keeps_every_session(shop: Shop, redis_url: str) -> None:
    # Before: one credential. A customer logs in.
    async with bff_app(shop, redis_url) as before:
        await login(before)
        cookies = before.cookies["bff_session"]

    # The merchant generates a new secret; both are valid. The BFF is deployed with new + previous.
    await shop.knob("credentials", add={"client_id": CLIENT_ID, "client_secret": NEW_SECRET})
    rotated: dict[str, Any] = {
        "shopify_client_secret": NEW_SECRET,
        "shopify_previous_client_secret": CLIENT_SECRET,
        "bff_metrics_listener": "public",
    }
    async with bff_app(shop, redis_url, **rotated) as during:
        adopt(during, cookies)
        await expire_tokens(shop)
        assert (await gql(during)).status_code == 200  # refreshed with the credential it was issued to
        metrics = (await during.get("/metrics")).text
        assert "bff_previous_credential_uses_total 1.0" in metrics

        # New logins use the new credential.
        async with httpx.AsyncClient(transport=during._transport, base_url=BFF_URL) as newcomer:
            await login(newcomer)
            assert (await gql(newcomer)).status_code == 200
            new_cookies = newcomer.cookies["bff_session"]

        # The merchant revokes the old secret: old sessions fall back to the new one, once.
        await shop.knob("credentials", revoke_secret=CLIENT_SECRET)
        await expire_tokens(shop)
        assert (await gql(during)).status_code == 200
        assert (await during.get("/auth/session")).json()["authenticated"] is True

    # After: only the new credential is configured; both customers are still logged in.
    async with bff_app(shop, redis_url, shopify_client_secret=NEW_SECRET) as after:
        for jar in (cookies, new_cookies):
            adopt(after, jar)
            await expire_tokens(shop)
            assert (await gql(after)).status_code == 200
    assert (await shop.stats())["last_token_request"]["auth_method"] == "client_secret_basic"


async def test_invalid_client_with_no_fallback_keeps_the_session(shop: Shop, redis_url: str) -> None:
    async with bff_app(shop, redis_url) as client:
        await login(client)
        await shop.knob("credentials", add={"client_id": CLIENT_ID, "client_secret": NEW_SECRET})
        await shop.knob("credentials", revoke_secret=CLIENT_SECRET)
        await expire_tokens(shop)
        response = await gql(client)
        assert response.status_code == 502
        assert response.json()["error"] == "invalid_client"
        # A misconfiguration is not the customer's fault: the session stays for when it is fixed.
        assert (await client.get("/auth/session")).json()["authenticated"] is True
        cookies = client.cookies["bff_session"]
    async with bff_app(shop, redis_url, shopify_client_secret=NEW_SECRET) as fixed:
        adopt(fixed, cookies)
        assert (await gql(fixed)).status_code == 200


# --- Cookie signing keys and token encryption keys ---------------------------------------------------


async def test_cookie_signing_key_rotation(shop: Shop, redis_url: str) -> None:
    async with bff_app(shop, redis_url) as old:
        await login(old)
        old_cookie = old.cookies["bff_session"]

    both = f"{OTHER_SESSION_SECRET},{SESSION_SECRET}"
    async with bff_app(shop, redis_url, bff_session_secret=both) as rotating:
        adopt(rotating, old_cookie)
        response = await rotating.get("/auth/session")
        assert response.json()["authenticated"] is True
        assert "bff_session=" in response.headers["set-cookie"]  # re-signed with the new key
        new_cookie = rotating.cookies["bff_session"]
        assert new_cookie != old_cookie
        assert new_cookie.split(".")[0] == old_cookie.split(".")[0]  # same session, new signature

    # Once the old key is dropped, the re-signed cookie still works and the old one does not.
    async with bff_app(
        shop, redis_url, bff_session_secret=OTHER_SESSION_SECRET, bff_token_encryption_keys=None
    ) as new_only:
        adopt(new_only, old_cookie)
        assert (await new_only.get("/auth/session")).json()["authenticated"] is False


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


async def test_token_encryption_key_rotation(shop: Shop, redis_url: str) -> None:
    k1, k2 = _key(), _key()
    async with bff_app(shop, redis_url, bff_token_encryption_keys=k1) as first:
        await login(first)
        cookies = first.cookies["bff_session"]
    async with bff_app(shop, redis_url, bff_token_encryption_keys=f"{k2},{k1}") as rotating:
        adopt(rotating, cookies)
        await expire_tokens(shop)
        assert (await gql(rotating)).status_code == 200  # read with k1, re-written with k2 on refresh
    async with bff_app(shop, redis_url, bff_token_encryption_keys=k2) as second:
        adopt(second, cookies)
        assert (await gql(second)).status_code == 200
    async with bff_app(shop, redis_url, bff_token_encryption_keys=k1) as stale:
        adopt(stale, cookies)
        assert (await stale.get("/auth/session")).json()["authenticated"] is False


async def test_redis_holds_no_usable_token(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis, redis_server: RedisProcess | None
) -> None:
    await bff.get("/auth/login")  # a pending login (PKCE verifier, nonce) sits in Redis too
    await login(bff)
    assert (await gql(bff)).status_code == 200
    access_token = (await shop.stats())["last_graphql_request"]["authorization"]
    blob = b""
    async for key in redis_client.scan_iter(match="bff:*"):
        kind = await redis_client.type(key)
        if kind == b"hash":
            for field, value in (await redis_client.hgetall(key)).items():
                assert isinstance(field, bytes) and isinstance(value, bytes)
                blob += field + value
        elif kind == b"string":
            stored = await redis_client.get(key)  # None: expired since the scan
            assert isinstance(stored, bytes | None)
            blob += stored or b""
    if redis_server is not None:  # the on-disk dump, as an attacker with a backup would see it
        await redis_client.save()
        blob += (Path(redis_server.workdir) / "dump.rdb").read_bytes()
    # The ID token itself, and its JOSE header (the start of any token from this signer); a bare "eyJ" also
    # turns up by chance in random session ids, one run in a few dozen.
    out = await bff.post("/auth/logout", headers=CSRF)
    id_token = query_of(out.headers["location"])["id_token_hint"]
    jose_header = id_token.split(".")[0]
    for secret in (access_token, id_token, jose_header, "shcat_", "shcrt_", "code_verifier", "nonce"):
        assert secret.encode() not in blob, secret


# --- Log out everywhere ---------------------------------------------------------------------------------


async def test_logout_everywhere_ends_only_that_customers_sessions(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis
) -> None:
    other_browser = httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL)
    someone_else = httpx.AsyncClient(transport=bff._transport, base_url=BFF_URL)
    async with other_browser, someone_else:
        await login(bff, "ada.lovelace@example.com")
        await login(other_browser, "ada.lovelace@example.com")
        await login(someone_else, "grace.hopper@example.com")
        out = await bff.post("/auth/logout", params={"everywhere": "true"}, headers=CSRF)
        assert out.status_code == 303
        assert (await other_browser.get("/auth/session")).json() == {"authenticated": False}
        assert (await someone_else.get("/auth/session")).json()["authenticated"] is True


async def test_a_login_that_races_logout_everywhere_does_not_survive_it(shop: Shop, redis_url: str) -> None:
    """Instance A logs the customer out everywhere; instance B was storing a login that began before (B's
    clock is behind A's by two minutes here, which is how the race looks once A has read the index)."""
    later = Clock()
    later.advance(120)
    email = "race.everywhere@example.com"
    async with bff_app(shop, redis_url, clock=later) as a, bff_app(shop, redis_url, clock=Clock()) as b:
        await login(a, email)
        assert (await a.post("/auth/logout", params={"everywhere": "true"}, headers=CSRF)).status_code == 303
        raced = await b.get((await authorize_at_shop(await start_login(b), email)).removeprefix(BFF_URL))
        assert raced.status_code == 401
        assert raced.json()["error"] == "session_expired"
        assert (await b.get("/auth/session")).json() == {"authenticated": False}
        later.advance(1)  # a login after the logout everywhere is a login like any other
        await login(a, email)
        assert (await a.get("/auth/session")).json()["authenticated"] is True


async def test_a_login_that_races_a_customer_deletion_webhook_does_not_survive_it(shop: Shop, redis_url: str) -> None:
    """As above, for Shopify's `customers/delete`: instance A ends the customer's sessions by their Shopify
    id; instance B, two minutes behind, was storing a login that began before. Its record and that index are
    written by one script, which also reads the index's epoch, so the login voids itself."""
    secret = "webhook-secret-Vb7qK2xP9mZ4"
    later = Clock()
    later.advance(120)
    email = "race.webhook@example.com"
    hook = json.dumps({"id": customer_number(email)}).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "customers/delete",
        "X-Shopify-Hmac-Sha256": signature(hook, secret),
        "X-Shopify-Webhook-Id": "race-1",
    }
    async with (
        bff_app(shop, redis_url, clock=later, shopify_webhook_secret=secret) as a,
        bff_app(shop, redis_url, clock=Clock()) as b,
    ):
        assert (await a.post("/webhooks/shopify", content=hook, headers=headers)).status_code == 200
        raced = await b.get((await authorize_at_shop(await start_login(b), email)).removeprefix(BFF_URL))
        assert raced.status_code == 401
        assert raced.json()["error"] == "session_expired"
        assert (await b.get("/auth/session")).json() == {"authenticated": False}


async def test_operator_ends_a_customers_sessions_from_the_command_line(
    bff: httpx.AsyncClient, shop: Shop, settings: Settings, tmp_path: Path
) -> None:
    await login(bff, "alan.turing@example.com")
    sub = (await bff.get("/auth/session")).json()["customer"]["sub"]
    env = {
        "SHOPIFY_SHOP_DOMAIN": shop.url,
        "SHOPIFY_CLIENT_ID": CLIENT_ID,
        "SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_PUBLIC_URL": BFF_URL,
        "BFF_POST_LOGOUT_REDIRECT_URL": LOGOUT_URL,
        "BFF_SESSION_SECRET": SESSION_SECRET,
        "REDIS_URL": settings.redis_url,
    }
    done = run(python("-m", "app", "end-sessions", "--sub", sub), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "ended 1 session" in done.stdout

    async def signed_out() -> bool:
        answer: object = (await bff.get("/auth/session")).json()
        return answer == {"authenticated": False}

    # Another process ended it: a copy this process holds is dropped when Redis's invalidation arrives.
    await eventually(signed_out, what="the session ended by end-sessions refused")


async def customer_index(redis_client: aioredis.Redis, client: httpx.AsyncClient) -> bytes:
    """The Redis key of the index that holds this browser's session."""
    sid = client.cookies["bff_session"].rsplit(".", 1)[0]
    found: list[bytes] = [
        k async for k in redis_client.scan_iter(match="bff:customer:*") if await redis_client.zscore(k, sid)
    ]
    (index,) = found
    return index


async def test_a_replaced_session_leaves_the_customer_index_at_once(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis
) -> None:
    for _ in range(5):  # each login replaces the browser's previous session
        await login(bff, "index.replace@example.com")
    index = await customer_index(redis_client, bff)
    assert await redis_client.zcard(index) == 1
    assert await redis_client.pttl(index) > 0


async def test_the_customer_index_prunes_sessions_that_expired(
    bff: httpx.AsyncClient, shop: Shop, redis_client: aioredis.Redis
) -> None:
    email = "index.prune@example.com"
    for _ in range(INDEX_PRUNE_AT + 1):  # as many browsers, each with its own session
        bff.cookies.clear()
        await login(bff, email)
    index = await customer_index(redis_client, bff)
    assert await redis_client.zcard(index) == INDEX_PRUNE_AT + 1
    async for key in redis_client.scan_iter(match="bff:session:*"):  # they all expire, as idle sessions do
        await redis_client.delete(key)
    bff.cookies.clear()
    await login(bff, email)  # the index is over INDEX_PRUNE_AT: the dead are pruned
    assert await redis_client.zcard(await customer_index(redis_client, bff)) == 1


# --- Rate limits ------------------------------------------------------------------------------------------


async def test_login_rate_limit_trips_and_recovers(shop: Shop, redis_url: str) -> None:
    clock = Clock()
    async with bff_app(shop, redis_url, clock=clock, bff_rate_limit_login="3/second") as client:
        codes = [(await client.get("/auth/login")).status_code for _ in range(4)]
        assert codes == [302, 302, 302, 429]
        limited = await client.get("/auth/login")
        assert limited.json()["error"] == "rate_limited"
        assert limited.headers["retry-after"] == "1"
        # X-Forwarded-For from an untrusted peer is ignored: no way around the limit.
        spoofed = await client.get("/auth/login", headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status_code == 429

        clock.advance(1)  # the next window
        assert (await client.get("/auth/login")).status_code == 302


async def test_trusted_proxy_forwarded_for_is_used(shop: Shop, redis_url: str) -> None:
    async with bff_app(shop, redis_url, bff_rate_limit_login="2/minute", bff_trusted_proxies="127.0.0.1/32") as client:
        for _ in range(2):
            assert (await client.get("/auth/login", headers={"X-Forwarded-For": "198.51.100.1"})).status_code == 302
        assert (await client.get("/auth/login", headers={"X-Forwarded-For": "198.51.100.1"})).status_code == 429
        # Another client behind the same proxy has its own budget; a spoofed leftmost entry changes nothing.
        other = {"X-Forwarded-For": "198.51.100.1, 198.51.100.2"}
        assert (await client.get("/auth/login", headers=other)).status_code == 302


async def test_every_forwarded_for_line_counts_behind_a_proxy_that_appends_its_own(shop: Shop, redis_url: str) -> None:
    """HAProxy's `option forwardfor` adds a second header line: the client's own first line is not the answer."""
    async with bff_app(shop, redis_url, bff_rate_limit_login="2/minute", bff_trusted_proxies="127.0.0.1/32") as client:
        codes = []
        for spoofed in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            lines = [("X-Forwarded-For", spoofed), ("X-Forwarded-For", "198.51.100.9")]  # ours last
            codes.append((await client.get("/auth/login", headers=lines)).status_code)
        assert codes == [302, 302, 429]


@pytest.mark.parametrize(
    ("hop", "proxy"),
    [
        ("not-an-ip", "192.0.2.31"),
        ("a" * 12_000, "192.0.2.32"),
        ("198.51.100.1 OR 1=", "192.0.2.33"),
        ("999.1.1.", "192.0.2.34"),
    ],
)
async def test_a_forwarded_for_hop_that_is_not_an_address_counts_as_the_proxy(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis, hop: str, proxy: str
) -> None:
    async with bff_app(
        shop, redis_url, peer=proxy, bff_rate_limit_login="2/minute", bff_trusted_proxies="192.0.2.0/24"
    ) as client:
        codes = [
            (await client.get("/auth/login", headers={"X-Forwarded-For": f"{hop}{i}"})).status_code for i in range(3)
        ]
    assert codes == [302, 302, 429]  # all three counted against the proxy, whatever the garbage
    keys = [key async for key in redis_client.scan_iter(match="bff:rl:*")]
    assert max(len(key) for key in keys) < 200


async def test_uvicorns_own_proxy_headers_do_not_override_the_bffs_rules(shop: Shop, redis_url: str) -> None:
    """`uvicorn app.main:create_app --factory` (as `make dev` runs it) rewrites the peer from X-Forwarded-For
    for connections from 127.0.0.1; with no BFF_TRUSTED_PROXIES the BFF must still count the TCP peer."""
    settings = make_settings(shop.url, redis_url, bff_rate_limit_login="2 per 1 minute")  # a key of its own
    async with LifespanManager(create_app(settings, clock=Clock())) as manager:
        proxied = ProxyHeadersMiddleware(manager.app, trusted_hosts="127.0.0.1")  # type: ignore[arg-type]
        # uvicorn types ASGI callables more narrowly than Starlette and httpx do; the protocol is the same.
        transport = httpx.ASGITransport(app=proxied, client=("127.0.0.1", 50000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url=BFF_URL) as client:
            codes = [
                (await client.get("/auth/login", headers={"X-Forwarded-For": f"203.0.113.{i}"})).status_code
                for i in range(3)
            ]
    assert codes == [302, 302, 429]


async def test_a_login_flood_is_bounded_and_existing_sessions_keep_working(
    shop: Shop, redis_url: str, redis_client: aioredis.Redis
) -> None:
    clock = Clock()
    overrides: dict[str, Any] = {"bff_max_pending_logins": "10", "bff_trusted_proxies": "127.0.0.1/32"}
    async with bff_app(shop, redis_url, clock=clock, **overrides) as client:
        await login(client, "flood.survivor@example.com")
        before = len([k async for k in redis_client.scan_iter(match="bff:login:*")])
        # Ten more from ten addresses (no per-IP limit helps), then the bound: 503 with Retry-After.
        codes = []
        for i in range(11):
            started = await client.get("/auth/login", headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})
            codes.append(started.status_code)
        assert codes == [302] * 9 + [503, 503]  # the survivor's login was the first of the ten
        refused = await client.get("/auth/login", headers={"X-Forwarded-For": "203.0.113.99"})
        assert refused.json()["error"] == "login_capacity" and int(refused.headers["retry-after"]) >= 1
        assert len([k async for k in redis_client.scan_iter(match="bff:login:*")]) - before == 9
        await expire_tokens(shop)  # the signed-in customer is untouched, refresh included
        assert (await gql(client)).status_code == 200
        clock.advance(600)  # the next window: logins start again
        assert (await client.get("/auth/login")).status_code == 302


async def test_graphql_rate_limit_per_session(shop: Shop, redis_url: str) -> None:
    clock = Clock()
    async with bff_app(shop, redis_url, clock=clock, bff_rate_limit_graphql="3/second") as client:
        await login(client)
        codes = [(await gql(client)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await gql(client)
        assert limited.json()["error"] == "rate_limited" and limited.headers["retry-after"] == "1"

        clock.advance(1)  # the next window
        assert (await gql(client)).status_code == 200


async def test_graphql_rate_limit_per_customer_survives_a_fresh_login(shop: Shop, redis_url: str) -> None:
    clock = Clock()
    limits = {"bff_rate_limit_graphql": "100/minute", "bff_rate_limit_graphql_customer": "4/minute"}
    async with bff_app(shop, redis_url, clock=clock, **limits) as client:
        await login(client, "budget@example.com")
        first = client.cookies["bff_session"]
        assert [(await gql(client)).status_code for _ in range(2)] == [200, 200]

        client.cookies.clear()  # a new browser, or the same one signing in again: a new session
        await login(client, "budget@example.com")
        assert client.cookies["bff_session"] != first
        codes = [(await gql(client)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = await gql(client)
        assert limited.json()["error"] == "rate_limited" and "customer" in limited.json()["detail"]
        assert limited.headers["retry-after"] == "60"
        adopt(client, first)  # the customer's older session shares the budget
        assert (await gql(client)).status_code == 429

        client.cookies.clear()  # another customer is not affected
        await login(client, "someone-else@example.com")
        assert (await gql(client)).status_code == 200

        clock.advance(60)  # the next window
        adopt(client, first)
        assert (await gql(client)).status_code == 200


# --- GraphQL allowlist and depth ----------------------------------------------------------------------


async def test_allowlist_blocks_and_admits(shop: Shop, redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "me.graphql").write_text("query Me {\n  customer {\n    id\n  }\n}\n")
    built = run(python("-m", "app", "allowlist", str(tmp_path / "me.graphql")), cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    allowlist = tmp_path / "allowlist.json"
    allowlist.write_text(built.stdout)
    assert len(json.loads(built.stdout)["operations"]) == 1
    async with bff_app(shop, redis_url, bff_graphql_allowlist=str(allowlist)) as client:
        await login(client)
        before = (await shop.stats())["graphql_requests"]
        # The same document, formatted differently, is admitted.
        assert (await gql(client, {"query": "query Me { customer { id } }"})).status_code == 200
        blocked = await gql(client, {"query": "query Me { customer { id firstName } }"})
        assert blocked.status_code == 403
        assert blocked.json()["error"] == "operation_not_allowed"
        garbage = await gql(client, {"query": "{{{"})
        assert garbage.status_code == 403
        assert (await shop.stats())["graphql_requests"] - before == 1


def test_allowlist_command_refuses_invalid_documents(tmp_path: Path) -> None:
    (tmp_path / "bad.graphql").write_text("query {")
    done = run(python("-m", "app", "allowlist", str(tmp_path / "bad.graphql")), cwd=tmp_path)
    assert done.returncode == 1
    assert "bad.graphql" in done.stderr


async def test_query_depth_limit(shop: Shop, redis_url: str) -> None:
    async with bff_app(shop, redis_url, bff_graphql_max_depth=4) as client:
        await login(client)
        shallow = "{ customer { orders(first: 1) { nodes { id } } } }"
        deep = "{ customer { orders(first: 1) { nodes { lineItems(first: 1) { nodes { title } } } } } }"
        via_fragment = "query { customer { ...O } } fragment O on Customer { orders(first: 1) { nodes { lineItems(first: 1) { nodes { id } } } } }"  # noqa: E501
        assert (await gql(client, {"query": shallow})).status_code == 200
        for query in (deep, via_fragment):
            response = await gql(client, {"query": query})
            assert response.status_code == 400
            assert response.json()["error"] == "query_too_deep"


@pytest.mark.parametrize(
    "query",
    [
        "{ customer { " + "id " * 2_500 + "} }",  # 7.5 KB, over the token cap
        "{ customer { id } } " + "# a long comment\n" * 1_500,  # 25 KB, over the inspection cap
        "{ customer { id " + "@skip(if: false) " * 1_000 + "} }",  # directives, the costly case
    ],
    ids=["tokens", "bytes", "directives"],
)
async def test_the_bffs_work_on_a_document_is_bounded_before_parsing(shop: Shop, redis_url: str, query: str) -> None:
    async with bff_app(shop, redis_url) as client:
        await login(client)
        before = (await shop.stats())["graphql_requests"]
        response = await gql(client, {"query": query})
        assert response.status_code == 400
        assert response.json()["error"] == "query_too_large"
        assert (await shop.stats())["graphql_requests"] == before  # refused before Shopify


# --- Response headers -----------------------------------------------------------------------------------


async def test_security_headers(bff: httpx.AsyncClient, shop: Shop) -> None:
    for response in (
        await bff.get("/auth/session"),
        await bff.get("/auth/login"),
        await gql(bff),
    ):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert (await bff.get("/healthz")).headers["x-content-type-options"] == "nosniff"
    preflight = await bff.options("/graphql", headers={"Origin": STOREFRONT, "Access-Control-Request-Method": "POST"})
    assert preflight.headers["access-control-allow-origin"] == STOREFRONT


async def test_fragment_chains_deeper_than_the_stack_are_refused_not_a_crash(shop: Shop, redis_url: str) -> None:
    n = 700  # each link nests a field and a spread: far past Python's recursion limit when walked naively
    links = " ".join(
        f"fragment F{i} on Customer {{ id orders(first: 1) {{ nodes {{ ...F{i + 1} }} }} }}" for i in range(n)
    )
    query = f"{{ customer {{ ...F0 }} }} {links} fragment F{n} on Order {{ id }}"
    assert len(query) < 60_000  # under the body limit
    # Inspection caps raised so far that it is the depth check, not the size bounds, that must refuse it.
    async with bff_app(shop, redis_url, bff_graphql_max_inspect_bytes=65_536, bff_graphql_max_tokens=100_000) as client:
        await login(client)
        response = await client.post("/graphql", json={"query": query}, headers=CSRF)
    assert response.status_code == 400
    assert response.json()["error"] == "query_too_deep"


async def test_graphql_asks_shopify_for_an_uncompressed_body(bff: httpx.AsyncClient, shop: Shop) -> None:
    # The body is passed through as bytes; a gzip answer would reach the browser labelled as JSON.
    await login(bff)
    assert (await gql(bff)).status_code == 200
    assert (await shop.stats())["last_graphql_request"]["headers"]["accept-encoding"] == "identity"


async def test_ipv6_clients_are_limited_per_64(shop: Shop, redis_url: str) -> None:
    settings = make_settings(shop.url, redis_url, bff_rate_limit_login="2/minute")
    codes, clock = [], Clock()
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):  # one /64, three addresses
        async with running_bff(settings, client_ip=host, clock=clock) as client:
            codes.append((await client.get("/auth/login")).status_code)
    assert codes == [302, 302, 429]


async def test_a_read_only_redis_is_503_not_500(shop: Shop) -> None:
    """A replica after a failover (or a primary marked read-only) refuses writes: that is an outage."""
    dead = free_port()
    server = RedisProcess(redis_binary() or "redis-server", free_port(), extra=("--replicaof", "127.0.0.1", str(dead)))
    server.start()
    try:
        async with running_bff(make_settings(shop.url, server.url), client_ip="192.0.2.55") as client:
            for response in (await client.get("/auth/login"), await client.get("/readyz")):
                assert response.status_code == 503
            assert (await client.get("/auth/login")).json()["error"] == "session_store_unavailable"
    finally:
        server.cleanup()


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://127.0.0.1:6380/0",
        "unix:///tmp/redis.sock",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "rediss+cluster://127.0.0.1:7000",
        "redis+sentinel://127.0.0.1:26379/mymaster",
        "rediss+sentinel://127.0.0.1:26379/mymaster",
    ],
)
async def test_every_redis_url_form_builds_the_connections_and_the_rate_limiter(url: str) -> None:
    redis = RedisConnections(url, max_connections=2)  # the rate limiter once raised for three of these
    RateLimits(redis, prefix="bff:")
    await redis.aclose()
