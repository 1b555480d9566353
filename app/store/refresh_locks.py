"""The per-session refresh lock, shared by every process, and the outcome of a failed refresh.

  bff:lock:{sid}      string  redis-py Lock token while one process refreshes the session's tokens
  bff:refresh:{sid}   string  "{stale token tag}:{error code}" of the last failed refresh, for 5 seconds
  (bff: is the deployment's prefix, BFF_REDIS_PREFIX)

Processes that waited on the lock read the outcome, so a failed refresh answers them with the same error
instead of each retrying against Shopify with a refresh token that may already be rotated.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from app.errors import SessionStoreUnavailable
from app.store import DEFAULT_PREFIX
from app.store.connections import RedisConnections, guarded

OUTCOME_SECONDS = 5


def lock_key(sid: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis key of a session's refresh lock, under the deployment's key `prefix`."""
    return f"{prefix}lock:{{{sid}}}"


def outcome_key(sid: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis key of a session's last failed refresh, under the deployment's key `prefix`."""
    return f"{prefix}refresh:{{{sid}}}"


class RefreshLocks:
    """Try-once locks and failure outcomes, per session."""

    def __init__(self, redis: RedisConnections, *, prefix: str) -> None:
        """`prefix` starts every key (BFF_REDIS_PREFIX)."""
        self._redis = redis.client
        self._prefix = prefix
        # Locks this process holds but could not release because Redis went away: released first
        # thing when the session is refreshed again, instead of everyone waiting out their TTL.
        self._unreleased: dict[str, bytes] = {}

    def _lock(self, sid: str, ttl: float) -> Lock:
        return Lock(self._redis, lock_key(sid, self._prefix), timeout=ttl, blocking=False, thread_local=False)

    @asynccontextmanager
    async def hold(self, sid: str, *, ttl: float) -> AsyncIterator[bool]:
        """Try once to take the session's refresh lock; yields whether we own it."""
        stale_token = self._unreleased.pop(sid, None)
        if stale_token is not None:
            await self._release(self._lock(sid, ttl), stale_token, sid)
        lock = self._lock(sid, ttl)
        got = await guarded(lock.acquire())
        try:
            yield got
        finally:
            if got:
                await self._release(lock, lock.local.token, sid)

    async def _release(self, lock: Lock, token: bytes, sid: str) -> None:
        try:
            await guarded(lock.do_release(token))
        except LockError:
            pass  # it expired meanwhile; the generation check keeps the write safe anyway
        except SessionStoreUnavailable:
            self._unreleased[sid] = token
            raise

    async def held(self, sid: str) -> bool:
        return bool(await guarded(self._redis.exists(lock_key(sid, self._prefix))))

    async def record_failure(self, sid: str, stale_token_tag: str, code: str) -> None:
        await guarded(self._redis.set(outcome_key(sid, self._prefix), f"{stale_token_tag}:{code}", ex=OUTCOME_SECONDS))

    async def failure(self, sid: str, stale_token_tag: str) -> str | None:
        """The error code a peer's refresh of this same stale token ended with, if any."""
        value = await guarded(self._redis.get(outcome_key(sid, self._prefix)))
        if value is None:
            return None
        tag, _, code = (value.decode() if isinstance(value, bytes) else value).partition(":")
        return code if secrets.compare_digest(tag, stale_token_tag) else None
