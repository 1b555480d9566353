"""Rate limits: one algorithm, a fixed-window counter in Redis, for logins and for /graphql.

Windows are aligned to the BFF's clock: window n covers [n·period, (n+1)·period), and its counter's key
carries n, so every process counts into the same key and a new window starts from zero. The request that
takes the count past the limit is refused with 429 and a Retry-After until the window ends. Fixed windows
cost one INCR and allow at most twice the limit across a window boundary, acceptable for abuse control.

The same Lua function (`RATE_LUA`) runs standalone for login and callback (per client IP) and inside the
session-read script for /graphql (per session), so the hot path stays at one Redis round trip.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable
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

    def window(self, now: float) -> Window:
        """The window `now` falls in."""
        index = int(now // self.period)
        return Window(index, max(1, math.ceil((index + 1) * self.period - now)))


@dataclass(frozen=True, slots=True)
class Window:
    """One rate-limit window: its number (part of the counter's key) and the seconds left in it."""

    index: int
    seconds_left: int


# Counts one request in a window's counter (which expires with the window, plus a margin for clock
# skew between processes); true when this request is over the limit.
RATE_LUA = """
local function over_limit(key, limit, window_ms)
  if limit <= 0 then return false end
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, window_ms + 5000) end
  return n > limit
end
"""

_HIT = (
    RATE_LUA
    + """
if over_limit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])) then return 1 end
return 0
"""
)


class RateLimits:
    """Counts requests per key (a client IP bucket, a session) and refuses the excess."""

    def __init__(self, redis: RedisConnections, *, clock: Callable[[], float] = time.time) -> None:
        self._hit: Any = redis.client.register_script(_HIT)
        self._clock = clock

    async def hit(self, scope: str, key: str, rate: Rate, *, detail: str) -> None:
        """Count one request; raise 429 `rate_limited` over the limit."""
        if rate.amount <= 0:
            return
        window = rate.window(self._clock())
        # The rate is part of the key, so a changed setting counts afresh. The key's length is bounded by
        # the caller (an IP bucket); the hash tag keeps it in one Cluster slot.
        name = f"bff:rl:{scope}:{rate.amount}/{rate.period}:{window.index}:{{{key}}}"
        if await guarded(self._hit(keys=[name], args=[rate.amount, rate.window_ms])):
            raise RateLimited(detail, headers={"Retry-After": str(window.seconds_left)})


def ip_bucket(address: str) -> str:
    """The rate-limit key of a client address: IPv6 clients are counted per /64, since one subscriber
    usually holds a whole /64 to rotate through."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
