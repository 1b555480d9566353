"""A minimal Customer Account API stand-in: raw ASGI, fixed answers, so it is never the bottleneck.

Serves both discovery documents (pointing GraphQL at itself) and `POST /customer/api/<version>/graphql`
with a fixed ~1 KB body shaped like a real `customer` query answer. Run by the benchmark as
`uvicorn bench.upstream:create_app --factory` with BENCH_UPSTREAM_ORIGIN set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_VERSION = "2026-10"
GRAPHQL_PATH = f"/customer/api/{API_VERSION}/graphql"

_CUSTOMER = {
    "data": {
        "customer": {
            "id": "gid://shopify/Customer/7351234567890",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "displayName": "Ada Lovelace",
            "emailAddress": {"emailAddress": "ada@example.com", "marketingState": "SUBSCRIBED"},
            "phoneNumber": None,
            "creationDate": "2026-01-15T10:00:00Z",
            "defaultAddress": {
                "id": "gid://shopify/CustomerAddress/9912345678901",
                "address1": "12 Analytical Row",
                "city": "London",
                "zip": "W1 1AA",
                "territoryCode": "GB",
                "formatted": ["12 Analytical Row", "London W1 1AA", "United Kingdom"],
            },
            "orders": {
                "nodes": [
                    {
                        "id": f"gid://shopify/Order/55012345678{i}",
                        "name": f"#10{i:02d}",
                        "processedAt": "2026-10-0{i}T12:00:00Z",
                        "financialStatus": "PAID",
                        "totalPrice": {"amount": "42.00", "currencyCode": "GBP"},
                    }
                    for i in range(1, 3)
                ],
                "pageInfo": {"hasNextPage": False, "endCursor": "eyJsYXN0X2lkIjo1NTAxMjM0NTY3ODN9"},
            },
        }
    },
    "extensions": {
        "cost": {
            "requestedQueryCost": 12,
            "actualQueryCost": 12,
            "throttleStatus": {"maximumAvailable": 7500.0, "currentlyAvailable": 7488, "restoreRate": 100.0},
        }
    },
}
GRAPHQL_BODY = json.dumps(_CUSTOMER, separators=(",", ":")).encode()


def _json_start(status: int, body: bytes) -> Message:
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}


def create_app(origin: str | None = None) -> ASGIApp:
    """The upstream app; `origin` (default: $BENCH_UPSTREAM_ORIGIN) is where its GraphQL endpoint lives."""
    origin = (origin or os.environ["BENCH_UPSTREAM_ORIGIN"]).rstrip("/")
    documents = {
        "/.well-known/openid-configuration": {
            "issuer": f"{origin}/authentication/1",
            "authorization_endpoint": f"{origin}/authentication/1/oauth/authorize",
            "token_endpoint": f"{origin}/authentication/1/oauth/token",
            "end_session_endpoint": f"{origin}/authentication/1/logout",
            "jwks_uri": f"{origin}/authentication/1/.well-known/jwks.json",
        },
        "/.well-known/customer-account-api": {"graphql_api": f"{origin}{GRAPHQL_PATH}"},
    }
    bodies = {path: json.dumps(doc).encode() for path, doc in documents.items()}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and anything else: nothing to set up
        if scope["method"] == "POST" and scope["path"] == GRAPHQL_PATH:
            more = True
            while more:  # drain the request body, as a real server would
                more = (await receive()).get("more_body", False)
            status, body = 200, GRAPHQL_BODY
        elif scope["method"] == "GET" and scope["path"] in bodies:
            status, body = 200, bodies[scope["path"]]
        else:
            status, body = 404, b'{"errors":"Not Found"}'
        await send(_json_start(status, body))
        await send({"type": "http.response.body", "body": body})

    return app
