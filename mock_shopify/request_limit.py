"""Shopify's per-customer request limit (since 2026-10-07): so many GraphQL requests a minute per store and customer.

The limit (3,000 by default) is shared by all apps of the store, so requests count per customer, whichever client
sends them; over it, Shopify answers HTTP 429 with a THROTTLED error and `Retry-After`.
Unconfirmed: whether the minute is a clock minute or a sliding one. Clock minutes are the simpler model (a client
may burst up to twice the limit across a boundary); either way, the safe client honours `Retry-After`.
"""

from __future__ import annotations

import math


class RequestWindows:
    """How many requests each customer has made in the current clock minute."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    def clear(self) -> None:
        self._windows.clear()

    def count(self, customer: str, *, now: float, limit: int) -> int | None:
        """Count one request: None while within `limit`, else the whole seconds until the minute ends (at least 1)."""
        minute = int(now // 60)
        window, seen = self._windows.get(customer, (minute, 0))
        seen = seen + 1 if window == minute else 1
        self._windows[customer] = (minute, seen)
        if seen <= limit:
            return None
        return max(1, math.ceil((minute + 1) * 60 - now))
