"""One deployment, many shops (BFF_SHOPS_FILE, issue 17): each request reaches the shop its address names, no
artifact of one shop (cookie, login, Redis record, rate-limit bucket, webhook delivery, metric) counts at
another, and one shop's hung Shopify holds none of another shop's requests.

Two shops, each with its own stand-in over real HTTP and its own app (client id): alpha at the root of
https://alpha.test, beta under https://shops.test/beta. The BFF runs in this process on a real Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from mock_shopify.customers import customer_number
from mock_shopify.webhooks import signature
from tests.helpers import (
    CSRF,
    CUSTOMER_QUERY,
    EMAIL,
    SESSION_SECRET,
    Clock,
    ServerThread,
    Shop,
    authorize_at_shop,
    eventually,
    make_settings,
    python,
    query_of,
    run,
    running_bff,
    shop_at,
)
from tests.shops_fixtures import (
    ALPHA,
    BETA,
    SHOPS,
    CookieJar,
    HangingRelay,
    Shops,
    ShopsBFF,
    ShopSpec,
    Table,
    deployment_settings,
    every_stand_in,
    free_port,
    load_shops,
    running_shops,
    session_key,
    shop_table,
    sign_in,
    stand_in,
    write_shops_file,
)

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[dict[str, ServerThread]]:
    with every_stand_in() as servers:
        yield servers


@pytest.fixture
async def knobs(stand_ins: dict[str, ServerThread]) -> AsyncIterator[dict[str, Shop]]:
    """Each shop's stand-in knobs, reset first."""
    async with shop_at(stand_ins["alpha"].url) as alpha, shop_at(stand_ins["beta"].url) as beta:
        for shop in (alpha, beta):
            await shop.knob("reset")
        yield {"alpha": alpha, "beta": beta}


MakeShops = Callable[..., Shops]


@pytest.fixture
def make_shops(tmp_path: Path, knobs: dict[str, Shop], redis_url: str) -> MakeShops:
    """The two shops' file, loaded: `alpha=`/`beta=` change a shop's table, the rest the deployment's settings."""

    def make(*, alpha: Table | None = None, beta: Table | None = None, **deployment: object) -> Shops:
        tables = {
            ALPHA.id: shop_table(ALPHA, knobs["alpha"].url, **(alpha or {})),
            BETA.id: shop_table(BETA, knobs["beta"].url, **(beta or {})),
        }
        return load_shops(write_shops_file(tmp_path, tables), **deployment_settings(redis_url, **deployment))

    return make


@pytest.fixture
async def bff(make_shops: MakeShops) -> AsyncIterator[ShopsBFF]:
    async with running_shops(make_shops()) as running:
        yield running


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The response's Set-Cookie headers by cookie name."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def sid_of(client: httpx.AsyncClient) -> str:
    """The session id the client's one cookie carries (the signed value is `<sid>.<signature>`)."""
    (_, value), *_ = client.cookies.items()
    return value.rsplit(".", 1)[0]


def signed_cookie(jar: CookieJar, sid: str) -> str:
    """A Cookie header naming `sid`, signed by `jar`."""
    return jar.set_session(sid)[1].decode().split(";", 1)[0]


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


# --- routing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SHOPS, ids=lambda s: s.id)
async def test_each_shops_address_starts_its_login_at_its_own_shop_with_its_own_app(
    bff: ShopsBFF, knobs: dict[str, Shop], spec: ShopSpec
) -> None:
    async with bff.client(spec.public_url) as browser:
        started = await browser.get(f"{spec.public_url}/auth/login")
    assert started.status_code == 302, started.text
    location = started.headers["location"]
    params = query_of(location)
    assert (location.split("?")[0], params["client_id"], params["redirect_uri"]) == (
        f"{knobs[spec.id].url}/authentication/{spec.numeric_id}/oauth/authorize",
        spec.client_id,
        spec.callback,
    )


async def test_a_shop_under_a_path_prefix_serves_login_graphql_and_logout(
    bff: ShopsBFF, knobs: dict[str, Shop]
) -> None:
    async with bff.client(BETA.public_url) as browser:
        await sign_in(browser, BETA)
        assert (await browser.get(f"{BETA.public_url}/auth/session")).json()["authenticated"] is True
        proxied = await browser.post(f"{BETA.public_url}/graphql", json=CUSTOMER_QUERY, headers=CSRF)
        assert proxied.status_code == 200 and proxied.json()["data"]["customer"]["id"]
        out = await browser.post(f"{BETA.public_url}/auth/logout", headers=CSRF)
        assert out.status_code == 303
        assert out.headers["location"].startswith(f"{knobs['beta'].url}/authentication/{BETA.numeric_id}/")
        assert query_of(out.headers["location"])["post_logout_redirect_uri"] == BETA.logout_url
        assert (await browser.get(f"{BETA.public_url}/auth/session")).json() == {"authenticated": False}


async def test_a_prefixed_shops_cookies_are_scoped_to_its_prefix(bff: ShopsBFF) -> None:
    async with bff.client(BETA.public_url) as browser:
        started = await browser.get(f"{BETA.public_url}/auth/login")
        callback = await authorize_at_shop(started.headers["location"])
        done = await browser.get(callback)
    written = {**set_cookies(started), **set_cookies(done)}
    # __Host- demands Path=/, so a prefixed shop's cookies insist on Secure with __Secure- instead.
    assert sorted(written) == ["__Secure-bff_login-beta", "__Secure-bff_session-beta"]
    for header in written.values():
        assert "; Path=/beta;" in header and "Secure" in header, header


async def test_a_root_shops_cookies_keep_the_host_prefix_and_name_the_shop(bff: ShopsBFF) -> None:
    async with bff.client(ALPHA.public_url) as browser:
        await sign_in(browser, ALPHA)
        cookies = {cookie.name: cookie.path for cookie in browser.cookies.jar}
    assert cookies == {"__Host-bff_session-alpha": "/"}


@pytest.mark.parametrize(
    ("outer_url", "inner_url"),
    [("https://shops.test/acme", "https://shops.test/acme/eu"), ("https://shops.test", "https://shops.test/eu")],
    ids=["nested-prefixes", "root-and-prefix"],
)
async def test_shops_whose_paths_nest_on_one_host_keep_both_sessions(
    tmp_path: Path, redis_url: str, outer_url: str, inner_url: str
) -> None:
    # Both sessions' cookies reach the inner shop's paths; each shop's cookies carry its name, so both read.
    outer = dataclasses.replace(ALPHA, public_url=outer_url)
    inner = dataclasses.replace(BETA, public_url=inner_url)
    servers = {spec.id: stand_in(spec).start() for spec in (outer, inner)}
    try:
        tables = {spec.id: shop_table(spec, servers[spec.id].url) for spec in (outer, inner)}
        shops = load_shops(write_shops_file(tmp_path, tables), **deployment_settings(redis_url))
        async with running_shops(shops) as bff, bff.client(outer_url) as browser:
            await sign_in(browser, inner)
            await sign_in(browser, outer)
            signed_in = [(await browser.get(f"{s.public_url}/auth/session")).json() for s in (inner, outer)]
    finally:
        for server in servers.values():
            server.stop()
    assert [found["authenticated"] for found in signed_in] == [True, True]


@pytest.mark.parametrize("prefix", ["/auth", "/graphql", "/webhooks"])
async def test_a_prefix_named_like_one_of_the_routes_is_routed_like_any_other(
    make_shops: MakeShops, prefix: str
) -> None:
    public_url = f"https://accounts.test{prefix}"
    async with running_shops(make_shops(beta={"public_url": public_url})) as bff:
        async with bff.client(public_url) as browser:
            started = await browser.get(f"{public_url}/auth/login")
            proxied = await browser.post(f"{public_url}/graphql", json=CUSTOMER_QUERY, headers=CSRF)
    assert started.status_code == 302, started.text
    assert query_of(started.headers["location"])["redirect_uri"] == f"{public_url}/auth/callback"
    assert (proxied.status_code, proxied.json()["error"]) == (401, "not_authenticated")


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/auth/login",
        "https://shops.test/auth/login",  # beta's host, outside its prefix
        "https://shops.test/betamax/auth/login",  # a prefix matches whole segments only
        "https://alpha.test.evil.test/auth/login",
        "https://alpha.test:8443/auth/login",  # another port is another origin
    ],
)
async def test_an_address_of_no_shop_is_404_unknown_shop_counted_and_with_security_headers(
    make_shops: MakeShops, url: str
) -> None:
    async with running_shops(make_shops(bff_metrics_listener="public")) as bff:
        async with bff.client(url) as browser:
            answer = await browser.get(url)
            scraped = scrape((await browser.get(f"{ALPHA.public_url}/metrics")).text)
    assert (answer.status_code, answer.json()["error"]) == (404, "unknown_shop")
    assert {name: answer.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert scraped[("bff_unknown_shop_requests_total", frozenset())] == 1.0


@pytest.mark.parametrize(
    ("spec", "host"), [(ALPHA, "alpha.test:443"), (BETA, "shops.test:443")], ids=["root", "prefix"]
)
async def test_a_host_with_the_default_port_spelled_out_reaches_its_shop(
    bff: ShopsBFF, knobs: dict[str, Shop], spec: ShopSpec, host: str
) -> None:
    async with bff.client(spec.public_url, Host=host) as browser:
        started = await browser.get(f"{spec.public_url}/auth/login")
    assert started.status_code == 302, started.text
    assert query_of(started.headers["location"])["client_id"] == spec.client_id


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("host", ["alpha.test", "shops.test", "10.1.2.3:8000", "evil.test"])
async def test_health_answers_on_any_host(bff: ShopsBFF, path: str, host: str) -> None:
    async with bff.client(f"http://{host}") as probe:
        assert (await probe.get(path)).status_code == 200


async def test_readyz_tells_each_shops_host_its_own_shop_and_no_one_the_list(bff: ShopsBFF) -> None:
    async with bff.client(ALPHA.public_url) as alpha, bff.client("http://10.1.2.3:8000") as probe:

        async def alpha_checked() -> bool:
            return bool((await alpha.get("/readyz")).json()["shops"] == {"alpha": {"discovery": "ok"}})

        # The first probe starts the shop's checks and says "pending" while they run.
        await eventually(alpha_checked, what="alpha's discovery checked")
        anonymous = (await probe.get("/readyz")).json()
    assert anonymous == {"status": "ready", "checks": {"redis": "ok"}, "shops": {}}


# --- isolation: every artifact copied from one shop to another fails there ------------------------------

PAIRS = [(ALPHA, BETA), (BETA, ALPHA)]
PAIR_IDS = ["alpha-to-beta", "beta-to-alpha"]


@pytest.mark.parametrize("renamed", [False, True], ids=["as-sent", "under-the-other-shops-name"])
@pytest.mark.parametrize(("source", "target"), PAIRS, ids=PAIR_IDS)
async def test_a_session_cookie_of_one_shop_does_not_authenticate_at_another(
    bff: ShopsBFF, source: ShopSpec, target: ShopSpec, renamed: bool
) -> None:
    async with bff.client(source.public_url) as victim:
        await sign_in(victim, source)
        (name, value), *_ = victim.cookies.items()
    name = bff.jar(target).names.session if renamed else name
    async with bff.client(target.public_url, Cookie=f"{name}={value}") as thief:
        session = (await thief.get(f"{target.public_url}/auth/session")).json()
        proxied = await thief.post(f"{target.public_url}/graphql", json=CUSTOMER_QUERY, headers=CSRF)
    assert (session, proxied.status_code) == ({"authenticated": False}, 401)


@pytest.mark.parametrize("renamed", [False, True], ids=["as-sent", "under-the-other-shops-name"])
@pytest.mark.parametrize(("source", "target"), PAIRS, ids=PAIR_IDS)
async def test_a_login_begun_at_one_shop_cannot_be_finished_at_another(
    bff: ShopsBFF, knobs: dict[str, Shop], source: ShopSpec, target: ShopSpec, renamed: bool
) -> None:
    async with bff.client(source.public_url) as victim:
        started = await victim.get(f"{source.public_url}/auth/login")
        (name, binding), *_ = victim.cookies.items()
    callback = await authorize_at_shop(started.headers["location"])
    name = bff.jar(target).names.login if renamed else name
    replayed = f"{target.callback}?{callback.split('?', 1)[1]}"
    async with bff.client(target.public_url, Cookie=f"{name}={binding}") as thief:
        finished = await thief.get(replayed)
        session = (await thief.get(f"{target.public_url}/auth/session")).json()
    assert "bff_session" not in str(set_cookies(finished))
    assert session == {"authenticated": False}
    # Neither shop redeemed the code: the attack got no tokens from anyone.
    assert [(await knobs[s.id].stats())["grants"]["authorization_code"] for s in SHOPS] == [0, 0]


async def test_a_session_record_copied_to_another_shop_does_not_decrypt_there(
    bff: ShopsBFF, redis_client: aioredis.Redis
) -> None:
    alpha_prefix, beta_prefix = (bff.shops.by_id(s.id).bff_redis_prefix for s in SHOPS)
    async with bff.client(ALPHA.public_url) as victim, bff.client(BETA.public_url) as own:
        await sign_in(victim, ALPHA)
        await sign_in(own, BETA)
        alpha_sid, beta_sid = (sid_of(c) for c in (victim, own))
    alpha_record = session_key(alpha_sid, alpha_prefix)
    assert [k async for k in redis_client.scan_iter(match=f"{alpha_prefix}session:*")] == [alpha_record.encode()]
    jar = bff.jar(BETA)
    # The forged cookie is sound: for beta's own record it authenticates, so what fails below is the record.
    async with bff.client(BETA.public_url, Cookie=signed_cookie(jar, beta_sid)) as control:
        assert (await control.get(f"{BETA.public_url}/auth/session")).json()["authenticated"] is True
    copied = session_key(alpha_sid, beta_prefix)
    dumped = await redis_client.dump(alpha_record)
    assert dumped is not None
    await redis_client.restore(copied, 60_000, dumped, replace=True)
    async with bff.client(BETA.public_url, Cookie=signed_cookie(jar, alpha_sid)) as thief:
        session = (await thief.get(f"{BETA.public_url}/auth/session")).json()
        proxied = await thief.post(f"{BETA.public_url}/graphql", json=CUSTOMER_QUERY, headers=CSRF)
    assert (session, proxied.status_code) == ({"authenticated": False}, 401)


async def test_one_shops_login_rate_limit_bucket_does_not_count_at_another(make_shops: MakeShops) -> None:
    low = {"rate_limit_login": "2/minute"}
    clock = Clock()  # the minute's window ends only when the test says so
    async with running_shops(make_shops(alpha=low, beta=low), clock=clock) as bff:
        async with bff.client(ALPHA.public_url) as alpha, bff.client(BETA.public_url) as beta:
            at_alpha = [(await alpha.get("/auth/login")).status_code for _ in range(3)]
            at_beta = [(await beta.get(f"{BETA.public_url}/auth/login")).status_code for _ in range(2)]
    assert (at_alpha, at_beta) == ([302, 302, 429], [302, 302])


@pytest.mark.parametrize(("origin_of", "allowed"), [(ALPHA, False), (BETA, True)], ids=["other-shops", "own"])
async def test_a_shops_storefront_origin_is_trusted_by_that_shop_only(
    bff: ShopsBFF, origin_of: ShopSpec, allowed: bool
) -> None:
    preflight = {"Origin": origin_of.storefront, "Access-Control-Request-Method": "POST"}
    async with bff.client(BETA.public_url) as browser:
        answer = await browser.options(f"{BETA.public_url}/graphql", headers=preflight)
    assert (answer.headers.get("access-control-allow-origin") == origin_of.storefront) is allowed


def delivery(spec: ShopSpec, email: str, *, secret: str, webhook_id: str) -> dict[str, Any]:
    body = json.dumps({"id": customer_number(email)}).encode()
    return {
        "url": f"{spec.public_url}/webhooks/shopify",
        "content": body,
        "headers": {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "customers/delete",
            "X-Shopify-Hmac-Sha256": signature(body, secret),
            "X-Shopify-Webhook-Id": webhook_id,
        },
    }


async def test_a_webhook_signed_with_one_shops_secret_is_refused_at_another(bff: ShopsBFF) -> None:
    async with bff.client(BETA.public_url) as customer:
        await sign_in(customer, BETA)
        forged = await customer.post(**delivery(BETA, EMAIL, secret=ALPHA.webhook_secret, webhook_id="wh-forged"))
        assert (forged.status_code, forged.json()["error"]) == (401, "invalid_signature")
        assert (await customer.get(f"{BETA.public_url}/auth/session")).json()["authenticated"] is True


async def test_one_delivery_id_sent_to_two_shops_is_processed_by_both(bff: ShopsBFF) -> None:
    async with bff.client(ALPHA.public_url) as at_alpha, bff.client(BETA.public_url) as at_beta:
        await sign_in(at_alpha, ALPHA)
        await sign_in(at_beta, BETA)
        answers = [
            (await client.post(**delivery(spec, EMAIL, secret=spec.webhook_secret, webhook_id="wh-same"))).json()
            for client, spec in ((at_alpha, ALPHA), (at_beta, BETA))
        ]
        sessions = [
            (await c.get(f"{s.public_url}/auth/session")).json() for c, s in ((at_alpha, ALPHA), (at_beta, BETA))
        ]
    assert answers == [{"ok": True, "sessions_ended": 1}] * 2
    assert sessions == [{"authenticated": False}] * 2


async def test_end_sessions_for_one_shop_leaves_the_other_shops_sessions(
    make_shops: MakeShops, tmp_path: Path, redis_url: str
) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    shops = make_shops(bff_redis_prefix=prefix)
    env = {
        "BFF_SHOPS_FILE": shops.source,
        "REDIS_URL": redis_url,
        "BFF_SESSION_SECRET": SESSION_SECRET,
        "BFF_REDIS_PREFIX": prefix,
    }
    async with running_shops(shops) as bff:
        async with bff.client(ALPHA.public_url) as at_alpha, bff.client(BETA.public_url) as at_beta:
            await sign_in(at_alpha, ALPHA)
            await sign_in(at_beta, BETA)
            number = str(customer_number(EMAIL))
            ended = await asyncio.to_thread(
                run,
                python("-m", "app", "end-sessions", "--shop", "alpha", "--customer-id", number),
                cwd=tmp_path,
                env=env,
            )
            assert f"ended 1 session(s) of gid://shopify/Customer/{number}" in ended.stdout, ended.stderr
            sessions = [
                (await c.get(f"{s.public_url}/auth/session")).json()["authenticated"]
                for c, s in ((at_alpha, ALPHA), (at_beta, BETA))
            ]
    assert sessions == [False, True]


async def test_a_shops_requests_are_counted_under_its_shop_only(make_shops: MakeShops) -> None:
    async with running_shops(make_shops(bff_metrics_listener="public")) as bff:
        async with bff.client(ALPHA.public_url) as browser:
            await sign_in(browser, ALPHA)
            await browser.post("/graphql", json=CUSTOMER_QUERY, headers=CSRF)
            await browser.get("/graphql")  # a rejection (405), counted too
            scraped = scrape((await browser.get("/metrics")).text)
    moved = {dict(labels).get("shop") for (_, labels), value in scraped.items() if value and dict(labels).get("shop")}
    assert moved == {"alpha"}


# --- outage isolation -----------------------------------------------------------------------------------


@pytest.fixture
async def relay() -> AsyncIterator[HangingRelay]:
    """alpha's Shopify behind a relay that can hang: a stand-in of its own, reached only through the relay."""
    port = free_port()
    relay = await HangingRelay(port).start()
    server = stand_in(ALPHA, base_url=relay.url, port=port).start()
    try:
        yield relay
    finally:
        await relay.stop()
        server.stop()


@pytest.fixture
def make_hanging_shops(
    tmp_path: Path, relay: HangingRelay, stand_ins: dict[str, ServerThread], redis_url: str
) -> Callable[[], Shops]:
    def make() -> Shops:
        tables = {ALPHA.id: shop_table(ALPHA, relay.url), BETA.id: shop_table(BETA, stand_ins["beta"].url)}
        # Deadlines far beyond the test, and a Redis pool smaller than alpha's hung requests: whatever holds
        # beta up below is alpha's hang, never a timeout that happened to end it.
        deployment = deployment_settings(
            redis_url,
            bff_upstream_connect_timeout=60.0,
            bff_upstream_read_timeout=60.0,
            bff_upstream_total_timeout=120.0,
            bff_redis_max_connections=2,
        )
        return load_shops(write_shops_file(tmp_path, tables), **deployment)

    return make


HUNG_REQUESTS = 8
BOUND = 30.0  # a deadline for the test to fail by, never what a claim is judged by


async def beta_works(bff: ShopsBFF) -> int:
    """A whole login and a GraphQL call at beta; the call's status."""
    async with bff.client(BETA.public_url) as browser:
        await sign_in(browser, BETA)
        return (await browser.post(f"{BETA.public_url}/graphql", json=CUSTOMER_QUERY, headers=CSRF)).status_code


async def test_a_hung_shop_holds_none_of_another_shops_requests(
    make_hanging_shops: Callable[[], Shops], relay: HangingRelay
) -> None:
    async with running_shops(make_hanging_shops()) as bff:
        async with bff.client(ALPHA.public_url) as alpha:
            await sign_in(alpha, ALPHA)
            finishing = await authorize_at_shop((await alpha.get("/auth/login")).headers["location"])
            relay.hang()
            hung = [
                asyncio.create_task(alpha.post("/graphql", json=CUSTOMER_QUERY, headers=CSRF))
                for _ in range(HUNG_REQUESTS)
            ]
            hung.append(asyncio.create_task(alpha.get(finishing)))  # the code exchange, at alpha's token endpoint
            status = await asyncio.wait_for(beta_works(bff), BOUND)
            still_pending = sum(not task.done() for task in hung)
            relay.recover()
            await asyncio.wait_for(asyncio.gather(*hung), BOUND)  # they were waiting on alpha: now they end
    assert (status, still_pending) == (200, len(hung))


async def test_a_shop_hung_from_the_start_holds_neither_another_shop_nor_readyz(
    make_hanging_shops: Callable[[], Shops], relay: HangingRelay
) -> None:
    relay.hang()
    async with running_shops(make_hanging_shops()) as bff:
        async with bff.client(ALPHA.public_url) as alpha:
            pending = asyncio.create_task(alpha.get("/auth/login"))  # waits for alpha's discovery documents
            status = await asyncio.wait_for(beta_works(bff), BOUND)
            ready = await asyncio.wait_for(alpha.get("/readyz"), BOUND)
            still_pending = not pending.done()
            relay.recover()
            await asyncio.wait_for(pending, BOUND)
    assert (status, ready.status_code, still_pending) == (200, 200, True)
    assert ready.json()["shops"] == {"alpha": {"discovery": "pending"}}


# --- the single-shop default ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public_url", "name"),
    [
        ("http://127.0.0.1:8000", "bff_login"),
        ("https://bff.example", "__Host-bff_login"),
        # One shop behind a proxy under a path keeps its cookies at Path=/, as before issue 17.
        ("https://example.com/account-bff", "__Host-bff_login"),
    ],
)
async def test_a_single_shop_answers_on_any_host_with_root_cookies(
    shop: Shop, redis_url: str, public_url: str, name: str
) -> None:
    async with running_bff(make_settings(shop.url, redis_url, bff_public_url=public_url)) as client:
        started = await client.get("/auth/login", headers={"Host": "unlisted.example:9999"})
    assert started.status_code == 302, started.text
    assert list(set_cookies(started)) == [name]
    assert "; Path=/;" in set_cookies(started)[name]
