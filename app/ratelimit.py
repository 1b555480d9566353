"""Per-client-IP rate limits for login and callback, on Redis through the `limits` library.

/graphql is limited per session inside the session read itself (see sessions.py), to keep the hot path
at one Redis round trip.
"""

from __future__ import annotations

import ipaddress
import math
import time
from typing import cast

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from app.errors import BFFError, SessionStoreUnavailable
from app.redis_client import close_redis, connection_retry


def limits_uri(redis_url: str) -> tuple[str, dict[str, bool]]:
    """REDIS_URL in `limits`' async form, plus the options it needs (TLS for the `rediss+` schemes)."""
    scheme, _, rest = redis_url.partition("://")
    mapped = {
        "redis": "async+redis",
        "rediss": "async+rediss",
        "unix": "async+redis+unix",
        "redis+cluster": "async+redis+cluster",
        "rediss+cluster": "async+redis+cluster",
        "redis+sentinel": "async+redis+sentinel",
        "rediss+sentinel": "async+redis+sentinel",
    }[scheme]
    return f"{mapped}://{rest}", ({"ssl": True} if scheme.startswith("rediss+") else {})


def _bucket(address: str) -> str:
    """IPv6 clients are counted per /64: one subscriber usually holds a whole /64 to rotate through."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else address


class IpRateLimiter:
    """Counts requests per client IP and refuses the excess with 429 and Retry-After."""

    def __init__(self, redis_url: str, login_rate: str) -> None:
        uri, options = limits_uri(redis_url)
        self._storage = cast(
            RedisStorage,
            storage_from_string(
                uri,
                **options,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="bff:limits",
                retry=connection_retry(),  # type: ignore[arg-type]
            ),
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._login: RateLimitItem = parse(login_rate)

    async def aclose(self) -> None:
        # `limits` owns a Redis client but offers no close; reach it through the bridge it documents.
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await close_redis(client)

    async def hit_login(self, endpoint: str, client_ip: str) -> None:
        client_ip = _bucket(client_ip)
        try:
            allowed = await self._limiter.hit(self._login, endpoint, client_ip)
            if allowed:
                return
            stats = await self._limiter.get_window_stats(self._login, endpoint, client_ip)
        except StorageError as exc:
            raise SessionStoreUnavailable() from exc
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise BFFError(
            429, "rate_limited", "Too many login attempts from this address.", headers={"Retry-After": str(retry)}
        )
