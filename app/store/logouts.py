"""Logout continuations: the shop's logout URL (which carries the ID token) kept server-side for a minute.

  bff:logout:{id}   string  encrypted end-session URL, 60 seconds, consumed with GETDEL  (bff: is BFF_REDIS_PREFIX)

A script that logs out with `fetch` gets `/auth/logout/continue?c={id}` instead of the URL itself, so no
token is ever in anything a page script can read; the browser follows the continuation and the BFF
answers it with a 303 to the shop.
"""

from __future__ import annotations

from app.crypto import TokenCipher
from app.store.connections import RedisConnections, guarded

CONTINUATION_TTL = 60


class LogoutContinuations:
    """Stores an end-session URL under a new id and hands it out once."""

    def __init__(self, redis: RedisConnections, cipher: TokenCipher, *, prefix: str) -> None:
        """`prefix` starts every key (BFF_REDIS_PREFIX)."""
        self._redis = redis.client
        self._cipher = cipher
        self._prefix = f"{prefix}logout:"

    async def save(self, continuation: str, url: str) -> None:
        blob = self._cipher.encrypt(url.encode(), continuation.encode())
        await guarded(self._redis.set(f"{self._prefix}{continuation}", blob, ex=CONTINUATION_TTL))

    async def take(self, continuation: str) -> str | None:
        blob = await guarded(self._redis.getdel(f"{self._prefix}{continuation}"))
        plain = self._cipher.decrypt(blob, continuation.encode()) if isinstance(blob, bytes) else None
        return plain.decode() if plain else None
