"""Structured request logs that never carry a secret, and Prometheus metrics that move."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from devkit.redis_server import free_port
from tests.helpers import (
    CLIENT_SECRET,
    CSRF,
    CUSTOMER_QUERY,
    SESSION_SECRET,
    Settings,
    Shop,
    configure_logging,
    gql,
    login,
    login_with_expired_token,
    make_settings,
    query_of,
    running_bff,
    start_login,
)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    yield buffer
    configure_logging("warning", "json")  # back to stdout for the rest of the suite


async def test_logs_are_json_with_request_ids_and_no_secrets(
    shop: Shop, redis_url: str, log_lines: io.StringIO
) -> None:
    async with running_bff(make_settings(shop.url, redis_url), log_stream=log_lines) as client:
        authorize_url = await start_login(client)
        await login(client)
        await shop.knob("expire_access_tokens")  # a refresh, so refresh tokens move too
        traced = await gql(client, headers={"X-Request-ID": "trace-42"})
        assert traced.headers["x-request-id"] == "trace-42"
        assert (await client.get("/healthz")).headers["x-request-id"]
        bad = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
        assert bad.headers["x-request-id"] != "bad id\nwith newline"
        cookie = client.cookies["bff_session"]
        await client.post("/auth/logout", headers=CSRF)

    stats = await shop.stats()
    secrets = {
        "access token": stats["last_graphql_request"]["authorization"],
        "session cookie": cookie,
        "session id": cookie.split(".")[0],
        "state": query_of(authorize_url)["state"],
        "client secret": CLIENT_SECRET,
        "session secret": SESSION_SECRET,
    }
    text = log_lines.getvalue()
    for what, value in secrets.items():
        assert value not in text, f"the {what} reached the logs"
    for marker in ("shcat_", "shcrt_", "eyJ", "code="):
        assert marker not in text

    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    requests = [r for r in records if r["event"] == "request"]
    assert {r["path"] for r in requests} == {"/auth/login", "/auth/callback", "/graphql", "/healthz", "/auth/logout"}
    assert all(r["request_id"] and r["status"] and "duration_ms" in r for r in requests)
    assert any(r["request_id"] == "trace-42" and r["path"] == "/graphql" and r["status"] == 200 for r in requests)


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    needle = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(needle):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
async def bff(shop: Shop, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The BFF with /metrics on its public listener, as these tests read it."""
    async with running_bff(make_settings(shop.url, redis_url, bff_metrics_listener="public")) as client:
        yield client


async def test_metrics_move(bff: httpx.AsyncClient, shop: Shop) -> None:
    await login_with_expired_token(bff, shop)
    assert (await gql(bff)).status_code == 200
    await bff.post("/graphql", json=CUSTOMER_QUERY)  # refused: no CSRF header
    await bff.post("/auth/logout", headers=CSRF)
    text = (await bff.get("/metrics")).text
    assert metric(text, "bff_logins_total", outcome="redirected") == 1
    assert metric(text, "bff_callbacks_total", outcome="ok") == 1
    assert metric(text, "bff_sessions_created_total") == 1
    assert metric(text, "bff_refreshes_total", outcome="ok") == 1
    assert metric(text, "bff_graphql_requests_total", status="200") == 1
    assert metric(text, "bff_upstream_latency_seconds_count", endpoint="graphql") == 1
    assert metric(text, "bff_requests_rejected_total", code="csrf_failed") == 1
    assert metric(text, "bff_sessions_ended_total", reason="logout") == 1


async def test_metrics_can_leave_the_public_listener(shop: Shop, redis_url: str) -> None:
    off: dict[str, Any] = {"bff_metrics_listener": "off"}
    async with running_bff(make_settings(shop.url, redis_url, **off)) as client:
        assert (await client.get("/metrics")).status_code == 404
    port = free_port()
    private = make_settings(shop.url, redis_url, bff_metrics_listener=f"127.0.0.1:{port}")
    async with running_bff(private) as client:
        assert (await client.get("/metrics")).status_code == 404
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
    assert scraped.status_code == 200
    assert "bff_logins_total" in scraped.text


async def test_metrics_are_not_public_by_default(shop: Shop, redis_url: str) -> None:
    settings = make_settings(
        shop.url, redis_url, bff_metrics_listener=Settings.model_fields["bff_metrics_listener"].default
    )
    assert settings.metrics_address == ("127.0.0.1", 9464)
    async with running_bff(settings) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_attacker_chosen_callback_errors_make_no_new_metric_series(bff: httpx.AsyncClient, shop: Shop) -> None:
    for i in range(50):
        state = query_of(await start_login(bff))["state"]
        await bff.get("/auth/callback", params={"state": state, "error": f"made_up_error_{i}"})
    outcomes = {
        line.split('outcome="')[1].split('"')[0]
        for line in (await bff.get("/metrics")).text.splitlines()
        if line.startswith("bff_callbacks_total{")
    }
    assert outcomes == {"authorization_failed"}
