"""OpenTelemetry traces: one trace per request across Redis and Shopify, W3C trace context both ways, no
secret in any span, and nothing at all unless the OTEL_* variables ask."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import cast

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.logs import RequestLog
from app.main import create_app
from app.store.sessions import session_key
from app.tracing import Tracing, tracing_from_env
from mock_shopify.state import Store
from tests.helpers import (
    BFF_URL,
    CLIENT_SECRET,
    CSRF,
    SESSION_SECRET,
    STOREFRONT,
    STOREFRONT_TOKEN,
    Launcher,
    ServerThread,
    Settings,
    Shop,
    create_cart,
    gql,
    login,
    login_with_expired_token,
    make_settings,
    query_of,
    start_login,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    yield found
    found.clear()


@asynccontextmanager
async def traced_bff(settings: Settings, exporter: InMemorySpanExporter) -> AsyncIterator[httpx.AsyncClient]:
    """The BFF under its lifespan, tracing into `exporter` (spans are exported as each one ends)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, tracing=Tracing(provider))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BFF_URL) as client:
            yield client


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    by_id = {s.get_span_context().span_id: s for s in spans}  # type: ignore[union-attr]
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_graphql_call_is_one_trace_from_the_browser_to_redis_and_shopify(
    settings: Settings, shop: Shop, exporter: InMemorySpanExporter
) -> None:
    async with traced_bff(settings, exporter) as client:
        await login(client)
        exporter.clear()
        assert (await gql(client)).status_code == 200
        spans = list(exporter.get_finished_spans())

    inbound = one(spans, "POST /graphql")
    redis = one(spans, "EVALSHA")  # the session read, on the hot path's pipelined connection
    upstream = next(s for s in spans if s.kind is SpanKind.CLIENT and s.name.endswith("/graphql"))
    assert inbound.kind is SpanKind.SERVER and inbound.parent is None
    assert inbound.attributes is not None and inbound.attributes["http.response.status_code"] == 200
    assert redis.attributes is not None and redis.attributes["db.system.name"] == "redis"
    assert upstream.attributes is not None and upstream.attributes["http.response.status_code"] == 200
    trace_id, _ = hex_ids(inbound)
    assert {hex_ids(s)[0] for s in spans} == {trace_id}
    assert ancestors(redis, spans)[-1] == ancestors(upstream, spans)[-1] == "POST /graphql"

    # Shopify got the trace: its traceparent names this trace and the BFF's upstream span as the parent.
    sent = (await shop.stats())["last_graphql_request"]["headers"]["traceparent"]
    assert sent.split("-")[:3] == ["00", trace_id, hex_ids(upstream)[1]]


async def test_an_incoming_traceparent_is_continued(
    settings: Settings, shop: Shop, exporter: InMemorySpanExporter
) -> None:
    async with traced_bff(settings, exporter) as client:
        await login(client)
        exporter.clear()
        answer = await gql(client, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert answer.status_code == 200
        spans = list(exporter.get_finished_spans())

    inbound = one(spans, "POST /graphql")
    assert inbound.parent is not None and format(inbound.parent.span_id, "016x") == PARENT_ID
    assert {hex_ids(s)[0] for s in spans} == {TRACE_ID}
    assert (await shop.stats())["last_graphql_request"]["headers"]["traceparent"].startswith(f"00-{TRACE_ID}-")


async def test_a_traced_front_end_on_the_storefront_origin_may_send_its_traceparent(
    settings: Settings, shop: Shop, exporter: InMemorySpanExporter
) -> None:
    async with traced_bff(settings, exporter) as client:
        await login(client)
        preflight = await client.options(
            "/graphql",
            headers={
                "Origin": STOREFRONT,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, x-csrf, traceparent, tracestate",
            },
        )
        assert preflight.status_code < 300, preflight.text
        traced = await gql(client, headers={"Origin": STOREFRONT, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert traced.status_code == 200
    assert (await shop.stats())["last_graphql_request"]["headers"]["traceparent"].startswith(f"00-{TRACE_ID}-")


async def test_the_token_endpoint_and_the_storefront_api_are_traced(
    shop: Shop, redis_url: str, exporter: InMemorySpanExporter
) -> None:
    settings = make_settings(shop.url, redis_url, shopify_storefront_token=STOREFRONT_TOKEN)
    cart = await create_cart(shop.url)
    async with traced_bff(settings, exporter) as client:
        await login(client)
        callback = one(list(exporter.get_finished_spans()), "GET /auth/callback")
        exporter.clear()
        answer = await client.post("/cart/checkout", data={"cartId": cart}, headers={"Origin": STOREFRONT})
        assert answer.status_code == 303, answer.text
        spans = list(exporter.get_finished_spans())

    checkout = one(spans, "POST /cart/checkout")
    storefront = [s for s in spans if s.name.endswith("/graphql.json")]
    assert storefront and all(ancestors(s, spans)[-1] == checkout.name for s in storefront)
    assert any(s.name.startswith("SET") or s.name == "PIPELINE" or s.name == "EVALSHA" for s in spans)
    sent = (await shop.http.get("/_mock/storefront/stats")).json()["traceparents"]
    assert sent[-1] is not None and sent[-1].split("-")[1] == hex_ids(checkout)[0]
    # The callback's code grant, at the token endpoint, is in the callback's trace and told Shopify so.
    token_sent = (await shop.stats())["last_token_traceparent"]
    assert token_sent is not None and token_sent.split("-")[1] == hex_ids(callback)[0]


async def test_no_secret_reaches_any_span(
    shop_server: ServerThread, shop: Shop, settings: Settings, exporter: InMemorySpanExporter
) -> None:
    async with traced_bff(settings, exporter) as client:
        authorize_url = await start_login(client)
        callback = await login_with_expired_token(client, shop)  # so the next call refreshes, at once
        assert (await gql(client)).status_code == 200
        await client.get("/auth/session")
        await client.get("/auth/sessions")
        await client.get("/auth/callback", params={"code": "stolen-code-0451", "state": "forged-state-0451"})
        cookie = client.cookies["bff_session"]
        await client.post("/auth/logout", headers=CSRF)
        spans = list(exporter.get_finished_spans())

    store: Store = cast(Starlette, shop_server.server.config.app).state.store  # every token it issued
    sid = cookie.rsplit(".", 1)[0]  # the cookie is the signed id: `{tag}.{random}.{signature}`
    secrets: dict[str, str] = {
        "session cookie": cookie,
        "session id": sid,
        "session key": session_key(sid),
        "session id's random part": sid.split(".")[1],
        "state": query_of(authorize_url)["state"],
        "code": query_of(str(callback.request.url))["code"],
        "forged code": "stolen-code-0451",
        "client secret": CLIENT_SECRET,
        "session secret": SESSION_SECRET,
    }
    tokens = [*store.access_tokens, *store.refresh_tokens]
    assert len(tokens) >= 3  # the first access token, its refresh token, the refreshed one
    secrets.update({f"token {i}": token for i, token in enumerate(tokens)})

    seen = []
    for span in spans:
        seen.append(span.name)
        for key, value in (span.attributes or {}).items():
            seen.append(f"{key}={value!r}")
        for event in span.events:
            seen.append(f"{event.name} {dict(event.attributes or {})}")
    text = "\n".join(seen)
    for what, value in secrets.items():
        assert value not in text, f"the {what} reached a span"
    for marker in ("shcat_", "shcrt_", "eyj", "?code=", "&code=", "cookie", "authorization"):
        assert marker not in text.lower()
    names = {s.name for s in spans}
    assert {"GET /auth/callback", "POST /graphql", "POST /auth/logout", "EVALSHA"} <= names
    assert any(n.endswith("/oauth/token") for n in names)  # both grants were traced, and said nothing


async def test_tracing_is_off_by_default(settings: Settings, shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(settings)
    assert type(app) is RequestLog  # no tracing layer: the request path is what it is without tracing
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BFF_URL) as client:
            await login(client)
            assert (await gql(client, headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})).status_code == 200
    stats = await shop.stats()
    assert "traceparent" not in stats["last_graphql_request"]["headers"]  # nor is an incoming one passed on
    assert stats["last_token_traceparent"] is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        (
            {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
    ],
)
def test_an_invalid_otel_value_is_one_line_naming_it_and_tracing_stays_off(
    environ: dict[str, str], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bff.tracing"):
        assert tracing_from_env(environ) is None
    lines = [r.getMessage() for r in caplog.records if r.name == "bff.tracing"]
    assert len(lines) == 1 and named in lines[0] and "\n" not in lines[0], lines


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "shop-bff"}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://otel.example/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, True),
    ],
)
async def test_the_standard_variables_switch_it(environ: dict[str, str], on: bool) -> None:
    found = tracing_from_env(environ)
    assert (found is not None) is on
    if found is not None:
        await found.shutdown()


@pytest.mark.slow
async def test_a_served_bff_exports_over_otlp_http_and_flushes_when_it_stops(
    launcher: Launcher, redis_url: str
) -> None:
    bodies: list[bytes] = []

    async def receive_traces(request: Request) -> Response:
        bodies.append(await request.body())
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    collector = ServerThread(Starlette(routes=[Route("/v1/traces", receive_traces, methods=["POST"])])).start()
    try:
        deployment = launcher.deployment(
            redis_url,
            bffs=1,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
            OTEL_SERVICE_NAME="shop-bff",
            OTEL_BSP_SCHEDULE_DELAY="600000",  # nothing leaves before the stop: the flush at shutdown sends it
        )
        bff = deployment.bffs[0]
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"{bff.url}/healthz", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert answer.status_code == 200
        assert bff.stop() == 0
    finally:
        collector.stop()

    exported = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            for scope_spans in resource_spans.scope_spans:
                exported += [(service, s.name, s.trace_id.hex()) for s in scope_spans.spans]
    assert ("shop-bff", "GET /healthz", TRACE_ID) in exported, exported
    assert "tracing on: otlp exporter, service shop-bff" in bff.output()
