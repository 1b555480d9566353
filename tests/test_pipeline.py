"""The one request pipeline: every response, whatever produced it, has the same headers and error shape."""

from __future__ import annotations

import gc
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.logs import configure_logging
from app.main import GC_YOUNG_THRESHOLD, create_app
from tests.helpers import BFF_URL, STOREFRONT, Shop, login, make_settings, query_of, start_login

CSRF = {"X-CSRF": "1"}
QUERY = {"query": "{ customer { id } }"}
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-csrf"}


class BreakableTransport(httpx.AsyncBaseTransport):
    """Real HTTP to the stand-in until `broken`, then a failure no code path expects (a defect below us)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.broken = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.broken:
            raise RuntimeError("an unexpected failure below the BFF")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def bff_over(
    transport: BreakableTransport, shop: Shop, redis_url: str, log: io.StringIO | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    # Discovery is fetched on every call (TTL 0, a dev-mode setting), so breaking the transport reaches
    # every route.
    settings = make_settings(shop.url, redis_url, bff_discovery_ttl=0, bff_dev_mode=True)
    async with httpx.AsyncClient(transport=transport, headers={"User-Agent": "customer-account-bff/0.1"}) as http:
        app = create_app(settings, http=http)
        if log is not None:
            configure_logging("info", "json", stream=log)  # after create_app, which configures stdout
        async with LifespanManager(app) as manager:
            asgi = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=asgi, base_url=BFF_URL) as client:
                yield client


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    yield buffer
    configure_logging("warning", "json")


def assert_framed(response: httpx.Response, code: str) -> None:
    """The error shape and the headers every response carries."""
    assert response.json()["error"] == code
    assert set(response.json()) == {"error", "detail"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-request-id"]
    assert response.headers["cache-control"] == "no-store"
    assert "Traceback" not in response.text


async def test_an_unexpected_error_in_a_route_is_a_json_500_with_cors_and_security_headers(
    shop: Shop, redis_url: str, log_lines: io.StringIO
) -> None:
    transport = BreakableTransport()
    transport.broken = True
    async with bff_over(transport, shop, redis_url, log_lines) as client:
        response = await client.get("/auth/login", headers={"Origin": STOREFRONT, "X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert_framed(response, "internal_error")
    assert response.headers["access-control-allow-origin"] == STOREFRONT
    logged = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.startswith("{")]
    errors = [line for line in logged if line.get("level") == "error"]
    assert [e["request_id"] for e in errors] == ["boom-1"]
    assert "RuntimeError" in errors[0]["exception"]


async def test_an_unexpected_error_on_the_raw_graphql_path_is_the_same_json_500(shop: Shop, redis_url: str) -> None:
    transport = BreakableTransport()
    async with bff_over(transport, shop, redis_url) as client:
        await login(client)
        transport.broken = True
        response = await client.post("/graphql", json=QUERY, headers={**CSRF, "Origin": STOREFRONT})
    assert response.status_code == 500
    assert_framed(response, "internal_error")
    assert response.headers["access-control-allow-origin"] == STOREFRONT
    assert response.headers["cache-control"] == "no-store"


async def test_hot_path_5xx_are_logged_with_their_code(
    bff: httpx.AsyncClient, shop: Shop, log_lines: io.StringIO
) -> None:
    await login(bff)
    await shop.knob("delay_graphql", count=1, seconds=5)  # past the tests' 3 s read timeout
    response = await bff.post("/graphql", json=QUERY, headers=CSRF)
    assert response.status_code == 504
    assert "request failed: 504 upstream_timeout" in log_lines.getvalue()


@pytest.mark.parametrize("path", ["/graphql", "/auth/logout", "/auth/session"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", **PREFLIGHT},
        {"Origin": STOREFRONT, "Access-Control-Request-Method": "DELETE"},
        {
            "Origin": STOREFRONT,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    ],
    ids=["foreign-origin", "method", "header"],
)
async def test_a_refused_preflight_is_a_json_403_without_cors_headers(
    bff: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> None:
    response = await bff.options(path, headers=headers)
    assert response.status_code == 403
    assert_framed(response, "origin_not_allowed")
    assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_an_allowed_preflight_names_the_origin_and_the_custom_header(bff: httpx.AsyncClient) -> None:
    response = await bff.options("/auth/logout", headers={"Origin": STOREFRONT, **PREFLIGHT})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == STOREFRONT
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "x-csrf" in response.headers["access-control-allow-headers"]
    assert response.headers["vary"] == "Origin"


async def test_a_foreign_origin_gets_no_cors_headers_on_an_actual_request(bff: httpx.AsyncClient) -> None:
    response = await bff.get("/healthz", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.startswith("access-control-")]
    assert response.headers["vary"] == "Origin"  # so a shared cache keeps the storefront's variant apart


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/auth/logout/"), ("GET", "/auth/session/"), ("GET", "/graphql/")]
)
async def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_host_header(
    bff: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await bff.request(method, path, headers={"Host": "evil.example", **CSRF})
    assert response.status_code == 404
    assert_framed(response, "not_found")
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "code", "status"),
    [
        ("GET", "/nope", "not_found", 404),
        ("GET", "/auth/logout", "method_not_allowed", 405),
        ("GET", "/graphql", "method_not_allowed", 405),
        ("PUT", "/graphql", "method_not_allowed", 405),
    ],
)
async def test_unknown_paths_and_methods_are_framed_json(
    bff: httpx.AsyncClient, method: str, path: str, code: str, status: int
) -> None:
    response = await bff.request(method, path)
    assert response.status_code == status
    assert_framed(response, code)
    if status == 405:
        assert "POST" in response.headers["allow"]


async def test_graphql_responses_carry_one_set_of_security_headers(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    response = await bff.post("/graphql", json=QUERY, headers=CSRF)
    assert response.status_code == 200
    for name in (b"x-content-type-options", b"content-security-policy", b"cache-control", b"x-request-id"):
        assert [k for k, _ in response.headers.raw if k.lower() == name] == [name], name


async def test_every_call_to_the_shop_carries_the_bffs_user_agent(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login(bff)
    assert (await bff.post("/graphql", json=QUERY, headers=CSRF)).status_code == 200
    stats = await shop.stats()
    agents = {**stats["user_agents"], "token": stats["last_token_request"]["user_agent"]}
    agents["graphql"] = stats["last_graphql_request"]["headers"]["user-agent"]
    assert set(agents) == {"openid-configuration", "customer-account-api", "jwks", "token", "graphql"}
    assert set(agents.values()) == {"customer-account-bff/0.1"}


async def test_without_a_session_cookie_graphql_reads_no_body(bff: httpx.AsyncClient) -> None:
    response = await bff.post("/graphql", content=b"{not json", headers=CSRF)
    assert response.status_code == 401
    assert_framed(response, "not_authenticated")


@pytest.mark.parametrize(
    ("shopify_error", "flag"),
    [
        ("login_required", "login_required"),
        ("interaction_required", "interaction_required"),
        ("consent_required", "consent_required"),
        ("account_selection_required", "account_selection_required"),
        ("access_denied", "access_denied"),
        ("server_error", "authorization_failed"),
        ("<script>", "authorization_failed"),
    ],
)
async def test_shopifys_callback_errors_reach_the_storefront_as_catalog_codes(
    bff: httpx.AsyncClient, shop: Shop, shopify_error: str, flag: str
) -> None:
    state = query_of(await start_login(bff, return_to="/shop"))["state"]
    response = await bff.get(
        "/auth/callback", params={"state": state, "error": shopify_error}, headers={"Accept": "text/html"}
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"{STOREFRONT}/shop?login_error={flag}"
    assert "bff_session" not in response.headers.get("set-cookie", "")


def test_building_the_app_freezes_the_startup_heap_and_raises_the_young_threshold(settings: Settings) -> None:
    create_app(settings)
    # The imports alone are tens of thousands of objects; frozen, no collection walks them again (main.py).
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] >= GC_YOUNG_THRESHOLD
