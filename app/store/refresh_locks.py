"""The per-session refresh lock, shared by every process, and the outcome of a failed refresh.

  bff:lock:{sid}      string  redis-py Lock token while one process refreshes the session's tokens
  bff:refresh:{sid}   string  "{stale token tag}:{error code}" of the last failed refresh, for 5 seconds

Processes that waited on the lock read the outcome, so a failed refresh answers them with the same error
instead of each retrying against Shopify with a refresh token that may already be rotated.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from app.store.connections import RedisConnections, guarded

OUTCOME_SECONDS = 5


def _lock_key(sid: str) -> str:
    return f"bff:lock:{{{sid}}}"


def _outcome_key(sid: str) -> str:
    return f"bff:refresh:{{{sid}}}"


class RefreshLocks:
    """Try-once locks and failure outcomes, per session."""

    def __init__(self, redis: RedisConnections) -> None:
        self._redis = redis.client

    @asynccontextmanager
    async def hold(self, sid: str, *, ttl: float) -> AsyncIterator[bool]:
        """Try once to take the session's refresh lock; yields whether we own it."""
        lock = Lock(self._redis, _lock_key(sid), timeout=ttl, blocking=False, thread_local=False)
        got = await guarded(lock.acquire())
        try:
            yield got
        finally:
            if got:
                try:
                    await guarded(lock.release())
                except LockError:
                    pass  # it expired mid-refresh; the generation check keeps the write safe anyway

    async def held(self, sid: str) -> bool:
        return bool(await guarded(self._redis.exists(_lock_key(sid))))

    async def record_failure(self, sid: str, stale_token_tag: str, code: str) -> None:
        await guarded(self._redis.set(_outcome_key(sid), f"{stale_token_tag}:{code}", ex=OUTCOME_SECONDS))

    async def failure(self, sid: str, stale_token_tag: str) -> str | None:
        """The error code a peer's refresh of this same stale token ended with, if any."""
        value = await guarded(self._redis.get(_outcome_key(sid)))
        if value is None:
            return None
        tag, _, code = (value.decode() if isinstance(value, bytes) else value).partition(":")
        return code if secrets.compare_digest(tag, stale_token_tag) else None
