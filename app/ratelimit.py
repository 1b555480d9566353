"""Per-client-IP rate limits for login and callback, on Redis through the `limits` library.

/graphql is limited per session inside the session read itself (see sessions.py), to keep the hot path
at one Redis round trip.
"""

from __future__ import annotations

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


def limits_uri(redis_url: str) -> str:
    """Our REDIS_URL schemes (redis, rediss, redis+cluster, redis+sentinel) in `limits`' async form."""
    return "async+" + redis_url


class IpRateLimiter:
    """Counts requests per client IP and refuses the excess with 429 and Retry-After."""

    def __init__(self, redis_url: str, login_rate: str) -> None:
        self._storage = cast(
            RedisStorage,
            storage_from_string(
                limits_uri(redis_url),
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
