"""The Storefront API over HTTP: `POST /api/{version}/graphql.json`, the checkout page, its `/_mock/storefront/` knobs.

A request carries either the private token (`Shopify-Storefront-Private-Token`, from a server, whose
`Shopify-Storefront-Buyer-IP` is recorded) or the public one (`X-Shopify-Storefront-Access-Token`, from a
browser, which gets CORS headers as from Shopify); anything else is HTTP 401. A cart's `checkoutUrl` opens
the checkout page, which shows "Checking out as {email}" while the cart holds a live customer token and
"Guest checkout" otherwise. `/_mock/reset` does not reach this state: `/_mock/storefront/reset` does.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from graphql import GraphQLError, NoSchemaIntrospectionCustomRule, execute_sync, parse, specified_rules, validate
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mock_shopify.authorize import LOGIN_COOKIE
from mock_shopify.customers import CURRENCY
from mock_shopify.graphql_api import default_resolver
from mock_shopify.knobs import Delay, Failure, take_delay, take_failure
from mock_shopify.pages import checkout_page, error_page
from mock_shopify.state import Store
from mock_shopify.storefront_api import PRODUCTS_BY_ID as PRODUCTS
from mock_shopify.storefront_api import Context, Storefront, build_schema

_VERSION = re.compile(r"\d{4}-\d{2}|unstable")
_ORIGIN = re.compile(r"https?://[^/?#\s]+")
RULES = (*specified_rules, NoSchemaIntrospectionCustomRule)
FAILURES = (401, 429, 500, 502, 503)
UNAUTHORIZED = {"errors": [{"message": "", "extensions": {"code": "UNAUTHORIZED"}}]}
# Public access is meant for browsers on any origin; no cookies are involved, so `*` is what Shopify sends.
_CORS = {"Access-Control-Allow-Origin": "*"}
_PREFLIGHT = {
    **_CORS,
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Accept, Accept-Language, Content-Type, X-Shopify-Storefront-Access-Token",
    "Access-Control-Max-Age": "600",
}


class BadKnob(ValueError):
    """A knob body that does not make sense; answered with 400."""


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _injected(failure: Failure) -> Response:
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    if failure.status == 401:
        return JSONResponse(UNAUTHORIZED, status_code=401)
    if failure.status == 429:
        headers.setdefault("Retry-After", "1")
        body = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
        return JSONResponse(body, status_code=429, headers=headers)
    if failure.status == 500:
        return JSONResponse({"errors": "An unexpected error occurred"}, status_code=500, headers=headers)
    text = "Bad Gateway" if failure.status == 502 else "Service Unavailable"
    return HTMLResponse(f"<html><body><h1>{failure.status} {text}</h1></body></html>", failure.status, headers)


def _price(amount: Decimal) -> str:
    return f"{CURRENCY} {amount:.2f}"


def _number(body: dict[str, Any], name: str, *, default: float | None = None, positive: bool = False) -> float:
    value = body.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or (positive and value == 0):
        raise BadKnob(f"{name} must be a number {'>' if positive else '>='} 0")
    return float(value)


class StorefrontEndpoints:
    """The Storefront API, the checkout page and the knobs, over one `Storefront` state."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.storefront = Storefront(store)
        self.schema = build_schema()

    def routes(self) -> list[Route]:
        knobs: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "reset": self._reset,
            "fail": self._fail,
            "delay": self._delay,
            "domains": self._domains,
        }
        return [
            Route("/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            Route("/api/{version}/graphql.json", self.preflight, methods=["OPTIONS"]),
            Route("/cart/c/{token}", self.checkout, methods=["GET"]),
            *(Route(f"/_mock/storefront/{name}", self._knob(fn), methods=["POST"]) for name, fn in knobs.items()),
            Route("/_mock/storefront/stats", self.stats, methods=["GET"]),
            Route("/_mock/storefront/cart", self.cart, methods=["GET"]),
        ]

    # --- the API ------------------------------------------------------------------------------------

    async def preflight(self, request: Request) -> Response:
        return Response(status_code=204, headers=_PREFLIGHT)

    async def graphql(self, request: Request) -> Response:
        response = await self._answer(request)
        if "origin" in request.headers:
            response.headers.update(_CORS)
        return response

    def _authorized(self, request: Request) -> bool:
        """Either token, never both; a private-token request's buyer IP is recorded."""
        config, stats = self.store.config, self.storefront.stats
        private = request.headers.get("shopify-storefront-private-token")
        public = request.headers.get("x-shopify-storefront-access-token")
        if private is not None and public is None and _same(private, config.storefront_private_token):
            stats.private_requests += 1
            stats.buyer_ips.append(request.headers.get("shopify-storefront-buyer-ip"))
            return True
        if public is not None and private is None and _same(public, config.storefront_public_token):
            stats.public_requests += 1
            return True
        stats.unauthorized += 1
        return False

    async def _answer(self, request: Request) -> Response:
        storefront = self.storefront
        storefront.stats.requests += 1
        storefront.stats.traceparents.append(request.headers.get("traceparent"))
        if not _VERSION.fullmatch(request.path_params["version"]):
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        if failure := take_failure(storefront.knobs.fail):
            return _injected(failure)
        # Counted and read on arrival: a delayed answer must not count into the next test's stats.
        authorized = self._authorized(request)
        raw = await request.body()
        if seconds := take_delay(storefront.knobs.delay):
            await asyncio.sleep(seconds)
        if not authorized:
            return JSONResponse(UNAUTHORIZED, status_code=401)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("query"), str)
            or not isinstance(payload.get("variables") or {}, dict)
            or not isinstance(payload.get("operationName") or "", str)
        ):
            return JSONResponse({"errors": {"query": "Required parameter missing or invalid"}}, status_code=400)
        try:
            document = parse(payload["query"])
        except GraphQLError as exc:
            return JSONResponse({"errors": [exc.formatted]})
        if errors := validate(self.schema, document, RULES):
            return JSONResponse({"errors": [e.formatted for e in errors]})
        result = execute_sync(
            self.schema,
            document,
            context_value=Context(storefront=storefront),
            variable_values=payload.get("variables") or {},
            operation_name=payload.get("operationName") or None,
            field_resolver=default_resolver,
        )
        return JSONResponse(result.formatted)

    # --- checkout -----------------------------------------------------------------------------------

    async def checkout(self, request: Request) -> Response:
        storefront = self.storefront
        cart = storefront.by_token(request.path_params["token"], request.query_params.get("key", ""))
        if cart is None:
            return error_page("This cart does not exist or has expired.", status=404)
        customer = storefront.customer(cart.buyer)
        if customer is None and request.query_params.get("sso") == "silent":
            # Shopify's tokenless alternative: the buyer is signed in if their browser still has a session
            # at the shop's own customer accounts (here: the stand-in's login cookie).
            session = self.store.sessions.get(request.cookies.get(LOGIN_COOKIE, ""))
            customer = self.store.customer(session.email) if session is not None else None
        company = None
        if customer is not None:
            location = next((c for c in customer.company_locations if c.id == cart.buyer.company_location_id), None)
            company = f"{location.company_name} ({location.name})" if location is not None else None
        lines = [(PRODUCTS[x.variant.product_id].title, x.quantity, _price(x.subtotal)) for x in cart.lines]
        return checkout_page(
            buyer=customer.email if customer is not None else None,
            company=company,
            lines=lines,
            total=_price(sum((x.subtotal for x in cart.lines), Decimal(0))),
        )

    # --- knobs --------------------------------------------------------------------------------------

    @staticmethod
    def _knob(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise BadKnob("the body must be a JSON object")
                return JSONResponse({"ok": True, **handler(body)})
            except ValueError as exc:
                return JSONResponse({"error": "bad_request", "detail": str(exc)}, status_code=400)

        return endpoint

    def _reset(self, body: dict[str, Any]) -> dict[str, Any]:
        self.storefront.reset()
        return {}

    def _fail(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"status": 503, "count": 1, "retry_after": 7}`: the next `count` API requests answer `status`."""
        status = body.get("status")
        if status not in FAILURES:
            raise BadKnob(f"status must be one of {list(FAILURES)}")
        retry_after = body.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
            raise BadKnob("retry_after must be an integer >= 0")
        failure = Failure(count=int(_number(body, "count", default=1)), status=status, retry_after=retry_after)
        self.storefront.knobs.fail = failure
        return {"fail": asdict(failure)}

    def _delay(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"seconds": 2, "count": 1}`: the next `count` API requests wait that long before answering."""
        delay = Delay(count=int(_number(body, "count", default=1)), seconds=_number(body, "seconds"))
        self.storefront.knobs.delay = delay
        return {"delay": asdict(delay)}

    def _domains(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"checkout_origin": "https://evil.example", "primary_domain": ...}`; null: the stand-in's own."""
        unknown = set(body) - {"checkout_origin", "primary_domain"}
        if unknown:
            raise BadKnob(f"unknown fields: {sorted(unknown)}")
        for name, value in body.items():
            if value is not None and not (isinstance(value, str) and _ORIGIN.fullmatch(value)):
                raise BadKnob(f"{name} must be an origin like https://shop.example, or null")
            setattr(self.storefront.knobs, name, value)
        knobs = self.storefront.knobs
        return {"checkout_origin": self.storefront.checkout_origin, "primary_domain": knobs.primary_domain}

    async def stats(self, request: Request) -> Response:
        return JSONResponse(asdict(self.storefront.stats))

    async def cart(self, request: Request) -> Response:
        """`GET /_mock/storefront/cart?id=<cart id>`: what the cart holds, and whose it is right now."""
        cart = self.storefront.find(request.query_params.get("id", ""))
        if cart is None:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        return JSONResponse(self.storefront.view(cart))
