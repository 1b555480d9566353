"""Optional OpenTelemetry traces: off unless the standard `OTEL_*` variables ask for them.

On, each request gets one server span (the outermost pipeline layer, so the raw `/graphql` path too), with
client spans under it for Redis commands, the shop's auth host (discovery, JWKS, token endpoint), the
Customer Account API and the Storefront API; W3C `traceparent` is continued from the request and passed
to Shopify. Off, nothing here is installed: no layer, no wrapper, no span object, not even a check.

The spans are our own, thin, rather than the contrib instrumentations': the ASGI one records the query
string (which carries OAuth codes), the HTTP ones capture request headers when an `OTEL_*` variable asks
(`Authorization`, the Storefront private token), the Redis one records arguments (session keys carry a
session id). So no span here has a header, cookie, query string, body, Redis key or argument, or a path
with an id in it: a server span names its route template (`/auth/sessions/{handle}/end`), a client span
the upstream URL without query, a Redis span only the command's name; failures only their exception class.
Only `traceparent` and `tracestate` are read from or written to headers (no baggage: what a browser puts
there must not reach Shopify).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # the SDK is imported only when tracing is on (tracing_from_env)
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger("bff.tracing")

SERVICE_NAME = "customer-account-bff"
_PROPAGATOR = TraceContextTextMapPropagator()
_PROPAGATED = (b"traceparent", b"tracestate")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
_COMMAND = re.compile(r"^[A-Za-z][A-Za-z ]{0,31}$")
_SAMPLERS = {"always_on", "always_off", "traceidratio"}


class Invalid(ValueError):
    """An `OTEL_*` value this service cannot honour; the message names the variable, never a secret value."""


class Tracing:
    """The process's tracer and its provider; `create_app` installs its pieces and the lifespan shuts it down."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("customer-account-bff")

    async def shutdown(self) -> None:
        """Flush what is queued (bounded by the exporter's timeout) off the event loop, then stop."""
        await asyncio.to_thread(self.provider.shutdown)

    def layer(self, app: ASGIApp) -> ASGIApp:
        """The inbound span around `app`: compose it outermost, once."""
        return TraceRequests(app, self.tracer)

    def http_transport(self, inner: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncBaseTransport:
        """An httpx transport that spans each call and sends `traceparent` (wraps `inner`, default httpx's own)."""
        return _TracedTransport(inner or httpx.AsyncHTTPTransport(), self.tracer)

    def aiohttp_trace_config(self) -> aiohttp.TraceConfig:
        """For `aiohttp.ClientSession(trace_configs=[...])`: a span per request, `traceparent` sent."""
        tracer, config = self.tracer, aiohttp.TraceConfig()

        async def start(_: object, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
            ctx.span = tracer.start_span(_client_name(params.method, params.url.path), kind=SpanKind.CLIENT)
            url = params.url
            _describe_call(ctx.span, params.method, url.scheme, url.host or "", url.explicit_port, url.path)
            params.headers.update(_outbound(ctx.span))

        async def end(_: object, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
            _answered(ctx.span, params.response.status)
            ctx.span.end()

        async def failed(_: object, ctx: Any, params: aiohttp.TraceRequestExceptionParams) -> None:
            _failed(ctx.span, params.exception)
            ctx.span.end()

        config.on_request_start.append(start)
        config.on_request_end.append(end)
        config.on_request_exception.append(failed)
        return config

    @contextmanager
    def redis_span(self, command: object, *, batch: int | None = None) -> Iterator[None]:
        """A client span for one Redis command (or a pipeline of `batch`); its name only, never a key or value."""
        text = command.decode("latin-1") if isinstance(command, bytes) else str(command)
        name = text.upper() if _COMMAND.match(text) else "REDIS"
        attributes: dict[str, Any] = {"db.system.name": "redis", "db.operation.name": name}
        if batch is not None:
            attributes["db.operation.batch.size"] = batch
        with self.tracer.start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield
            except BaseException as exc:
                _failed(span, exc)
                raise

    def traced_redis(self, client: Any) -> Any:
        """Span every command of a redis-py client (scripts and locks go through `execute_command`) and
        every pipeline; returns the same client."""
        execute = client.execute_command
        make_pipeline = client.pipeline

        async def execute_command(*args: Any, **options: Any) -> Any:
            with self.redis_span(args[0] if args else "REDIS"):
                return await execute(*args, **options)

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = make_pipeline(*args, **kwargs)
            run = pipe.execute

            async def execute_pipeline(*a: Any, **kw: Any) -> Any:
                stack = getattr(pipe, "command_stack", None) or getattr(pipe, "_command_stack", [])
                with self.redis_span("PIPELINE", batch=len(stack)):
                    return await run(*a, **kw)

            pipe.execute = execute_pipeline
            return pipe

        client.execute_command = execute_command
        client.pipeline = pipeline
        return client

    def traced_script(self, script: Any) -> Any:
        """Span each call of a hot-path script runner (`(keys, args) -> reply`) as its EVALSHA."""

        async def call(keys: list[str], args: list[Any]) -> Any:
            with self.redis_span("EVALSHA"):
                return await script(keys=keys, args=args)

        return call


class TraceRequests:
    """Pure ASGI layer: one server span per HTTP request, continuing an incoming `traceparent`; every log
    line of the request carries its `trace_id`."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _PROPAGATED}
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        status = 500
        with self.tracer.start_as_current_span(
            method,
            context=_PROPAGATOR.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "http")},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def send_noting_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            trace_id = format(span.get_span_context().trace_id, "032x")
            try:
                with structlog.contextvars.bound_contextvars(trace_id=trace_id):
                    await self.app(scope, receive, send_noting_status)
            except BaseException as exc:
                _failed(span, exc)
                raise
            finally:
                # Routed now: FastAPI put its route in the scope; the raw path is named by its path alone.
                route = scope["path"] if scope["path"] == "/graphql" else getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


class _TracedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with self._tracer.start_as_current_span(
            _client_name(request.method, request.url.path),
            kind=SpanKind.CLIENT,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            url = request.url
            _describe_call(span, request.method, url.scheme, url.host, url.port, url.path)
            request.headers.update(_outbound(span))
            try:
                response = await self._inner.handle_async_request(request)
            except BaseException as exc:
                _failed(span, exc)
                raise
            _answered(span, response.status_code)
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _client_name(method: str, path: str) -> str:
    return f"{method if method in _METHODS else '_OTHER'} {path}"


def _describe_call(span: Span, method: str, scheme: str, host: str, port: int | None, path: str) -> None:
    # Built from scheme, host, port and path only: no userinfo, no query, no fragment.
    span.set_attribute("http.request.method", method if method in _METHODS else "_OTHER")
    span.set_attribute("server.address", host)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        span.set_attribute("server.port", port)
        netloc = f"{netloc}:{port}"
    span.set_attribute("url.full", f"{scheme}://{netloc}{path}")


def _outbound(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def _answered(span: Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        span.set_status(Status(StatusCode.ERROR))
        span.set_attribute("error.type", str(status))


def _failed(span: Span, exc: BaseException) -> None:
    # The class only: a message may quote a URL, a host or a value.
    span.set_status(Status(StatusCode.ERROR))
    span.set_attribute("error.type", type(exc).__qualname__)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value not in ("", "true", "false"):
        raise Invalid(f"{name} must be true or false")
    return value == "true"


def _exporters(environ: Mapping[str, str]) -> list[str]:
    """Which exporters the environment asks for; none means tracing stays off."""
    if _flag(environ, "OTEL_SDK_DISABLED"):
        return []
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    # Unlike the SDK's own default (otlp), nothing set means off: an endpoint alone is asking for otlp.
    names = [n.strip() for n in raw.split(",") if n.strip()] or (["otlp"] if endpoint else [])
    if unknown := sorted(set(names) - {"otlp", "console", "none"}):
        raise Invalid(f"OTEL_TRACES_EXPORTER: {', '.join(unknown)[:40]!r} is not supported (otlp, console or none)")
    names = [n for n in names if n != "none"]
    if "otlp" in names:
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = environ.get(variable, "").strip()
            if protocol not in ("", "http/protobuf"):
                raise Invalid(f"{variable}: only http/protobuf is supported, got {protocol[:40]!r}")
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            url = environ.get(variable, "").strip()
            if url and not re.match(r"^https?://[^/?#]+", url):
                raise Invalid(f"{variable} must be an http:// or https:// URL")  # not echoed: it may hold a key
    return names


def _endpoint(environ: Mapping[str, str]) -> str:
    # As the OTLP specification has it: the traces variable is the whole URL, the general one a base.
    if traces := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip():
        return traces
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "http://localhost:4318"
    return f"{base.rstrip('/')}/v1/traces"


def _sampler(environ: Mapping[str, str]) -> Sampler:
    from opentelemetry.sdk.trace import sampling

    name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    root = name.removeprefix("parentbased_")
    if root not in _SAMPLERS:
        raise Invalid(f"OTEL_TRACES_SAMPLER: {name[:40]!r} is not a known sampler")
    chosen: Sampler = sampling.ALWAYS_ON if root == "always_on" else sampling.ALWAYS_OFF
    if root == "traceidratio":
        try:
            ratio = float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise Invalid("OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1")
        chosen = sampling.TraceIdRatioBased(ratio)
    return sampling.ParentBased(chosen) if name.startswith("parentbased_") else chosen


def tracing_from_env(environ: Mapping[str, str]) -> Tracing | None:
    """Tracing as the `OTEL_*` variables ask, or None (off). An invalid value logs one line naming the
    variable and leaves tracing off; the service runs either way (tracing is never worth an outage)."""
    try:
        names = _exporters(environ)
        if not names:
            return None
        sampler = _sampler(environ)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        processors: list[SpanProcessor] = []

        if "otlp" in names:
            # Imported only when asked for: it brings `requests` and protobuf. The endpoint is the one
            # validated above; the exporter reads the other standard variables itself (headers, timeout,
            # compression, certificates).
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=_endpoint(environ))))
        if "console" in names:
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
    except (Invalid, ValueError) as exc:  # the SDK's own: OTEL_BSP_* and the exporter's settings
        log.error("tracing is off: %s", exc)
        return None
    except ImportError as exc:
        log.error("tracing is off: OTEL_* asks for traces but %s is not installed", exc.name)
        return None
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(sampler=sampler, resource=resource)
    for processor in processors:
        provider.add_span_processor(processor)
    log.info("tracing on: %s exporter, service %s", ", ".join(names), resource.attributes["service.name"])
    return Tracing(provider)
