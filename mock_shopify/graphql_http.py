"""`POST /customer/api/{version}/graphql` (and its `/account` forms): raw-token auth, Shopify's HTTP error shapes,
cost, and the per-customer request limit.

A missing, unknown, revoked or expired token gets HTTP 401 with `{"errors": "Not a valid access token"}`, the
body reported for real shops; so does a `Bearer`-prefixed one. Both are unconfirmed, hence the fidelity switches
`unauthorized_body` and `reject_bearer` (mock_shopify/fidelity.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLFormattedError,
    NoSchemaIntrospectionCustomRule,
    execute_sync,
    parse,
    specified_rules,
    validate,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mock_shopify.cost import query_cost
from mock_shopify.drip import drip
from mock_shopify.graphql_api import Context, build_schema, default_resolver
from mock_shopify.knobs import Failure, take_delay, take_drip, take_failure
from mock_shopify.state import Store

_VERSION = re.compile(r"\d{4}-\d{2}|unstable")
MAX_QUERY_COST = 1000
BUCKET_SIZE = 7500.0
RESTORE_RATE = 100.0
# Shopify has no introspection at the query URL; clients must vendor the schema.
RULES = (*specified_rules, NoSchemaIntrospectionCustomRule)
_BEARER = "bearer "
# Parsed and validated documents by query text: a client sends the same few documents over and over, and
# graphql-core's validation costs more than all the rest of an answer.
DOCUMENTS_KEPT = 256
# Shopify's documented HTTP error bodies: `errors` is a string (402: shop frozen, 403: shop forbidden, 423: locked).
_HTTP_ERRORS = {
    402: "This shop's plan does not have access to this feature",
    403: "User does not have access",
    423: "This shop is unavailable",
    500: "An unexpected error occurred",
}


def _error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}


def _injected(failure: Failure, *, unauthorized: dict[str, Any]) -> Response:
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    if failure.status == 429:
        headers.setdefault("Retry-After", "1")
        return JSONResponse(_error_body("Throttled", "THROTTLED"), status_code=429, headers=headers)
    if failure.status == 401:
        return JSONResponse(unauthorized, status_code=401, headers=headers)
    if failure.status in _HTTP_ERRORS:
        return JSONResponse({"errors": _HTTP_ERRORS[failure.status]}, status_code=failure.status, headers=headers)
    # 502/503 come from the edge, not the API, so they are HTML like a load balancer's.
    text = "Bad Gateway" if failure.status == 502 else "Service Unavailable"
    return HTMLResponse(f"<html><body><h1>{failure.status} {text}</h1></body></html>", failure.status, headers)


class GraphQLEndpoint:
    """The Customer Account GraphQL API for the token's customer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.schema = build_schema()
        self._documents: dict[str, DocumentNode | list[GraphQLFormattedError]] = {}

    def routes(self) -> list[Route]:
        shop_id = self.store.config.shop_id
        return [
            Route("/customer/api/{version}/graphql", self.graphql, methods=["POST"]),
            # What one live shop advertises (the `graphql_shape` knob picks which one discovery shows).
            Route("/account/customer/api/{version}/graphql", self.graphql, methods=["POST"]),
            # Hydrogen's hard-coded form of the same endpoint.
            Route(f"/{shop_id}/account/customer/api/{{version}}/graphql", self.graphql, methods=["POST"]),
        ]

    def _cost(self, email: str, requested: int) -> tuple[dict[str, Any], bool]:
        """The `extensions.cost` block, and whether the customer's bucket can pay for the query."""
        now = time.monotonic()
        available, since = self.store.buckets.get(email, (BUCKET_SIZE, now))
        available = min(BUCKET_SIZE, available + (now - since) * RESTORE_RATE)
        affordable = requested <= available
        if affordable:
            available -= requested
        self.store.buckets[email] = (available, now)
        cost = {
            "requestedQueryCost": requested,
            "actualQueryCost": requested if affordable else None,
            "throttleStatus": {
                "maximumAvailable": BUCKET_SIZE,
                "currentlyAvailable": int(available),
                "restoreRate": RESTORE_RATE,
            },
        }
        return cost, affordable

    def _document(self, query: str) -> DocumentNode | list[GraphQLFormattedError]:
        """The parsed, valid document for `query`, or its errors (formatted), cached by the query's text."""
        found = self._documents.get(query)
        if found is None:
            try:
                document = parse(query)
            except GraphQLError as exc:
                found = [exc.formatted]
            else:
                errors = validate(self.schema, document, RULES)
                found = [e.formatted for e in errors] if errors else document
            if len(self._documents) >= DOCUMENTS_KEPT:
                del self._documents[next(iter(self._documents))]  # the oldest: a bound, not an LRU
            self._documents[query] = found
        return found

    async def graphql(self, request: Request) -> Response:
        response = await self._answer(request)
        # Like Shopify, every answer carries its own request id (support tickets quote it).
        response.headers["x-request-id"] = str(uuid.uuid4())
        if interval := take_drip(self.store.knobs.drip_graphql):
            return drip(response, interval)
        return response

    async def _answer(self, request: Request) -> Response:
        store, fidelity = self.store, self.store.knobs.fidelity
        store.stats.graphql_requests += 1
        unauthorized = {"errors": fidelity.unauthorized_body}
        authorization = request.headers.get("authorization")
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        store.stats.last_graphql_request = {"authorization": authorization, "headers": headers}
        if seconds := take_delay(store.knobs.delay_graphql):
            await asyncio.sleep(seconds)
        if not _VERSION.fullmatch(request.path_params["version"]):
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        if failure := take_failure(store.knobs.fail_graphql):
            return _injected(failure, unauthorized=unauthorized)
        raw = authorization or ""
        if not fidelity.reject_bearer and raw[: len(_BEARER)].lower() == _BEARER:
            raw = raw[len(_BEARER) :]
        token = store.live_access_token(raw) if raw else None
        if token is None:
            return JSONResponse(unauthorized, status_code=401)
        limit = store.knobs.customer_requests_per_minute
        if retry_after := store.request_windows.count(token.email, now=store.clock(), limit=limit):
            headers = {"Retry-After": str(retry_after)}
            return JSONResponse(_error_body("Throttled", "THROTTLED"), status_code=429, headers=headers)
        try:
            payload = json.loads(await request.body())
        except ValueError:
            payload = None
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("query"), str)
            or not isinstance(payload.get("variables") or {}, dict)
            or not isinstance(payload.get("operationName") or "", str)
        ):
            return JSONResponse({"errors": {"query": "Required parameter missing or invalid"}}, status_code=400)
        variables: dict[str, Any] = payload.get("variables") or {}
        operation_name: str | None = payload.get("operationName") or None
        document = self._document(payload["query"])
        if isinstance(document, list):
            return JSONResponse({"errors": document})
        requested = query_cost(self.schema, document, operation_name, variables)
        if requested > MAX_QUERY_COST:
            message = f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST})."
            body = _error_body(message, "MAX_COST_EXCEEDED", cost=requested, maxCost=MAX_QUERY_COST)
            return JSONResponse(body)
        cost, affordable = self._cost(token.email, requested)
        if not affordable:
            # Shopify answers cost throttling with HTTP 200 and a THROTTLED error, not 429.
            body = _error_body("Throttled", "THROTTLED", documentation="https://shopify.dev/api/usage/limits")
            return JSONResponse({**body, "extensions": {"cost": cost}})
        result = execute_sync(
            self.schema,
            document,
            context_value=Context(
                customer=store.customer(token.email), shop_id=store.config.shop_id, shop_name=store.config.shop_name
            ),
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=default_resolver,
        )
        return JSONResponse({**result.formatted, "extensions": {"cost": cost}})
