"""The Storefront API's carts and products, and the resolvers graphql-core runs over them.

A cart's buyer identity follows Shopify's rules as far as the stand-in can tell: a `customerAccessToken`
must be an unexpired Customer Account token this stand-in issued (read from the shared `Store`, never
written), a `companyLocationId` must be a location of that token's customer, and a rejected update changes
nothing and answers `userErrors` in Shopify's shape. Fields the input leaves out keep their value; an
explicit null clears one (clearing the token clears the company location with it). The customer a cart
shows is resolved when it is read, so a token that expired since it was set no longer counts: that is why
Shopify asks for the token to be set again after every refresh.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
)

from mock_shopify import storefront_schema
from mock_shopify.connections import paginate
from mock_shopify.customers import CATALOGUE, CURRENCY, Customer
from mock_shopify.graphql_api import build_schema as build_customer_schema
from mock_shopify.knobs import Delay, Failure
from mock_shopify.state import Store

UserError = dict[str, Any]
MAX_LINES = 100
MAX_QUANTITY = 999
_CART_ID = re.compile(r"gid://shopify/Cart/([A-Za-z0-9_-]+)\?key=([0-9a-f]+)")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class Variant:
    id: str
    title: str
    sku: str
    price: Decimal
    product_id: str


@dataclass(frozen=True)
class Product:
    id: str
    handle: str
    title: str
    description: str
    variants: tuple[Variant, ...]


def _catalogue() -> tuple[Product, ...]:
    products = []
    for n, (title, variant_title, sku, price) in enumerate(CATALOGUE, start=1):
        product_id = f"gid://shopify/Product/{9_100_000_000 + n}"
        variant_id = f"gid://shopify/ProductVariant/{9_200_000_000 + n}"
        variant = Variant(variant_id, variant_title or "Default Title", sku, Decimal(price), product_id)
        handle = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        products.append(Product(product_id, handle, title, f"The {title.lower()} from our own shelves.", (variant,)))
    return tuple(products)


PRODUCTS = _catalogue()
PRODUCTS_BY_ID = {p.id: p for p in PRODUCTS}
VARIANTS = {v.id: v for p in PRODUCTS for v in p.variants}


@dataclass
class Buyer:
    email: str | None = None
    phone: str | None = None
    country_code: str | None = None
    customer_access_token: str | None = field(default=None, repr=False)
    company_location_id: str | None = None


@dataclass
class Line:
    id: str
    variant: Variant
    quantity: int

    @property
    def subtotal(self) -> Decimal:
        return self.variant.price * self.quantity


@dataclass
class Cart:
    token: str
    key: str = field(repr=False)
    created_at: datetime
    updated_at: datetime
    note: str | None = None
    lines: list[Line] = field(default_factory=list)
    buyer: Buyer = field(default_factory=Buyer)

    @property
    def id(self) -> str:
        # Shopify's cart ids carry a key: the id alone is the capability to read and change the cart.
        return f"gid://shopify/Cart/{self.token}?key={self.key}"


@dataclass
class StorefrontKnobs:
    fail: Failure | None = None
    delay: Delay | None = None
    checkout_origin: str | None = None  # where checkoutUrl points; default: the stand-in itself
    primary_domain: str | None = None  # what `shop.primaryDomain.url` says; default: the stand-in itself


@dataclass
class StorefrontStats:
    requests: int = 0
    private_requests: int = 0
    public_requests: int = 0
    unauthorized: int = 0
    # Shopify-Storefront-Buyer-IP of every private-token request, in order (None: the header was missing).
    buyer_ips: list[str | None] = field(default_factory=list)
    traceparents: list[str | None] = field(default_factory=list)  # W3C trace context of every request, in order


def _error(field: list[str], code: str, message: str) -> UserError:
    return {"field": field, "code": code, "message": message}


NO_SUCH_CART = _error(["cartId"], "INVALID", "The specified cart does not exist.")


class Storefront:
    """All of the Storefront API's own state; the Customer Account side (`Store`) is only read."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.carts: dict[str, Cart] = {}
        self.knobs = StorefrontKnobs()
        self.stats = StorefrontStats()

    def reset(self) -> None:
        self.carts.clear()
        self.knobs = StorefrontKnobs()
        self.stats = StorefrontStats()

    @property
    def checkout_origin(self) -> str:
        return self.knobs.checkout_origin or self.store.config.base_url

    @property
    def primary_domain(self) -> str:
        return self.knobs.primary_domain or self.store.config.base_url

    def checkout_url(self, cart: Cart) -> str:
        return f"{self.checkout_origin}/cart/c/{cart.token}?key={cart.key}"

    def find(self, cart_id: str) -> Cart | None:
        match = _CART_ID.fullmatch(cart_id)
        return self.by_token(match[1], match[2]) if match else None

    def by_token(self, token: str, key: str) -> Cart | None:
        cart = self.carts.get(token)
        return cart if cart is not None and hmac.compare_digest(cart.key, key) else None

    def customer(self, buyer: Buyer) -> Customer | None:
        """The customer the cart's token stands for, while that token is live."""
        token = self.store.live_access_token(buyer.customer_access_token) if buyer.customer_access_token else None
        return self.store.customer(token.email) if token is not None else None

    def create(self) -> Cart:
        now = datetime.now(UTC)
        cart = Cart(token=secrets.token_urlsafe(24), key=secrets.token_hex(16), created_at=now, updated_at=now)
        self.carts[cart.token] = cart
        return cart

    def add_lines(self, cart: Cart, lines: list[dict[str, Any]]) -> list[UserError]:
        """Add lines (merging the same variant), or change nothing and say why."""
        errors = []
        for i, line in enumerate(lines):
            where = ["lines", str(i)]
            if line["merchandiseId"] not in VARIANTS:
                errors.append(_error([*where, "merchandiseId"], "INVALID", "The merchandise does not exist."))
            elif not 1 <= (line.get("quantity") or 0) <= MAX_QUANTITY:
                errors.append(_error([*where, "quantity"], "INVALID", f"Quantity must be 1 to {MAX_QUANTITY}."))
        if len(cart.lines) + len(lines) > MAX_LINES:
            errors.append(_error(["lines"], "CART_TOO_LARGE", "The cart is too large to save."))
        if errors:
            return errors
        for line in lines:
            variant = VARIANTS[line["merchandiseId"]]
            existing = next((x for x in cart.lines if x.variant == variant), None)
            if existing is not None:
                existing.quantity = min(MAX_QUANTITY, existing.quantity + line["quantity"])
            else:
                cart.lines.append(Line(f"gid://shopify/CartLine/{secrets.token_hex(8)}", variant, line["quantity"]))
        cart.updated_at = datetime.now(UTC)
        return []

    def update_buyer(self, cart: Cart, given: dict[str, Any]) -> list[UserError]:
        """Apply the fields `given` names (null clears one), or change nothing and say why."""
        buyer = replace(cart.buyer)
        errors = []
        for name, attr in (("email", "email"), ("phone", "phone"), ("countryCode", "country_code")):
            if name in given:
                setattr(buyer, attr, given[name])
        if buyer.email is not None and not _EMAIL.fullmatch(buyer.email):
            errors.append(_error(["buyerIdentity", "email"], "INVALID", "Email is invalid."))
        if "customerAccessToken" in given:
            token = given["customerAccessToken"]
            if token is not None and self.store.live_access_token(token) is None:
                message = "The customer access token is invalid or has expired."
                errors.append(_error(["buyerIdentity", "customerAccessToken"], "INVALID", message))
            buyer.customer_access_token = token
            if token is None:
                buyer.company_location_id = None  # no customer, so no company to buy for
        if "companyLocationId" in given:
            location = given["companyLocationId"]
            customer = self.customer(buyer)
            allowed = {c.id for c in customer.company_locations} if customer is not None else set()
            if location is not None and location not in allowed:
                message = "Company location not found or not allowed."
                errors.append(_error(["buyerIdentity", "companyLocationId"], "INVALID_COMPANY_LOCATION", message))
            buyer.company_location_id = location
        if errors:
            return errors
        cart.buyer = buyer
        cart.updated_at = datetime.now(UTC)
        return []

    def view(self, cart: Cart) -> dict[str, Any]:
        """The cart as a test knob shows it (never the token itself)."""
        customer = self.customer(cart.buyer)
        return {
            "id": cart.id,
            "email": cart.buyer.email,
            "country_code": cart.buyer.country_code,
            "has_customer_access_token": cart.buyer.customer_access_token is not None,
            "customer": customer.email if customer is not None else None,
            "company_location_id": cart.buyer.company_location_id,
            "lines": [{"merchandise_id": x.variant.id, "quantity": x.quantity} for x in cart.lines],
        }


@dataclass(frozen=True)
class Context:
    storefront: Storefront


Info = GraphQLResolveInfo[Context]


def _money(amount: Decimal) -> dict[str, Any]:
    return {"amount": amount, "currencyCode": CURRENCY}


def _storefront(info: Info) -> Storefront:
    return info.context.storefront


def _payload(cart: Cart | None, errors: list[UserError]) -> dict[str, Any]:
    return {"cart": None if errors else cart, "userErrors": errors, "warnings": []}


def _cart_create(_: Any, info: Info, *, input: dict[str, Any]) -> dict[str, Any]:
    storefront = _storefront(info)
    now = datetime.now(UTC)
    draft = Cart(token="", key="", created_at=now, updated_at=now, note=input.get("note"))
    errors = storefront.add_lines(draft, input.get("lines") or [])
    errors += storefront.update_buyer(draft, input.get("buyerIdentity") or {})
    if errors:
        return _payload(None, errors)
    cart = storefront.create()
    cart.lines, cart.buyer, cart.note = draft.lines, draft.buyer, draft.note
    return _payload(cart, [])


def _cart_lines_add(_: Any, info: Info, *, cartId: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    cart = _storefront(info).find(cartId)
    if cart is None:
        return _payload(None, [NO_SUCH_CART])
    return _payload(cart, _storefront(info).add_lines(cart, lines))


def _cart_buyer_identity_update(_: Any, info: Info, *, cartId: str, buyerIdentity: dict[str, Any]) -> dict[str, Any]:
    cart = _storefront(info).find(cartId)
    if cart is None:
        return _payload(None, [NO_SUCH_CART])
    return _payload(cart, _storefront(info).update_buyer(cart, buyerIdentity))


def _buyer_identity(cart: Cart, info: Info) -> dict[str, Any]:
    buyer = cart.buyer
    customer = _storefront(info).customer(buyer)
    company = None
    if customer is not None and buyer.company_location_id is not None:
        location = next((c for c in customer.company_locations if c.id == buyer.company_location_id), None)
        if location is not None:
            company = {
                "company": {"id": location.company_id, "name": location.company_name},
                "location": {"id": location.id, "name": location.name},
            }
    return {
        "email": buyer.email,
        "phone": buyer.phone,
        "countryCode": buyer.country_code,
        "customer": customer,
        "purchasingCompany": company,
    }


def _subtotal(cart: Cart) -> Decimal:
    return sum((x.subtotal for x in cart.lines), Decimal(0))


def _shop(_: Any, info: Info) -> dict[str, Any]:
    storefront = _storefront(info)
    url = storefront.primary_domain
    return {
        "id": f"gid://shopify/Shop/{storefront.store.config.shop_id}",
        "name": storefront.store.config.shop_name,
        "primaryDomain": {"host": url.split("://", 1)[1], "sslEnabled": url.startswith("https://"), "url": url},
    }


def _product(_: Any, info: Info, *, id: str | None = None, handle: str | None = None) -> Product | None:
    return next((p for p in PRODUCTS if (id is not None and p.id == id) or (handle and p.handle == handle)), None)


RESOLVERS: dict[str, dict[str, Any]] = {
    "QueryRoot": {
        "products": lambda _, info, **page: paginate(PRODUCTS, **page),
        "product": _product,
        "cart": lambda _, info, id: _storefront(info).find(id),
        "shop": _shop,
    },
    "Product": {
        "availableForSale": lambda p, _: True,
        "priceRange": lambda p, _: {
            "minVariantPrice": _money(min(v.price for v in p.variants)),
            "maxVariantPrice": _money(max(v.price for v in p.variants)),
        },
        "variants": lambda p, _, **page: paginate(p.variants, **page),
    },
    "ProductVariant": {
        "availableForSale": lambda v, _: True,
        "price": lambda v, _: _money(v.price),
        "product": lambda v, _: PRODUCTS_BY_ID[v.product_id],
    },
    "Cart": {
        "checkoutUrl": lambda c, info: _storefront(info).checkout_url(c),
        "totalQuantity": lambda c, _: sum(x.quantity for x in c.lines),
        "lines": lambda c, _, **page: paginate(c.lines, **page),
        "cost": lambda c, _: {"subtotalAmount": _money(_subtotal(c)), "totalAmount": _money(_subtotal(c))},
        "buyerIdentity": _buyer_identity,
    },
    "CartLine": {
        "merchandise": lambda x, _: x.variant,
        "cost": lambda x, _: {
            "amountPerQuantity": _money(x.variant.price),
            "totalAmount": _money(x.subtotal),
        },
    },
    "Customer": {
        "displayName": lambda c, _: " ".join(p for p in (c.first_name, c.last_name) if p) or c.email,
    },
    "Mutation": {
        "cartCreate": _cart_create,
        "cartLinesAdd": _cart_lines_add,
        "cartBuyerIdentityUpdate": _cart_buyer_identity_update,
    },
}


@functools.cache
def build_schema() -> GraphQLSchema:
    """The executable Storefront schema: the SDL with resolvers and the Customer Account API's scalars."""
    built = storefront_schema.build()
    for type_name, fields in RESOLVERS.items():
        gql_type = built.type_map[type_name]
        assert isinstance(gql_type, GraphQLObjectType)
        for field_name, resolve in fields.items():
            gql_type.fields[field_name].resolve = resolve
    # The same DateTime and Decimal serialisation as the Customer Account API's schema.
    customer_types = build_customer_schema().type_map
    for scalar in ("DateTime", "Decimal"):
        ours, theirs = built.type_map[scalar], customer_types[scalar]
        assert isinstance(ours, GraphQLScalarType) and isinstance(theirs, GraphQLScalarType)
        ours.coerce_output_value = theirs.coerce_output_value
    line = built.type_map["BaseCartLine"]
    merchandise = built.type_map["Merchandise"]
    assert isinstance(line, GraphQLInterfaceType) and isinstance(merchandise, GraphQLUnionType)
    line.resolve_type = lambda *_: "CartLine"
    merchandise.resolve_type = lambda *_: "ProductVariant"
    return built
