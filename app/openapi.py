"""The OpenAPI document and `/docs` (development mode only): honest about errors, served without a CDN.

FastAPI's generated document misses the hot path (`POST /graphql` is a raw ASGI endpoint, routed before
FastAPI sees the request) and promises a 422 validation body the BFF never sends (`main.py` renders every
validation failure as `400 invalid_request`). So the document is FastAPI's, then corrected here: the
422s go, `/graphql` is described by hand, and each operation lists the catalog codes (errors.py) it can
answer, grouped by status, each with the `{"error", "detail"}` body.

Swagger UI's files come from the `fastapi-offline` package, served same-origin under `/docs/assets/`,
with a page of our own whose only script sources are those files: the page's CSP allows nothing else.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.responses import FileResponse, JSONResponse, Response

from app.errors import (
    AccessDenied,
    AccountSelectionRequired,
    AuthorizationFailed,
    BFFError,
    BodyTimeout,
    BodyTooLarge,
    CartDisabled,
    CartNotFound,
    CartRejected,
    CheckoutUrlRefused,
    ClientDisconnected,
    CodeRejected,
    ConsentRequired,
    CsrfFailed,
    DiscoveryFailed,
    DiscoveryTimeout,
    InteractionRequired,
    InternalError,
    InvalidClient,
    InvalidIdToken,
    InvalidJSON,
    InvalidRequest,
    InvalidReturnTo,
    InvalidSignature,
    InvalidState,
    LoginCapacity,
    LoginRequired,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    OperationNotAllowed,
    OriginNotAllowed,
    QueryTooDeep,
    QueryTooLarge,
    RateLimited,
    RefreshTimeout,
    SessionExpired,
    SessionNotFound,
    SessionStoreUnavailable,
    StateMismatch,
    StorefrontError,
    StorefrontTimeout,
    StorefrontUnavailable,
    TokenEndpointError,
    TokenEndpointThrottled,
    TokenEndpointTimeout,
    TokenEndpointUnavailable,
    UnknownShop,
    UnsupportedMediaType,
    UpstreamTimeout,
    UpstreamUnavailable,
    WebhooksDisabled,
    catalog,
)

DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"
ASSETS = f"{DOCS_PATH}/assets"
_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
# In a file, not inline in the page, so the CSP needs no 'unsafe-inline' for scripts. validatorUrl: null,
# or Swagger UI would show a badge fetched from swagger.io.
_INIT_JS = f"""window.ui = SwaggerUIBundle({{
  url: "{OPENAPI_PATH}",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
}});
"""
_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>customer-account-bff: API</title>
<link rel="icon" href="{ASSETS}/favicon.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/init.js"></script>
</body>
</html>
"""
# Same origin only. Styles allow 'unsafe-inline' because Swagger UI's components write style attributes;
# a style cannot run code, and no script source but our own files is allowed.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

# --- which codes each operation can answer ------------------------------------------------------

Errors = Sequence[type[BFFError]]
_STORE: Errors = (SessionStoreUnavailable,)
_SESSION: Errors = (NotAuthenticated, SessionExpired, SessionStoreUnavailable)
_DISCOVERY: Errors = (DiscoveryFailed, DiscoveryTimeout)
_TOKEN_ENDPOINT: Errors = (
    TokenEndpointError,
    InvalidClient,
    TokenEndpointUnavailable,
    TokenEndpointThrottled,
    TokenEndpointTimeout,
)
_REFRESH: Errors = (SessionExpired, *_TOKEN_ENDPOINT, RefreshTimeout, *_DISCOVERY)
_BODY: Errors = (BodyTooLarge, BodyTimeout, ClientDisconnected, InvalidJSON, InvalidRequest)
_STOREFRONT: Errors = (StorefrontUnavailable, StorefrontError, StorefrontTimeout, RateLimited)
_CART: Errors = (
    CsrfFailed,
    UnsupportedMediaType,
    *_BODY,
    CartDisabled,
    CartNotFound,
    CartRejected,
    CheckoutUrlRefused,
    *_STOREFRONT,
    *_STORE,
)
_LOGIN_ERRORS = (
    InvalidState,
    StateMismatch,
    CodeRejected,
    InvalidIdToken,
    LoginRequired,
    InteractionRequired,
    ConsentRequired,
    AccountSelectionRequired,
    AccessDenied,
    AuthorizationFailed,
)

# (method, path) -> the codes beyond `internal_error`, which any operation can answer. A path whose query
# or path parameters FastAPI validates also gets `invalid_request` (see `_without_422`).
ROUTE_ERRORS: dict[tuple[str, str], Errors] = {
    ("get", "/auth/login"): (InvalidReturnTo, RateLimited, LoginCapacity, *_STORE, *_DISCOVERY),
    ("get", "/auth/callback"): (
        InvalidRequest,
        *_LOGIN_ERRORS,
        SessionExpired,
        RateLimited,
        LoginCapacity,
        *_STORE,
        *_DISCOVERY,
        *_TOKEN_ENDPOINT,
    ),
    ("get", "/auth/session"): _STORE,
    ("post", "/auth/logout"): (CsrfFailed, *_STORE),
    ("get", "/auth/logout/continue"): _STORE,
    ("get", "/auth/sessions"): _SESSION,
    ("post", "/auth/sessions/{handle}/end"): (CsrfFailed, *_SESSION, SessionNotFound),
    ("post", "/webhooks/shopify"): (WebhooksDisabled, InvalidSignature, *_BODY, *_STORE),
    ("get", "/metrics"): (NotFound,),
    ("post", "/cart/buyer-identity"): (*_CART, *_SESSION, RateLimited, *_REFRESH),
    ("post", "/cart/checkout"): (*_CART, SessionExpired, RateLimited, *_REFRESH),
    ("post", "/graphql"): (
        CsrfFailed,
        *_SESSION,
        RateLimited,
        *_BODY,
        QueryTooDeep,
        QueryTooLarge,
        OperationNotAllowed,
        *_REFRESH,
        UpstreamUnavailable,
        UpstreamTimeout,
    ),
}
# Answered by the pipeline before any route, on any path: named in the document's description.
PIPELINE_ERRORS: Errors = (NotFound, UnknownShop, MethodNotAllowed, OriginNotAllowed, InternalError)

_GRAPHQL = {
    "summary": "Proxy a GraphQL request to the Customer Account API, with the session's access token",
    "description": (
        "The hot path (a raw ASGI endpoint, not a FastAPI route). Needs the session cookie and the header "
        "`X-CSRF: 1`; the body is passed on as is. Shopify's own answer comes back with its status (a GraphQL "
        "`errors` list with 200, its throttling 429 with `Retry-After`); the BFF's own failures are the codes "
        "below."
    ),
    "operationId": "graphql",
    "tags": ["graphql"],
    "parameters": [
        {
            "name": "X-CSRF",
            "in": "header",
            "required": True,
            "description": "CSRF proof: the value `1` (a custom header forces a CORS preflight).",
            "schema": {"type": "string", "const": "1"},
        },
        {
            "name": "bff_session",
            "in": "cookie",
            "required": True,
            "description": "The signed session cookie the login set (`__Host-bff_session` on https).",
            "schema": {"type": "string"},
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["query"],
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "description": "The GraphQL document."},
                        "variables": {"type": ["object", "null"], "description": "The document's variables."},
                        "operationName": {"type": ["string", "null"], "description": "Which operation to run."},
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "The Customer Account API's answer, passed through (GraphQL errors included).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "data": {"type": ["object", "null"]},
                            "errors": {"type": "array", "items": {"type": "object"}},
                            "extensions": {"type": "object"},
                        },
                    }
                }
            },
        }
    },
}


def _error_responses(errors: Iterable[type[BFFError]]) -> dict[str, Any]:
    """One response per status, naming each code (and its meaning) that status can carry."""
    by_status: dict[int, list[type[BFFError]]] = {}
    for cls in errors:
        found = by_status.setdefault(cls.status, [])
        if all(known.code != cls.code for known in found):
            found.append(cls)
    responses: dict[str, Any] = {}
    meanings = catalog()
    for status, classes in sorted(by_status.items()):
        codes = [cls.code for cls in classes]
        properties: dict[str, Any] = {
            "error": {"type": "string", "enum": codes},
            "detail": {"type": "string", "description": "For people; may change. Match on `error`."},
        }
        if CartRejected in classes:
            properties["userErrors"] = {"type": "array", "items": {"type": "object"}}
        response: dict[str, Any] = {
            "description": "; ".join(f"`{cls.code}`: {meanings[cls.code][1]}" for cls in classes),
            "content": {
                "application/json": {
                    "schema": {"type": "object", "required": ["error", "detail"], "properties": properties}
                }
            },
        }
        if status in (429, 503) or any(cls.retry_after for cls in classes):
            response["headers"] = {
                "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
            }
        responses[str(status)] = response
    return responses


def _without_422(operation: dict[str, Any]) -> bool:
    """Drop FastAPI's validation response; true when there was one (the operation validates parameters)."""
    responses: dict[str, Any] = operation.get("responses", {})
    found = responses.get("422")
    if found is None or "HTTPValidationError" not in json.dumps(found):
        return False
    del responses["422"]
    return True


def build_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for `app`'s routes, corrected as the module docstring says."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=(
            'Every error is JSON `{"error": code, "detail": text}` with a stable code from the catalog; '
            "any path can also answer "
            + ", ".join(f"`{cls.status} {cls.code}`" for cls in PIPELINE_ERRORS)
            + " (an unknown path, a host that is no configured shop's, a wrong method, a refused CORS preflight, an "
            "unexpected failure)."
        ),
        routes=app.routes,
    )
    paths: dict[str, Any] = document.setdefault("paths", {})
    paths["/graphql"] = {"post": copy.deepcopy(_GRAPHQL)}
    for path, item in paths.items():
        for method, operation in item.items():
            errors = [*ROUTE_ERRORS.get((method, path), ()), InternalError]
            if _without_422(operation):
                errors.insert(0, InvalidRequest)
            operation["responses"].update(_error_responses(errors))
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if "components" in document and not schemas:
        document["components"].pop("schemas", None)
        if not document["components"]:
            del document["components"]
    return document


def install_docs(app: FastAPI) -> None:
    """Serve `/openapi.json`, the `/docs` page and its assets (call it after every router is included)."""
    # Imported here: outside development mode nothing loads it. Swagger UI 5 (OpenAPI 3.1, which FastAPI
    # writes), as the package ships it next to its module.
    import fastapi_offline

    files = Path(fastapi_offline.__file__).parent / "static"
    document: dict[str, Any] = {}

    async def openapi_json() -> Response:
        if not document:
            document.update(build_document(app))  # once: the routes are fixed by now
        return JSONResponse(document)

    async def docs_page() -> Response:
        return Response(_PAGE, media_type="text/html", headers={"Content-Security-Policy": DOCS_CSP})

    async def asset(name: str) -> Response:
        if name == "init.js":
            return Response(_INIT_JS, media_type="text/javascript")
        if name not in _FILES:
            raise NotFound()
        return FileResponse(files / name, media_type=_FILES[name])

    app.add_api_route(OPENAPI_PATH, openapi_json, methods=["GET"], include_in_schema=False)
    app.add_api_route(DOCS_PATH, docs_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{ASSETS}/{{name}}", asset, methods=["GET"], include_in_schema=False)
