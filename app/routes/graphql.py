"""`POST /graphql`: the browser's GraphQL, forwarded to the Customer Account API with the session's token.

This is the hot path, so it is a raw ASGI app that the dispatcher (pipeline.py) calls directly, past
FastAPI's routing and dependency machinery. It reads the few headers it needs in one pass, resolves the
session with the same function as the routes (one Redis round trip), forwards the body bytes as
received, and lets the pipeline add the security, CORS and request-id headers like everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from app.bodies import read_body
from app.config import Settings
from app.deps import Services, load_session, require
from app.errors import (
    BFFError,
    InvalidJSON,
    InvalidRequest,
    MethodNotAllowed,
    NotAuthenticated,
    render,
    send_error,
)
from app.rates import SessionRates
from app.security import check_csrf
from app.shopify.graphql import GraphQLReply
from app.urls import Origin

_WANTED = {b"cookie", b"origin", b"x-csrf", b"content-length", b"accept-language"}


def _headers_of(scope: Scope) -> dict[bytes, str]:
    return {k: v.decode("latin-1") for k, v in scope["headers"] if k in _WANTED}


def _validate(body: bytes) -> str:
    """Check the body's shape; return the query text."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidJSON("The body must be JSON.") from exc
    if not isinstance(document, dict):
        raise InvalidRequest("The body must be a JSON object {query, variables?}.")
    query = document.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("`query` must be a non-empty string.")
    variables = document.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise InvalidRequest("`variables` must be an object.")
    name = document.get("operationName")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("`operationName` must be a string.")
    return query


@dataclass(frozen=True, slots=True)
class _Settings:
    """What the hot path reads from the settings per request, read once per set of services: the
    properties over Settings' private attributes go through pydantic's `__getattr__` on every read."""

    trusted_origins: frozenset[Origin]
    rates: SessionRates
    max_body: int
    body_deadline: float

    @classmethod
    def of(cls, settings: Settings) -> _Settings:
        return cls(
            settings.trusted_origins,
            settings.graphql_rates,
            settings.bff_graphql_max_body_bytes,
            settings.bff_body_read_timeout,
        )


async def _proxy(deps: Services, settings: _Settings, scope: Scope, receive: Receive) -> GraphQLReply:
    headers = _headers_of(scope)
    check_csrf(headers.get(b"origin"), headers.get(b"x-csrf"), settings.trusted_origins, allow_form=False)
    cookie = deps.cookies.session(headers.get(b"cookie"))
    if cookie.sid is None:
        # Before the body is read or parsed: without a signed cookie a request costs one HMAC.
        raise NotAuthenticated("Log in first.")
    # The session and its rate limit come before the body too, so a session over its limit (or a
    # flood from a dead one) costs one Redis round trip and never a body read or a JSON parse.
    found = await load_session(cookie, deps.sessions, rates=settings.rates)
    session = require(found)
    body = await read_body(
        receive,
        headers.get(b"content-length"),
        limit=settings.max_body,
        deadline=settings.body_deadline,
        what="The GraphQL body",
    )
    query = _validate(body)
    if deps.graphql_policy.active:
        # After the session check, so only logged-in customers can make the BFF parse a document.
        deps.graphql_policy.check(query)
    # Plain checks first: the steady state creates no coroutine for a refresh or a discovery not due.
    if deps.refresher.due(session):
        session = await deps.refresher.fresh(session)
    url = (deps.discovery.current() or await deps.discovery.endpoints()).graphql_url
    language = headers.get(b"accept-language")

    reply = await deps.graphql.post(url, body, token=session.access_token, accept_language=language)
    if reply.status == 401:
        # The token died early (revoked, clock skew): one refresh, one retry, never a loop.
        session = await deps.refresher.refresh(session)
        reply = await deps.graphql.post(url, body, token=session.access_token, accept_language=language)
    if found.resign:
        reply.headers.append(deps.cookies.set_session(session.sid))
    return reply


class GraphQLEndpoint:
    """The ASGI app behind `POST /graphql`; catalog errors are rendered like everywhere else."""

    def __init__(self, services: Callable[[], Services]) -> None:
        # A callable, because the services only exist once the lifespan has started.
        self._services = services
        self._settings_of: tuple[Services, _Settings] | None = None  # a restarted lifespan brings new ones

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await send_error(send, MethodNotAllowed("Use POST.", headers={"Allow": "POST"}))
            return
        deps = self._services()
        if self._settings_of is None or self._settings_of[0] is not deps:
            self._settings_of = (deps, _Settings.of(deps.settings))
        try:
            reply = await _proxy(deps, self._settings_of[1], scope, receive)
            status, out, payload = reply.status, reply.headers, reply.body
        except BFFError as exc:
            deps.metrics.count_rejection(exc.code)
            status, out, payload = render(exc)
        out.append((b"content-length", b"%d" % len(payload)))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})
