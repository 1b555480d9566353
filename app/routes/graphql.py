"""`POST /graphql`: the browser's GraphQL, forwarded to the Customer Account API with the session's token.

This is the hot path, so it is a plain Starlette endpoint (no FastAPI dependency machinery), reads the
session in one Redis round trip, forwards the body bytes as received, and uses the process's one pooled
aiohttp session.
"""

from __future__ import annotations

import json
import time

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from app.errors import BFFError
from app.security import require_csrf_proof
from app.services import Services, services_of
from app.sessions import Session

_PASS_RESPONSE_HEADERS = ("retry-after", "x-request-id")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BFFError(413, "body_too_large", f"The GraphQL body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BFFError(413, "body_too_large", f"The GraphQL body is over {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _validate(body: bytes) -> str:
    """Check the body's shape; return the query text."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BFFError(400, "invalid_json", "The body must be JSON.") from exc
    if not isinstance(document, dict):
        raise BFFError(400, "invalid_request", "The body must be a JSON object {query, variables?}.")
    if not isinstance(document.get("query"), str) or not document["query"].strip():
        raise BFFError(400, "invalid_request", "`query` must be a non-empty string.")
    variables = document.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BFFError(400, "invalid_request", "`variables` must be an object.")
    name = document.get("operationName")
    if name is not None and not isinstance(name, str):
        raise BFFError(400, "invalid_request", "`operationName` must be a string.")
    query: str = document["query"]
    return query


async def _current_session(request: Request, deps: Services) -> tuple[Session, bool]:
    sid, resign = deps.cookies.read_session(request)
    if sid is None:
        raise BFFError(401, "not_authenticated", "Log in first.")
    session = await deps.store.load(sid, rate_limit=deps.graphql_rate)
    if session is None:
        raise BFFError(401, "session_expired", "The session has ended; log in again.")
    return session, resign


async def _send(
    deps: Services, url: str, body: bytes, token: str, accept_language: str | None
) -> tuple[int, bytes, dict[str, str]]:
    headers = {
        "Authorization": token,  # Shopify wants the raw token, no "Bearer"
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": deps.settings.bff_user_agent,
    }
    if accept_language:
        headers["Accept-Language"] = accept_language
    started = time.perf_counter()
    try:
        async with deps.upstream.post(url, data=body, headers=headers) as upstream:
            payload = await upstream.read()
            passed = {h: upstream.headers[h] for h in _PASS_RESPONSE_HEADERS if h in upstream.headers}
            passed["content-type"] = upstream.headers.get("content-type", "application/json")
            deps.metrics.upstream_latency.labels("graphql").observe(time.perf_counter() - started)
            deps.metrics.proxied.labels(str(upstream.status)).inc()
            return upstream.status, payload, passed
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise BFFError(504, "upstream_timeout", "The Customer Account API timed out.") from exc
    except aiohttp.ClientError as exc:
        raise BFFError(
            502,
            "upstream_unavailable",
            "The Customer Account API is unreachable.",
            headers={"Retry-After": "2"},
        ) from exc


async def graphql_proxy(request: Request) -> Response:
    """Forward one GraphQL request; refresh the token before expiry or once after a 401."""
    deps = services_of(request)
    require_csrf_proof(request, deps.settings, allow_form=False)
    body = await _read_body(request, deps.settings.bff_graphql_max_body_bytes)
    query = _validate(body)
    if deps.graphql_policy.active:
        deps.graphql_policy.check(query)
    session, resign = await _current_session(request, deps)
    session = await deps.refresher.fresh(session)
    url = (await deps.discovery.endpoints()).graphql_url
    language = request.headers.get("accept-language")

    status, payload, headers = await _send(deps, url, body, session.access_token, language)
    if status == 401:
        # The token died early (revoked, clock skew): one refresh, one retry, never a loop.
        session = await deps.refresher.refresh(session)
        status, payload, headers = await _send(deps, url, body, session.access_token, language)
    headers["cache-control"] = "no-store"
    response = Response(payload, status_code=status, headers=headers)
    if resign:
        deps.cookies.set_session(response, session.sid)
    return response
