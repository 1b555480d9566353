"""Redis-backed server sessions and single-use pending logins.

Key layout (the `{...}` hash tag keeps every key of one session in one Redis Cluster slot):
  bff:session:{sid}   hash  d=session JSON, g=generation, a=absolute deadline (ms)
  bff:lock:{sid}      string  owner token of the refresh lock
  bff:refresh:{sid}   string  outcome of the last failed refresh, for processes that waited on it
  bff:login:{state}   string  pending login JSON, 10 minutes, consumed with GETDEL
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.errors import SessionStoreUnavailable

PENDING_LOGIN_TTL = 600
T = TypeVar("T")

# Read a session and slide its idle expiry, capped by the absolute deadline, in one round trip.
# PEXPIRE only runs when the TTL has drifted by more than ARGV[3] ms, so a burst of requests does not
# turn every read into a write.
_TOUCH = """
local v = redis.call('HMGET', KEYS[1], 'd', 'g', 'a')
if not v[1] then return false end
local ttl = math.min(tonumber(ARGV[2]), tonumber(v[3]) - tonumber(ARGV[1]))
if ttl <= 0 then redis.call('DEL', KEYS[1]) return false end
if redis.call('PTTL', KEYS[1]) < ttl - tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ttl) end
return {v[1], v[2], tostring(ttl)}
"""

# Compare-and-set on the generation: a refresh result never overwrites a newer refresh, and never
# re-creates a session that logout deleted meanwhile.
_REPLACE = """
if redis.call('HGET', KEYS[1], 'g') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'g', ARGV[3])
return 1
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Session:
    """What the BFF keeps for one logged-in browser. Never sent to the browser as is."""

    sid: str
    sub: str
    claims: dict[str, Any]
    access_token: str
    access_expires_at: float
    access_lifetime: float
    refresh_token: str
    id_token: str
    client_id: str
    created_at: float
    generation: int = 0
    ttl_ms: int = field(default=0, compare=False)

    def to_json(self) -> str:
        data = asdict(self)
        for transient in ("sid", "generation", "ttl_ms"):
            data.pop(transient)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_redis(cls, sid: str, raw: bytes | str, generation: int, ttl_ms: int = 0) -> Session:
        data = json.loads(raw)
        return cls(sid=sid, generation=generation, ttl_ms=ttl_ms, **data)


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """State kept between /auth/login and /auth/callback."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str
    browser: str  # sha256 of the login-binding cookie's id
    created_at: float


def _session_key(sid: str) -> str:
    return f"bff:session:{{{sid}}}"


def _lock_key(sid: str) -> str:
    return f"bff:lock:{{{sid}}}"


def _outcome_key(sid: str) -> str:
    return f"bff:refresh:{{{sid}}}"


def new_id() -> str:
    return secrets.token_urlsafe(32)


async def guarded(call: Awaitable[T]) -> T:
    """Run one Redis call; a connection problem becomes a 503, never a logout."""
    try:
        return await call
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise SessionStoreUnavailable() from exc
    except RedisError as exc:
        if "LOADING" in str(exc) or "READONLY" in str(exc) or "MASTERDOWN" in str(exc):
            raise SessionStoreUnavailable() from exc
        raise


class SessionStore:
    """Sessions, pending logins and refresh locks in Redis."""

    def __init__(self, redis: Redis, *, idle_timeout: int, absolute_lifetime: int) -> None:
        self._redis = redis
        self._idle_ms = idle_timeout * 1000
        self._absolute_ms = absolute_lifetime * 1000
        # Slide at most every 1% of the idle timeout (capped at a minute): one write per burst.
        self._slack_ms = min(60_000, self._idle_ms // 100)
        self._touch = redis.register_script(_TOUCH)
        self._replace = redis.register_script(_REPLACE)
        self._unlock = redis.register_script(_UNLOCK)

    @property
    def redis(self) -> Redis:
        return self._redis

    async def create(self, session: Session) -> Session:
        """Store a brand-new session under a fresh id (the caller made the id)."""
        now_ms = int(time.time() * 1000)
        ttl = min(self._idle_ms, self._absolute_ms)
        key = _session_key(session.sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"d": session.to_json(), "g": "0", "a": str(now_ms + self._absolute_ms)})
            pipe.pexpire(key, ttl)
            await guarded(pipe.execute())
        return replace(session, generation=0, ttl_ms=ttl)

    async def load(self, sid: str) -> Session | None:
        """Read a session and slide its idle expiry: the steady-state path's one round trip."""
        now_ms = int(time.time() * 1000)
        found = await guarded(self._touch(keys=[_session_key(sid)], args=[now_ms, self._idle_ms, self._slack_ms]))
        if not found:
            return None
        raw, generation, ttl = cast(list[bytes], found)
        return Session.from_redis(sid, raw, int(generation), int(ttl))

    async def peek(self, sid: str) -> Session | None:
        """Read a session without sliding it (used after waiting for another refresher)."""
        raw, generation = await guarded(self._redis.hmget(_session_key(sid), ["d", "g"]))
        if raw is None or generation is None:
            return None
        return Session.from_redis(sid, raw, int(generation))

    async def replace_if_current(self, session: Session) -> Session | None:
        """Store refreshed tokens unless the session moved on (or was deleted) meanwhile."""
        new_generation = session.generation + 1
        ok = await guarded(
            self._replace(
                keys=[_session_key(session.sid)],
                args=[str(session.generation), session.to_json(), str(new_generation)],
            )
        )
        return replace(session, generation=new_generation) if ok else None

    async def delete(self, sid: str) -> None:
        await guarded(self._redis.delete(_session_key(sid), _lock_key(sid), _outcome_key(sid)))

    # --- refresh lock ---------------------------------------------------------------------------

    @asynccontextmanager
    async def refresh_lock(self, sid: str, *, ttl: float) -> AsyncIterator[bool]:
        """Try once to take the per-session refresh lock; yields whether we own it."""
        owner = secrets.token_hex(16)
        got = await guarded(self._redis.set(_lock_key(sid), owner, nx=True, px=int(ttl * 1000)))
        try:
            yield bool(got)
        finally:
            if got:
                await guarded(self._unlock(keys=[_lock_key(sid)], args=[owner]))

    async def lock_held(self, sid: str) -> bool:
        return bool(await guarded(self._redis.exists(_lock_key(sid))))

    async def record_refresh_failure(self, sid: str, stale_token_tag: str, code: str) -> None:
        await guarded(self._redis.set(_outcome_key(sid), f"{stale_token_tag}:{code}", ex=5))

    async def refresh_failure(self, sid: str, stale_token_tag: str) -> str | None:
        value = await guarded(self._redis.get(_outcome_key(sid)))
        if value is None:
            return None
        tag, _, code = (value.decode() if isinstance(value, bytes) else value).partition(":")
        return code if secrets.compare_digest(tag, stale_token_tag) else None

    # --- pending logins -------------------------------------------------------------------------

    async def save_pending_login(self, login: PendingLogin) -> None:
        await guarded(self._redis.set(f"bff:login:{login.state}", json.dumps(asdict(login)), ex=PENDING_LOGIN_TTL))

    async def take_pending_login(self, state: str) -> PendingLogin | None:
        """Consume a pending login atomically: a replayed state finds nothing."""
        raw = await guarded(self._redis.getdel(f"bff:login:{state}"))
        return PendingLogin(**json.loads(raw)) if raw else None

    async def ping(self) -> bool:
        return bool(await guarded(cast(Callable[[], Awaitable[bool]], self._redis.ping)()))
