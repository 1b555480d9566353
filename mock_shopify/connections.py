"""Relay connections and Shopify's order search and sort keys, as the resolvers need them."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from graphql import GraphQLError

from mock_shopify.customers import Order

MAX_PAGE = 250


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


def _cursor(node_id: str) -> str:
    return base64.urlsafe_b64encode(f'{{"last_id":{node_id.rsplit("/", 1)[1]}}}'.encode()).decode()


def paginate(
    items: Sequence[T],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    """A Relay connection over `items`, refusing unbounded or oversized pages as Shopify does."""
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= MAX_PAGE:
            raise GraphQLError(f"The '{name}' argument must be between 0 and {MAX_PAGE}.")
    cursors = [_cursor(item.id) for item in items]
    start, end = 0, len(items)
    for cursor, is_after in ((after, True), (before, False)):
        if cursor is None:
            continue
        if cursor not in cursors:
            raise GraphQLError(f"Invalid cursor: {cursor}")
        if is_after:
            start = cursors.index(cursor) + 1
        else:
            end = cursors.index(cursor)
    lo, hi = start, max(start, end)
    if first is not None:
        hi = min(hi, lo + first)
    if last is not None:
        lo = max(lo, hi - last)
    window = list(zip(items[lo:hi], cursors[lo:hi], strict=True))
    return {
        "edges": [{"cursor": c, "node": n} for n, c in window],
        "nodes": [n for n, _ in window],
        "pageInfo": {
            "hasNextPage": hi < len(items),
            "hasPreviousPage": lo > 0,
            "startCursor": window[0][1] if window else None,
            "endCursor": window[-1][1] if window else None,
        },
    }


def order_matches(order: Order, query: str | None) -> bool:
    """Shopify search syntax, the few terms a storefront uses (name:, financial_status:, ...)."""
    for term in (query or "").split():
        key, sep, value = term.partition(":")
        value = value.lower().lstrip("#") if sep else key.lower().lstrip("#")
        haystacks = {
            "name": [str(order.number)],
            "financial_status": [order.financial_status.lower()],
            "fulfillment_status": [order.fulfillment_status.lower()],
            "confirmation_number": [order.confirmation_number.lower()],
        }
        if not sep:
            candidates = [str(order.number), order.confirmation_number.lower()]
            candidates += [i.title.lower() for i in order.line_items]
            if not any(value in c for c in candidates):
                return False
        elif key in haystacks and value not in haystacks[key]:
            return False
    return True


ORDER_SORT: dict[str, Callable[[Order], Any]] = {
    "ID": lambda o: int(o.id.rsplit("/", 1)[1]),
    "CREATED_AT": lambda o: o.processed_at,
    "PROCESSED_AT": lambda o: o.processed_at,
    "UPDATED_AT": lambda o: o.processed_at,
    "ORDER_NUMBER": lambda o: o.number,
    "TOTAL_PRICE": lambda o: o.total_price,
}


def search_orders(orders: Sequence[Order], *, query: str | None, sort_key: str, reverse: bool) -> list[Order]:
    """The orders matching `query`, in `sort_key` order."""
    matching = [o for o in orders if order_matches(o, query)]
    return sorted(matching, key=ORDER_SORT[sort_key], reverse=reverse)
