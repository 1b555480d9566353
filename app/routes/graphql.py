"""`POST /graphql`: the browser's GraphQL, forwarded to the Customer Account API with the session's token.

This is the hot path, so it is a raw ASGI app that the dispatcher in main.py calls directly, past
FastAPI's routing and dependency machinery. It reads the few headers it needs in one pass, reads the
session in one Redis round trip, forwards the body bytes as received, and uses the process's one pooled
aiohttp session.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import aiohttp
from starlette.requests import cookie_parser
from starlette.types import Receive, Scope, Send

from app.errors import BFFError
from app.security import check_csrf
from app.services import Services
from app.sessions import Session

log = logging.getLogger("bff.graphql")

# Shopify's own request id is renamed: X-Request-ID is ours (see logs.py), one per response.
_PASS_RESPONSE_HEADERS = {"retry-after": b"retry-after", "x-request-id": b"x-shopify-request-id"}
_WANTED = {b"cookie", b"origin", b"x-csrf", b"content-length", b"accept-language"}
# Nothing this endpoint returns may be cached, sniffed, framed or leak a referrer.
_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
]


def _headers_of(scope: Scope) -> dict[bytes, str]:
    return {k: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}


async def _read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BFFError(413, "body_too_large", f"The GraphQL body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BFFError(400, "client_disconnected", "The client went away.")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BFFError(413, "body_too_large", f"The GraphQL body is over {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _validate(body: bytes) -> str:
    """Check the body's shape; return the query text."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BFFError(400, "invalid_json", "The body must be JSON.") from exc
    if not isinstance(document, dict):
        raise BFFError(400, "invalid_request", "The body must be a JSON object {query, variables?}.")
    query = document.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BFFError(400, "invalid_request", "`query` must be a non-empty string.")
    variables = document.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BFFError(400, "invalid_request", "`variables` must be an object.")
    name = document.get("operationName")
    if name is not None and not isinstance(name, str):
        raise BFFError(400, "invalid_request", "`operationName` must be a string.")
    return query


async def _send_upstream(
    deps: Services, url: str, body: bytes, token: str, accept_language: str | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    headers = {
        "Authorization": token,  # Shopify wants the raw token, no "Bearer"
        "Content-Type": "application/json",
        "Accept": "application/json",
        # The body is passed through as bytes: ask for it uncompressed, or the browser would get gzip
        # labelled as JSON.
        "Accept-Encoding": "identity",
        "User-Agent": deps.settings.bff_user_agent,
    }
    if accept_language:
        headers["Accept-Language"] = accept_language
    started = time.perf_counter()
    try:
        async with deps.upstream.post(url, data=body, headers=headers) as upstream:
            payload = await upstream.read()
            got = upstream.headers
            passed = [(ours, got[theirs].encode()) for theirs, ours in _PASS_RESPONSE_HEADERS.items() if theirs in got]
            content_type = upstream.headers.get("content-type", "application/json")
            passed.append((b"content-type", content_type.encode()))
            deps.metrics.upstream_latency.labels("graphql").observe(time.perf_counter() - started)
            deps.metrics.proxied.labels(str(upstream.status)).inc()
            return upstream.status, payload, passed
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise BFFError(504, "upstream_timeout", "The Customer Account API timed out.") from exc
    except aiohttp.ClientError as exc:
        raise BFFError(
            502, "upstream_unavailable", "The Customer Account API is unreachable.", headers={"Retry-After": "2"}
        ) from exc


async def _proxy(deps: Services, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    headers = _headers_of(scope)
    settings = deps.settings
    check_csrf(headers.get(b"origin"), headers.get(b"x-csrf"), settings, allow_form=False)
    body = await _read_body(receive, headers.get(b"content-length"), settings.bff_graphql_max_body_bytes)
    query = _validate(body)

    raw_cookie = cookie_parser(headers[b"cookie"]).get(deps.cookies.names.session) if b"cookie" in headers else None
    sid, resign = deps.cookies.read_session_value(raw_cookie)
    if sid is None:
        raise BFFError(401, "not_authenticated", "Log in first.")
    loaded = await deps.store.load(sid, rate_limit=deps.graphql_rate)
    if loaded is None:
        raise BFFError(401, "session_expired", "The session has ended; log in again.")
    if deps.graphql_policy.active:
        # After the session check, so only logged-in customers can make the BFF parse a document.
        deps.graphql_policy.check(query)
    session: Session = await deps.refresher.fresh(loaded)
    url = (await deps.discovery.endpoints()).graphql_url
    language = headers.get(b"accept-language")

    status, payload, out = await _send_upstream(deps, url, body, session.access_token, language)
    if status == 401:
        # The token died early (revoked, clock skew): one refresh, one retry, never a loop.
        session = await deps.refresher.refresh(session)
        status, payload, out = await _send_upstream(deps, url, body, session.access_token, language)
    if resign:
        out.append(deps.cookies.session_cookie_header(session.sid))
    return status, payload, out


class GraphQLEndpoint:
    """The ASGI app behind `POST /graphql`; errors are rendered like everywhere else."""

    def __init__(self, services: Any) -> None:
        # A callable, because the services only exist once the lifespan has started.
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        deps: Services = self._services()
        if scope["method"] != "POST":
            status, payload, out = 405, b'{"error":"method_not_allowed","detail":"Use POST."}', []
            out.append((b"allow", b"POST"))
        else:
            try:
                status, payload, out = await _proxy(deps, scope, receive)
            except BFFError as exc:
                deps.metrics.count_rejection(exc.code)
                status = exc.status
                payload = json.dumps({"error": exc.code, "detail": exc.detail}).encode()
                out = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
            except Exception as exc:
                log.error("unhandled error in /graphql: %s", type(exc).__name__, exc_info=exc)
                status, payload, out = 500, b'{"error":"internal_error","detail":"An unexpected error occurred."}', []
        if not any(k == b"content-type" for k, _ in out):
            out.append((b"content-type", b"application/json"))
        out += [*_SECURITY_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})
