"""Rate limits: one algorithm, a fixed-window counter in Redis, for logins and for /graphql.

A window opens at the first request and lasts the rate's period; the request that takes the count past
the limit is refused with 429 and a Retry-After until the window closes. Fixed windows cost one INCR and
allow at most twice the limit across a window boundary, which is acceptable for abuse control.

The same Lua function (`RATE_LUA`) runs standalone for login and callback (per client IP) and inside the
session-read script for /graphql (per session), so the hot path stays at one Redis round trip.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

from app.errors import RateLimited
from app.store.connections import RedisConnections, guarded

_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Rate:
    """`amount` requests per `period` seconds; an amount of 0 means unlimited."""

    amount: int
    period: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`30/minute`, `5/second`, `1000/hour`, `100 per 10 minutes`; raises ValueError otherwise."""
        found = _RATE.match(text)
        if not found:
            raise ValueError(text)
        return cls(int(found[1]), int(found[2] or 1) * _PERIODS[found[3].lower()])

    @property
    def window_ms(self) -> int:
        return self.period * 1000


# Returns false, or the milliseconds until the window closes when this request is over the limit.
RATE_LUA = """
local function over_limit(key, limit, window_ms)
  if limit <= 0 then return false end
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, window_ms) end
  if n > limit then return math.max(1, redis.call('PTTL', key)) end
  return false
end
"""

_HIT = (
    RATE_LUA
    + """
local wait = over_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait then return wait end
return 0
"""
)


def retry_after(wait_ms: int) -> str:
    return str(max(1, math.ceil(wait_ms / 1000)))


class RateLimits:
    """Counts requests per key (a client IP bucket, a session) and refuses the excess."""

    def __init__(self, redis: RedisConnections) -> None:
        self._hit: Any = redis.client.register_script(_HIT)

    async def hit(self, scope: str, key: str, rate: Rate, *, detail: str) -> None:
        """Count one request; raise 429 `rate_limited` over the limit."""
        if rate.amount <= 0:
            return
        # The rate is part of the key, so a changed setting counts afresh. The key's length is bounded by
        # the caller (an IP bucket); the hash tag keeps it in one Cluster slot.
        name = f"bff:rl:{scope}:{rate.amount}/{rate.period}:{{{key}}}"
        wait = int(await guarded(self._hit(keys=[name], args=[rate.amount, rate.window_ms])))
        if wait > 0:
            raise RateLimited(detail, headers={"Retry-After": retry_after(wait)})


def ip_bucket(address: str) -> str:
    """The rate-limit key of a client address: IPv6 clients are counted per /64, since one subscriber
    usually holds a whole /64 to rotate through."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
