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
import time
from collections.abc import Callable
from typing import Any

from app.errors import BFFError, RateLimited
from app.rates import Rate
from app.store.connections import RedisConnections, guarded

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

    def __init__(self, redis: RedisConnections, *, prefix: str, clock: Callable[[], float] = time.time) -> None:
        """`prefix` starts every key (BFF_REDIS_PREFIX): deployments sharing a Redis count apart."""
        # On the pipelined connection where it applies: every login and callback counts here.
        self._hit: Any = redis.hot_script(_HIT)
        self._prefix = prefix
        self._clock = clock

    async def hit(self, scope: str, key: str, rate: Rate, *, detail: str, error: type[BFFError] = RateLimited) -> None:
        """Count one request; over the limit raise `error` (429 `rate_limited` unless told otherwise)."""
        if rate.amount <= 0:
            return
        window = rate.window(self._clock())
        # The rate is part of the key, so a changed setting counts afresh. The key's length is bounded by
        # the caller (an IP bucket); the hash tag keeps it in one Cluster slot.
        name = f"{self._prefix}rl:{scope}:{rate.amount}/{rate.period}:{window.index}:{{{key}}}"
        if await guarded(self._hit(keys=[name], args=[rate.amount, rate.window_ms])):
            raise error(detail, headers={"Retry-After": str(window.seconds_left)})


def ip_bucket(address: str) -> str:
    """The rate-limit key of a client address: IPv6 clients are counted per /64, since one subscriber
    usually holds a whole /64 to rotate through."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
