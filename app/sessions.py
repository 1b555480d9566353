"""Redis-backed server sessions and single-use pending logins.

Key layout (the `{...}` hash tag keeps every key of one session in one Redis Cluster slot):
  bff:session:{sid}      string  "{absolute deadline ms}:{generation}:{encrypted session JSON}"
  bff:lock:{sid}         string  owner token of the refresh lock
  bff:refresh:{sid}      string  outcome of the last failed refresh, for processes that waited on it
  bff:rl:{sid}           string  /graphql requests in the current rate-limit window
  bff:login:{state}      string  encrypted pending login, 10 minutes, consumed with GETDEL
  bff:customer:{h(sub)}  zset    the customer's session ids, scored by absolute deadline ("log out everywhere")

Records are encrypted (AES-GCM, the session id or state as associated data), so a Redis dump or MONITOR
shows no usable token, and a record copied under another id does not decrypt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.crypto import TokenCipher
from app.errors import BFFError, SessionStoreUnavailable

log = logging.getLogger("bff.sessions")

# Redis is down, starting, read-only (a replica after failover), full, or its cluster is reconfiguring:
# all "try again shortly", none a reason to drop a session.
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    BusyLoadingError,
    ReadOnlyError,
    MasterDownError,
    OutOfMemoryError,
    ClusterDownError,
    ClusterError,
    TryAgainError,
)
_UNAVAILABLE_PREFIXES = frozenset({"LOADING", "READONLY", "MASTERDOWN", "OOM", "CLUSTERDOWN", "TRYAGAIN", "BUSY"})
PENDING_LOGIN_TTL = 600
INDEX_PRUNE_AT = 20
T = TypeVar("T")

# A session is one string, `{absolute deadline ms}:{generation}:{encrypted record}`: a plain string costs
# far less Redis memory than a hash once the record outgrows the hash's compact encoding.
#
# Read a session, slide its idle expiry (capped by the absolute deadline) and count it against the
# session's rate limit, all in one round trip. PEXPIRE only runs when the TTL has drifted by more than
# ARGV[3] ms, so a burst of requests does not turn every read into a write.
SESSION_READ_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ttl = math.min(tonumber(ARGV[2]), tonumber(string.match(v, '^(%d+):')) - tonumber(ARGV[1]))
if ttl <= 0 then redis.call('DEL', KEYS[1]) return false end
if redis.call('PTTL', KEYS[1]) < ttl - tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ttl) end
local limit = tonumber(ARGV[4])
if limit > 0 then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
  if n > limit then return {v, tostring(ttl), tostring(redis.call('PTTL', KEYS[2]))} end
end
return {v, tostring(ttl)}
"""

# Compare-and-set on the generation: a refresh result never overwrites a newer refresh, and never
# re-creates a session that logout deleted meanwhile.
_REPLACE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local deadline, generation = string.match(v, '^(%d+):(%d+):')
if generation ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], deadline .. ':' .. ARGV[3] .. ':' .. ARGV[2], 'KEEPTTL')
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
    credential: str  # id of the Shopify credential the tokens were issued to
    created_at: float
    generation: int = 0
    ttl_ms: int = field(default=0, compare=False)

    def to_json(self) -> bytes:
        data = asdict(self)
        for transient in ("sid", "generation", "ttl_ms"):
            data.pop(transient)
        return json.dumps(data, separators=(",", ":")).encode()


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


def _rate_key(sid: str) -> str:
    return f"bff:rl:{{{sid}}}"


def _customer_key(sub: str) -> str:
    return f"bff:customer:{{{hashlib.sha256(sub.encode()).hexdigest()[:32]}}}"


def new_id() -> str:
    return secrets.token_urlsafe(32)


async def guarded(call: Awaitable[T]) -> T:
    """Run one Redis call; an unavailable Redis becomes a 503, never a logout or a 500."""
    try:
        return await call
    except _UNAVAILABLE as exc:
        raise SessionStoreUnavailable() from exc
    except ResponseError as exc:
        # The pipelined reader (redis_fast.py) keeps Redis's error prefix in the message.
        if str(exc).split(" ", 1)[0] in _UNAVAILABLE_PREFIXES:
            raise SessionStoreUnavailable() from exc
        raise


class SessionStore:
    """Sessions, pending logins and refresh locks in Redis."""

    def __init__(
        self,
        redis: Redis,
        cipher: TokenCipher,
        *,
        idle_timeout: int,
        absolute_lifetime: int,
        touch: Callable[..., Awaitable[Any]] | None = None,
    ) -> None:
        """`touch`, when given, runs the session-read script instead of redis-py (see redis_fast.py)."""
        self._redis = redis
        self._cipher = cipher
        self._idle_ms = idle_timeout * 1000
        self._absolute_ms = absolute_lifetime * 1000
        # Slide at most every 1% of the idle timeout (capped at a minute): one write per burst.
        self._slack_ms = min(60_000, self._idle_ms // 100)
        self._touch: Callable[..., Awaitable[Any]] = touch or redis.register_script(SESSION_READ_SCRIPT)
        self._replace = redis.register_script(_REPLACE)
        self._unlock = redis.register_script(_UNLOCK)

    @property
    def redis(self) -> Redis:
        return self._redis

    def _seal(self, session: Session) -> bytes:
        return self._cipher.encrypt(session.to_json(), session.sid.encode())

    def _open(self, sid: str, blob: bytes, generation: int, ttl_ms: int = 0) -> Session | None:
        plain = self._cipher.decrypt(blob, sid.encode())
        if plain is None:
            # Encrypted under a key no longer configured, or tampered with: unusable, so treated as absent.
            log.warning("a session record could not be decrypted; check BFF_TOKEN_ENCRYPTION_KEYS")
            return None
        return Session(sid=sid, generation=generation, ttl_ms=ttl_ms, **json.loads(plain))

    async def create(self, session: Session) -> Session:
        """Store a brand-new session under a fresh id (the caller made the id), indexed by customer."""
        now_ms = int(time.time() * 1000)
        deadline = now_ms + self._absolute_ms
        ttl = min(self._idle_ms, self._absolute_ms)
        value = b"%d:0:%s" % (deadline, self._seal(session))
        await guarded(self._redis.set(_session_key(session.sid), value, px=ttl))
        await self._index(session.sub, session.sid, deadline, now_ms)
        return replace(session, generation=0, ttl_ms=ttl)

    async def load(self, sid: str, *, rate_limit: tuple[int, int] = (0, 0)) -> Session | None:
        """Read a session, slide its idle expiry and apply `(requests, per ms)`: one round trip.

        Raises a 429 `rate_limited` when the session is over its limit.
        """
        now_ms = int(time.time() * 1000)
        found = await guarded(
            self._touch(
                keys=[_session_key(sid), _rate_key(sid)],
                args=[now_ms, self._idle_ms, self._slack_ms, rate_limit[0], rate_limit[1]],
            )
        )
        if not found:
            return None
        values = cast(list[bytes], found)
        if len(values) == 3:
            retry = str(max(1, -(-int(values[2]) // 1000)))
            raise BFFError(429, "rate_limited", "Too many requests for this session.", headers={"Retry-After": retry})
        return self._unpack(sid, values[0], int(values[1]))

    async def peek(self, sid: str) -> Session | None:
        """Read a session without sliding it (used after waiting for another refresher)."""
        raw = await guarded(self._redis.get(_session_key(sid)))
        return self._unpack(sid, raw, 0) if isinstance(raw, bytes) else None

    def _unpack(self, sid: str, raw: bytes, ttl_ms: int) -> Session | None:
        _, generation, blob = raw.split(b":", 2)
        return self._open(sid, blob, int(generation), ttl_ms)

    async def replace_if_current(self, session: Session) -> Session | None:
        """Store refreshed tokens unless the session moved on (or was deleted) meanwhile."""
        new_generation = session.generation + 1
        ok = await guarded(
            self._replace(
                keys=[_session_key(session.sid)],
                args=[str(session.generation), self._seal(session), str(new_generation)],
            )
        )
        return replace(session, generation=new_generation) if ok else None

    async def delete(self, sid: str, *, sub: str | None = None) -> None:
        await guarded(self._redis.delete(_session_key(sid), _lock_key(sid), _outcome_key(sid), _rate_key(sid)))
        if sub is not None:
            await guarded(self._redis.zrem(_customer_key(sub), sid))

    # --- the per-customer index -------------------------------------------------------------------

    async def _index(self, sub: str, sid: str, deadline_ms: int, now_ms: int) -> None:
        key = _customer_key(sub)
        # Bounded: members past their absolute deadline go at every login, and the index expires with
        # its newest session. Idle-expired members are pruned whenever the index grows past a few.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now_ms)
            pipe.zadd(key, {sid: deadline_ms})
            pipe.pexpire(key, self._absolute_ms)
            pipe.zcard(key)
            *_, size = await guarded(pipe.execute())
        if int(size) > INDEX_PRUNE_AT:
            members = await self.session_ids_of(sub)
            alive = await asyncio.gather(*(guarded(self._redis.exists(_session_key(m))) for m in members))
            dead = [m for m, exists in zip(members, alive, strict=True) if not exists]
            if dead:
                await guarded(self._redis.zrem(key, *dead))

    async def session_ids_of(self, sub: str) -> list[str]:
        members = await guarded(self._redis.zrange(_customer_key(sub), 0, -1))
        return [m.decode() for m in cast(list[bytes], members)]

    async def end_all(self, sub: str) -> int:
        """End every session of one customer ("log out everywhere"); returns how many were live."""
        ended = 0
        for sid in await self.session_ids_of(sub):
            ended += int(await guarded(self._redis.delete(_session_key(sid))))
            await guarded(self._redis.delete(_lock_key(sid), _outcome_key(sid), _rate_key(sid)))
        await guarded(self._redis.delete(_customer_key(sub)))
        return ended

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
        blob = self._cipher.encrypt(json.dumps(asdict(login)).encode(), login.state.encode())
        await guarded(self._redis.set(f"bff:login:{login.state}", blob, ex=PENDING_LOGIN_TTL))

    async def take_pending_login(self, state: str) -> PendingLogin | None:
        """Consume a pending login atomically: a replayed state finds nothing."""
        blob = await guarded(self._redis.getdel(f"bff:login:{state}"))
        plain = self._cipher.decrypt(blob, state.encode()) if isinstance(blob, bytes) else None
        return PendingLogin(**json.loads(plain)) if plain else None

    async def ping(self) -> bool:
        """Readiness: a write, not PING, so a read-only replica or a full Redis counts as not ready."""
        return bool(await guarded(self._redis.set("bff:readyz", b"1", px=10_000)))
