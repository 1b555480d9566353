"""GraphQL resolvers over the customer store, executed by graphql-core (never by matching query strings)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from graphql import GraphQLError, GraphQLObjectType, GraphQLResolveInfo, GraphQLScalarType, GraphQLSchema

from mock_shopify import mutations, schema
from mock_shopify.connections import paginate, search_orders
from mock_shopify.customers import CURRENCY, Address, Customer, LineItem, money
from mock_shopify.territories import country_name, zone_name

IMAGE_URL = "https://cdn.shopify.com/s/files/mock-shop/default-avatar.png"


@dataclass(frozen=True)
class Context:
    """What every resolver may see: the token's customer and nothing else, so data is scoped per customer."""

    customer: Customer
    shop_id: str
    shop_name: str


Resolver = Callable[..., Any]
Info = GraphQLResolveInfo[Context]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def default_resolver(source: Any, info: GraphQLResolveInfo[Any], **_: Any) -> Any:
    """Read `firstName` from a dict key `firstName` or an attribute `first_name`."""
    if isinstance(source, dict):
        return source.get(info.field_name)
    return getattr(source, _snake(info.field_name), None)


def _money(amount: Decimal | None) -> dict[str, Any] | None:
    return None if amount is None else {"amount": amount, "currencyCode": CURRENCY}


def _customer_orders(
    customer: Customer, _: Any, *, sortKey: str, reverse: bool, query: str | None = None, **page: Any
) -> dict[str, Any]:
    return paginate(search_orders(customer.orders, query=query, sort_key=sortKey, reverse=reverse), **page)


def _customer_addresses(customer: Customer, _: Any, *, reverse: bool, skipDefault: bool, **page: Any) -> Any:
    addresses = [a for a in customer.addresses if not (skipDefault and a.id == customer.default_address_id)]
    return paginate(addresses[::-1] if reverse else addresses, **page)


def _formatted(address: Address, _: Any, *, withName: bool, withCompany: bool) -> list[str]:
    name = " ".join(p for p in (address.first_name, address.last_name) if p)
    area = " ".join(p for p in (address.city, address.zone_code, address.zip) if p)
    lines = [
        name if withName else None,
        address.company if withCompany else None,
        address.address1,
        address.address2,
        area,
        country_name(address.territory_code),
    ]
    return [line for line in lines if line]


def _formatted_area(address: Address, _: Any) -> str | None:
    left = " ".join(p for p in (address.city, address.zone_code) if p)
    return ", ".join(p for p in (left, country_name(address.territory_code)) if p) or None


def _line_item_name(item: LineItem, _: Any) -> str:
    return f"{item.title} - {item.variant_title}" if item.variant_title else item.title


def _line_item_image(item: LineItem, _: Any) -> dict[str, Any]:
    slug = item.sku.lower()
    return {"url": f"https://cdn.shopify.com/s/files/mock-shop/{slug}.png", "altText": item.title}


def _ctx(info: Info) -> Context:
    return info.context


def _mutation_customer_update(_: Any, info: Info, *, input: dict[str, Any]) -> dict[str, Any]:
    customer = _ctx(info).customer
    errors = mutations.update_customer(customer, input)
    return {"customer": None if errors else customer, "userErrors": errors}


# Keyword names are the GraphQL argument names, hence the camelCase.
def _mutation_address_create(_: Any, info: Info, *, address: dict[str, Any], defaultAddress: bool) -> dict[str, Any]:
    created, errors = mutations.create_address(_ctx(info).customer, address, make_default=bool(defaultAddress))
    return {"customerAddress": created, "userErrors": errors}


def _mutation_address_update(
    _: Any, info: Info, *, addressId: str, address: dict[str, Any] | None = None, defaultAddress: bool | None = None
) -> dict[str, Any]:
    updated, errors = mutations.update_address(_ctx(info).customer, addressId, address, make_default=defaultAddress)
    return {"customerAddress": updated, "userErrors": errors}


def _mutation_address_delete(_: Any, info: Info, *, addressId: str) -> dict[str, Any]:
    deleted, errors = mutations.delete_address(_ctx(info).customer, addressId)
    return {"deletedAddressId": deleted, "userErrors": errors}


RESOLVERS: dict[str, dict[str, Resolver]] = {
    "QueryRoot": {
        "customer": lambda _, info: _ctx(info).customer,
        "order": lambda _, info, id: next((o for o in _ctx(info).customer.orders if o.id == id), None),
        "shop": lambda _, info: {"id": f"gid://shopify/Shop/{_ctx(info).shop_id}", "name": _ctx(info).shop_name},
    },
    "Customer": {
        "displayName": lambda c, _: " ".join(p for p in (c.first_name, c.last_name) if p) or c.email,
        "imageUrl": lambda c, _: IMAGE_URL,
        "emailAddress": lambda c, _: {"emailAddress": c.email, "marketingState": "NOT_SUBSCRIBED"},
        "phoneNumber": lambda c, _: None,
        "defaultAddress": lambda c, _: next((a for a in c.addresses if a.id == c.default_address_id), None),
        "addresses": _customer_addresses,
        "orders": _customer_orders,
        "creationDate": lambda c, _: c.created_at,
    },
    "CustomerAddress": {
        "country": lambda a, _: country_name(a.territory_code),
        "province": lambda a, _: zone_name(a.territory_code, a.zone_code),
        "name": lambda a, _: " ".join(p for p in (a.first_name, a.last_name) if p) or None,
        "formattedArea": _formatted_area,
        "formatted": _formatted,
    },
    "Order": {
        "name": lambda o, _: f"#{o.number}",
        "createdAt": lambda o, _: o.processed_at,
        "updatedAt": lambda o, _: o.processed_at,
        "totalPrice": lambda o, _: _money(o.total_price),
        "subtotal": lambda o, _: _money(o.subtotal),
        "totalTax": lambda o, _: _money(o.total_tax),
        "totalShipping": lambda o, _: _money(o.total_shipping),
        "currencyCode": lambda o, _: CURRENCY,
        "email": lambda o, info: _ctx(info).customer.email,
        "requiresShipping": lambda o, _: True,
        "lineItems": lambda o, _, **page: paginate(o.line_items, **page),
        "fulfillments": lambda o, _, reverse, **page: paginate(o.fulfillments[:: -1 if reverse else 1], **page),
    },
    "LineItem": {
        "name": _line_item_name,
        "image": _line_item_image,
        "price": lambda i, _: _money(i.price),
        "totalPrice": lambda i, _: _money(i.price * i.quantity),
    },
    "Fulfillment": {
        "trackingInformation": lambda f, _: [{"company": f.company, "number": f.number, "url": f.url}],
    },
    "Mutation": {
        "customerUpdate": _mutation_customer_update,
        "customerAddressCreate": _mutation_address_create,
        "customerAddressUpdate": _mutation_address_update,
        "customerAddressDelete": _mutation_address_delete,
    },
}


def _serialize_datetime(value: Any) -> str:
    if not isinstance(value, datetime):
        raise GraphQLError(f"DateTime cannot represent {value!r}")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _serialize_decimal(value: Any) -> str:
    if not isinstance(value, Decimal):
        raise GraphQLError(f"Decimal cannot represent {value!r}")
    return money(value)


# Built once per process: parsing the SDL costs ~20 ms, and the schema holds no per-app state.
@functools.cache
def build_schema() -> GraphQLSchema:
    """The executable schema: the SDL with resolvers and scalar serialisers attached."""
    built = schema.build()
    for type_name, fields in RESOLVERS.items():
        gql_type = built.type_map[type_name]
        assert isinstance(gql_type, GraphQLObjectType)
        for field_name, resolve in fields.items():
            gql_type.fields[field_name].resolve = resolve
    for scalar, serialize in (("DateTime", _serialize_datetime), ("Decimal", _serialize_decimal)):
        scalar_type = built.type_map[scalar]
        assert isinstance(scalar_type, GraphQLScalarType)
        scalar_type.coerce_output_value = serialize
    return built
