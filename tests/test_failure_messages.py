"""Failures that explain themselves: the shop's discovery and Redis failing for each real cause (a name that
does not resolve, a closed port, TLS to a plain port, no answer, an HTTP status), as the log, the startup
line and `doctor` report them; a failed login navigation landing on `login_error`; a refused client secret."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.redis_server import free_port
from tests.helpers import (
    CLIENT_SECRET,
    STOREFRONT,
    Clock,
    Shop,
    authorize_at_shop,
    bff_environment,
    eventually,
    make_settings,
    python,
    run,
    running_bff,
    start_login,
)

NAVIGATION = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
STARTUP_REDIS = "startup: Redis is unreachable"


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def logged(stream: io.StringIO, logger: str) -> list[dict[str, Any]]:
    return [r for r in records(stream) if r.get("logger") == logger]


async def wait_for(stream: io.StringIO, text: str) -> dict[str, Any]:
    """The first log record whose message holds `text`, once it is there."""

    async def found() -> bool:
        return any(text in r["event"] for r in records(stream))

    await eventually(found, what=f"{text!r} logged")
    return next(r for r in records(stream) if text in r["event"])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers (a firewall that drops, a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


# --- the shop's discovery ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dns", "refused", "tls", "timeout"])
async def test_an_unreachable_shop_is_a_startup_warning_and_one_line_per_failed_discovery(
    shop: Shop, redis_url: str, silent_port: int, kind: str
) -> None:
    domain, expected = {
        "dns": ("no-such-shop.invalid", "DNS failure"),
        "refused": (f"http://127.0.0.1:{free_port()}", "connection refused"),
        "tls": (shop.url.replace("http://", "https://"), "TLS error (WRONG_VERSION_NUMBER)"),
        "timeout": (f"http://127.0.0.1:{silent_port}", "timeout"),
    }[kind]
    settings = make_settings(domain, redis_url, bff_upstream_read_timeout=0.3, bff_upstream_connect_timeout=0.3)
    origin = settings.shop_origin
    logs = io.StringIO()
    async with running_bff(settings, log_stream=logs, client_ip="192.0.2.30") as bff:
        startup = await wait_for(logs, "startup: the shop at")
        assert startup["level"] == "warning"
        assert f"at {origin} (SHOPIFY_SHOP_DOMAIN) is unreachable: {expected};" in startup["event"]
        ready = await bff.get("/readyz")  # still honest
        assert ready.status_code == 503 and ready.json()["checks"]["discovery"].startswith("discovery_")
        [failure] = logged(logs, "bff.discovery")  # one fetch, one line
        assert failure["level"] == "warning"
        assert f"{expected} at {origin}" in failure["event"], failure
        assert "(SHOPIFY_SHOP_DOMAIN)" in failure["event"]
    assert "Traceback" not in logs.getvalue()


@pytest.mark.parametrize("status", [404, 503])
async def test_a_discovery_answered_with_an_http_status_says_which(shop: Shop, redis_url: str, status: int) -> None:
    logs = io.StringIO()
    async with running_bff(make_settings(shop.url, redis_url), log_stream=logs, client_ip="192.0.2.39") as bff:
        await shop.knob("fail_discovery", status=status, count=2)
        assert (await bff.get("/readyz")).json()["checks"]["discovery"] == "discovery_failed"
        [failure] = logged(logs, "bff.discovery")
        assert f"HTTP {status} at {shop.url}/.well-known/" in failure["event"], failure
        assert "startup:" not in logs.getvalue()  # reachable: an HTTP answer is not the shop being down


async def test_a_refresh_that_fails_says_why_and_where(shop: Shop, redis_url: str) -> None:
    clock = Clock()
    logs = io.StringIO()
    settings = make_settings(shop.url, redis_url, bff_discovery_ttl=60)
    async with running_bff(settings, clock=clock, log_stream=logs, client_ip="192.0.2.40") as bff:
        assert (await bff.get("/readyz")).status_code == 200
        await shop.knob("fail_discovery", status=502, count=2)
        clock.advance(61)
        assert (await bff.get("/readyz")).status_code == 200  # the cached copy, while one refresh fails
        refresh = await wait_for(logs, "discovery refresh failed")
        assert (
            f"HTTP 502 at {shop.url}/.well-known/" in refresh["event"] and "serving the cached copy" in refresh["event"]
        )


# --- Redis ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dns", "refused", "tls", "timeout"])
async def test_a_failing_redis_is_logged_with_the_url_without_credentials_and_the_cause(
    shop: Shop, silent_port: int, kind: str
) -> None:
    host, expected = {
        "dns": ("redis://no-such-redis.invalid:6379", "DNS failure"),
        "refused": (f"redis://127.0.0.1:{free_port()}", "connection refused"),
        "tls": (f"rediss://127.0.0.1:{urlport(shop.url)}", "TLS error (WRONG_VERSION_NUMBER)"),
        "timeout": (f"redis://127.0.0.1:{silent_port}", "timeout"),
    }[kind]
    scheme, _, rest = host.partition("://")
    url = f"{scheme}://bff-user:redis-pw-123@{rest}/0?socket_timeout=0.3&socket_connect_timeout=0.3"
    target = f"{host}/0"
    logs = io.StringIO()
    async with running_bff(make_settings(shop.url, url), log_stream=logs, client_ip="192.0.2.31") as bff:
        startup = await wait_for(logs, STARTUP_REDIS)
        assert startup["level"] == "warning"
        assert f"at {target} (REDIS_URL): {expected};" in startup["event"], startup
        ready = await bff.get("/readyz")
        assert ready.json()["checks"]["redis"] == "session_store_unavailable"
        # The probe's own failure: one line, the same target and cause.
        probes = [r for r in logged(logs, "bff.redis") if r["level"] == "warning"]
        assert probes and all(f"Redis unavailable: {expected} at {target}" in r["event"] for r in probes)
    assert "redis-pw-123" not in logs.getvalue() and "bff-user" not in logs.getvalue()
    assert "Traceback" not in logs.getvalue()


async def test_a_request_that_meets_a_down_redis_logs_its_cause(shop: Shop) -> None:
    logs = io.StringIO()
    settings = make_settings(shop.url, f"redis://127.0.0.1:{free_port()}/0")
    async with running_bff(settings, log_stream=logs, client_ip="192.0.2.34") as bff:
        assert (await bff.get("/auth/login", params={"return_to": "/account"})).status_code == 503
        line = await wait_for(logs, "request failed: 503 session_store_unavailable")
        assert line["event"].endswith("(Redis: connection refused (REDIS_URL))"), line


def urlport(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# --- doctor --------------------------------------------------------------------------------------


def doctor(tmp_path: Path, shop_domain: str, redis_url: str) -> str:
    env = {**bff_environment(8000, shop_domain), "REDIS_URL": redis_url}
    done = run(python("-m", "app", "doctor"), cwd=tmp_path, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    return done.stdout


def test_doctor_names_a_dns_failure_and_a_refused_redis(tmp_path: Path) -> None:
    port = free_port()
    out = doctor(tmp_path, "no-such-shop.invalid", f"redis://:pw-456@127.0.0.1:{port}/0")
    assert (
        f"FAIL  Redis at redis://127.0.0.1:{port}/0 does not answer: connection refused (nothing listens on that "
        "port); check REDIS_URL"
    ) in out
    assert "FAIL  the shop's discovery at https://no-such-shop.invalid/.well-known/" in out
    assert "failed: DNS failure (the host name does not resolve); check SHOPIFY_SHOP_DOMAIN" in out
    assert "pw-456" not in out


async def test_doctor_names_an_http_status_and_tls_to_a_plain_port(shop: Shop, tmp_path: Path) -> None:
    await shop.knob("fail_discovery", status=404, count=2)
    out = doctor(tmp_path, shop.url, f"rediss://127.0.0.1:{urlport(shop.url)}/0")
    assert "does not answer: TLS error (WRONG_VERSION_NUMBER) (a plain port behind https:// or rediss://" in out
    assert f"FAIL  the shop's discovery at {shop.url}/.well-known/" in out
    assert "failed: HTTP 404 (no discovery there: use the shop's *.myshopify.com domain)" in out


# --- /auth/login in a browser --------------------------------------------------------------------


async def test_a_login_navigation_with_redis_down_goes_back_to_the_page_with_login_error(shop: Shop) -> None:
    settings = make_settings(shop.url, f"redis://127.0.0.1:{free_port()}/0")
    async with running_bff(settings, client_ip="192.0.2.32") as bff:
        response = await bff.get("/auth/login", params={"return_to": "/account"}, headers=NAVIGATION)
        assert response.status_code == 302
        assert response.headers["location"] == f"{STOREFRONT}/account?login_error=session_store_unavailable"
        # A script's call keeps its JSON answer.
        scripted = await bff.get("/auth/login", params={"return_to": "/account"})
        assert scripted.status_code == 503 and scripted.json()["error"] == "session_store_unavailable"


async def test_a_login_navigation_with_the_shop_down_goes_back_with_login_error(redis_url: str) -> None:
    settings = make_settings(f"http://127.0.0.1:{free_port()}", redis_url)
    async with running_bff(settings, client_ip="192.0.2.33") as bff:
        response = await bff.get("/auth/login", params={"return_to": "/cart"}, headers=NAVIGATION)
        assert response.status_code == 302
        assert response.headers["location"] == f"{STOREFRONT}/cart?login_error=discovery_failed"
        scripted = await bff.get("/auth/login", headers={"Accept": "application/json"})
        assert scripted.status_code == 502 and scripted.json()["error"] == "discovery_failed"


async def test_a_login_navigation_with_a_bad_return_to_goes_to_the_default_page(shop: Shop, redis_url: str) -> None:
    async with running_bff(make_settings(shop.url, redis_url), client_ip="192.0.2.34") as bff:
        response = await bff.get("/auth/login", params={"return_to": "https://evil.example/"}, headers=NAVIGATION)
        assert response.status_code == 302
        assert response.headers["location"] == f"{STOREFRONT}/?login_error=invalid_return_to"
        assert "evil.example" not in response.headers["location"]


async def test_a_rate_limited_login_navigation_goes_back_with_login_error(shop: Shop, redis_url: str) -> None:
    settings = make_settings(shop.url, redis_url, bff_rate_limit_login="1/minute")
    async with running_bff(settings, client_ip="192.0.2.35", clock=Clock()) as bff:
        assert (await bff.get("/auth/login", headers=NAVIGATION)).headers["location"].startswith(shop.url)
        limited = await bff.get("/auth/login", params={"return_to": "/shop"}, headers=NAVIGATION)
        assert limited.status_code == 302
        assert limited.headers["location"] == f"{STOREFRONT}/shop?login_error=rate_limited"


# --- a wrong client secret -----------------------------------------------------------------------


async def test_a_wrong_client_secret_is_an_error_line_naming_it_and_the_customer_sees_invalid_client(
    shop: Shop, redis_url: str
) -> None:
    wrong = "not-the-right-secret-0123456789"
    assert wrong != CLIENT_SECRET
    logs = io.StringIO()
    settings = make_settings(shop.url, redis_url, shopify_client_secret=wrong)
    async with running_bff(settings, log_stream=logs, client_ip="192.0.2.36") as bff:
        callback = await authorize_at_shop(await start_login(bff, return_to="/account"))
        response = await bff.get(callback, headers=NAVIGATION)
        assert response.status_code == 302
        assert response.headers["location"] == f"{STOREFRONT}/account?login_error=invalid_client"
    [refused] = [r for r in logged(logs, "bff.oauth") if r["level"] == "error"]
    assert "SHOPIFY_CLIENT_SECRET is not this client's secret" in refused["event"]
    assert "invalid_client" in refused["event"] and "PREVIOUS" not in refused["event"]
    assert wrong not in logs.getvalue()


async def test_a_callback_navigation_with_redis_down_goes_back_with_login_error(shop: Shop) -> None:
    settings = make_settings(shop.url, f"redis://127.0.0.1:{free_port()}/0")
    async with running_bff(settings, client_ip="192.0.2.38") as bff:
        params = {"state": "s" * 43, "code": "c"}
        response = await bff.get("/auth/callback", params=params, headers=NAVIGATION)
        assert response.status_code == 302
        assert response.headers["location"] == f"{STOREFRONT}/?login_error=session_store_unavailable"
        scripted = await bff.get("/auth/callback", params=params)
        assert scripted.status_code == 503 and scripted.json()["error"] == "session_store_unavailable"
