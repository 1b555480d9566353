"""`create_app(config)`: the stand-in as one Starlette ASGI app, with no lifespan to run."""

from __future__ import annotations

from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from mock_shopify.admin import AdminEndpoints
from mock_shopify.authorize import AuthorizeEndpoints
from mock_shopify.config import MockConfig
from mock_shopify.discovery import DiscoveryEndpoints
from mock_shopify.graphql_http import GraphQLEndpoint
from mock_shopify.keys import KeyRing
from mock_shopify.state import Store
from mock_shopify.storefront_http import StorefrontEndpoints
from mock_shopify.token import TokenEndpoint
from mock_shopify.webhooks import WebhookEndpoints


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Shopify's own shape for unknown paths; other HTTP errors keep their plain reason phrase.
    if exc.status_code == 404:
        return JSONResponse({"errors": "Not Found"}, status_code=404)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Never a traceback, even for the stand-in's own bugs.
    return PlainTextResponse("Internal Server Error", status_code=500)


def create_app(config: MockConfig, *, signing_key: RSAKey | None = None) -> Starlette:
    """Build a fresh stand-in with empty state (inspect it through `app.state.store`).

    A new RS256 key is generated unless `signing_key` is given; test suites pass one shared key so that each
    test's fresh app does not pay for RSA key generation.
    """
    store = Store(config, KeyRing(signing_key))
    routes = [
        *DiscoveryEndpoints(store).routes(),
        *AuthorizeEndpoints(store).routes(),
        *TokenEndpoint(store).routes(),
        *GraphQLEndpoint(store).routes(),
        *AdminEndpoints(store).routes(),
        *WebhookEndpoints(store).routes(),
        *StorefrontEndpoints(store).routes(),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.store = store
    return app
