"""Server sessions in Redis, and each customer's index of them ("log out everywhere").

A session id is `{tag}.{random}`: `tag` is 16 hex digits of a hash of the customer's Shopify customer id
(of `sub` when the id could not be fetched at login), the same for every session of one customer, and the
`{...}` hash tag of every key below that carries it, so the session-read script can count the session's
and the customer's limits in one round trip, and a webhook can end all of a customer's sessions in one
script, on Cluster too.
(Ids from before the tag, plain random, still load; they count no customer limit.)

Key layout (`bff:` stands for the deployment's prefix, BFF_REDIS_PREFIX):
  bff:session:{tag}.r        string  "{absolute deadline ms}:{generation}:{encrypted session JSON}"
  bff:rl:graphql:{n}:{tag}.r string  the session's /graphql requests in rate-limit window n
  bff:rl:customer:{n}:{tag}  string  the customer's /graphql requests, every session of theirs, in window n
  bff:customer:{h(sub)}      zset    the customer's session ids, scored by absolute deadline
  bff:epoch:{h(sub)}         string  when the customer last logged out everywhere (ms): older logins are void
  bff:cid:{tag}              zset    the same, by Shopify customer id (the tag comes from it): for webhooks
  bff:cepoch:{tag}           string  when the customer's sessions were last ended by id
  bff:hook:{tag}<id>         string  a webhook delivery already acted on, for a week

Records are encrypted (AES-GCM, the session id as associated data), so a Redis dump or MONITOR shows no
usable token, and a record copied under another id does not decrypt.

Key rotation: a record is encrypted with the first listed key whenever it is written, but most sessions are
only read between refreshes. So `load` rewrites a record it finds under an older key, once (afterwards it is
under the first key, and the check is a 4-byte comparison), with a compare-and-set on the exact value it read:
a refresh or a logout that came in between always wins. Every live record is read (and so rewritten) within
the idle timeout or expires, so after that long nothing needs the old key; `key_census` (for `doctor`)
counts what is left under each.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

from app.crypto import TokenCipher
from app.errors import RateLimited, SessionExpired, SessionStoreUnavailable
from app.metrics import Metrics
from app.rates import NO_LIMITS, SessionRates
from app.security import new_id
from app.store import DEFAULT_PREFIX, records
from app.store.connections import RedisConnections, guarded
from app.store.rate_limits import RATE_LUA
from app.store.session_cache import MISS, OVER_SESSION, Limit, SessionCache

log = logging.getLogger("bff.sessions")

INDEX_PRUNE_AT = 20
TAG_LENGTH = 16
REFUSALS_KEPT = 10_000
WEBHOOK_MEMORY_MS = 7 * 24 * 3600 * 1000  # Shopify retries a delivery for up to 4 hours; remember ids a week

# A session is one string, `{absolute deadline ms}:{generation}:{encrypted record}`: a plain string costs
# far less Redis memory than a hash once the record outgrows the hash's compact encoding.
#
# Read a session, slide its idle expiry (capped by the absolute deadline) and count it against the
# session's and its customer's rate limits, all in one round trip. PEXPIRE only runs when the TTL has
# drifted by more than ARGV[3] ms, so a burst of requests does not turn every read into a write.
SESSION_READ_SCRIPT = (
    RATE_LUA
    + """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ttl = math.min(tonumber(ARGV[2]), tonumber(string.match(v, '^(%d+):')) - tonumber(ARGV[1]))
if ttl <= 0 then redis.call('DEL', KEYS[1]) return false end
if redis.call('PTTL', KEYS[1]) < ttl - tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ttl) end
if over_limit(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5])) then return {v, tostring(ttl), '1'} end
if over_limit(KEYS[3], tonumber(ARGV[6]), tonumber(ARGV[7])) then return {v, tostring(ttl), '2'} end
return {v, tostring(ttl)}
"""
)

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

# The same record under the first key, only if it is still byte for byte what was read: a refresh (a new
# generation), a logout (no record) or another instance's rewrite (a new nonce) meanwhile wins.
_REENCRYPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
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
    customer_id: str = ""  # gid://shopify/Customer/<n>, fetched at login (webhooks name customers by it)
    user_agent: str = ""  # a summary such as "Chrome on Mac OS X", for the customer's list of sessions
    # Carts this session's token was put on, newest first and bounded (app/carts.py): logout clears them.
    carts: tuple[str, ...] = ()
    generation: int = 0
    ttl_ms: int = field(default=0, compare=False)

    def to_json(self) -> bytes:
        data = asdict(self)
        for transient in ("sid", "generation", "ttl_ms"):
            data.pop(transient)
        return json.dumps(data, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class KeyCensus:
    """Session records by the token encryption key they are under."""

    primary: int = 0  # the first listed key
    older: int = 0  # another listed key: drop it only once this is 0
    unlisted: int = 0  # no listed key: unreadable, those customers sign in again


def customer_tag(sub: str, customer_id: str = "") -> str:
    """The hash tag of a customer's keys: from their Shopify customer id when known (so a webhook, which
    names only that id, finds the same slot), else from `sub`."""
    source = f"cid:{customer_id}" if customer_id else sub
    return hashlib.sha256(source.encode()).hexdigest()[:TAG_LENGTH]


def new_session_id(sub: str, customer_id: str = "") -> str:
    """A fresh session id for a customer: their tag (see the module docstring), then 256 random bits."""
    return f"{customer_tag(sub, customer_id)}.{new_id()}"


def session_handle(sid: str) -> str:
    """The opaque name a customer sees for one of their sessions: it cannot be turned back into the id."""
    return hashlib.sha256(f"bff-handle:{sid}".encode()).hexdigest()[:24]


def _split(sid: str) -> tuple[str, str]:
    """(the hash tag, the rest) of a session id; an untagged id is its own tag."""
    if len(sid) > TAG_LENGTH and sid[TAG_LENGTH] == ".":
        return sid[:TAG_LENGTH], sid[TAG_LENGTH:]
    return sid, ""


def session_prefix(prefix: str = DEFAULT_PREFIX) -> str:
    """Where every session record's key starts, under the key `prefix` (BFF_REDIS_PREFIX, or a shop's)."""
    return f"{prefix}session:"


def session_key(sid: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The Redis key of a session record, under the deployment's key `prefix` (BFF_REDIS_PREFIX)."""
    return _record_key(prefix, *_split(sid))


# The hot path's keys from a split id (`load` splits it once for all three).
def _record_key(prefix: str, tag: str, rest: str) -> str:
    return f"{prefix}session:{{{tag}}}{rest}"


def _rate_key(prefix: str, tag: str, rest: str, window: int) -> str:
    return f"{prefix}rl:graphql:{window}:{{{tag}}}{rest}"


def _customer_rate_key(prefix: str, tag: str, rest: str, window: int) -> str | None:
    return f"{prefix}rl:customer:{window}:{{{tag}}}" if rest else None


def _customer_tag(sub: str) -> str:
    return hashlib.sha256(sub.encode()).hexdigest()[:32]


def _customer_key(prefix: str, sub: str) -> str:
    return f"{prefix}customer:{{{_customer_tag(sub)}}}"


def _epoch_key(prefix: str, sub: str) -> str:
    # The same hash tag as the index, so both travel in one pipeline, on Cluster too.
    return f"{prefix}epoch:{{{_customer_tag(sub)}}}"


def _by_id_key(prefix: str, tag: str) -> str:
    return f"{prefix}cid:{{{tag}}}"


def _by_id_epoch_key(prefix: str, tag: str) -> str:
    return f"{prefix}cepoch:{{{tag}}}"


def _webhook_key(prefix: str, tag: str, webhook_id: str) -> str:
    return f"{prefix}hook:{{{tag}}}{webhook_id}"


# End every session in a customer-id index, in the index's slot (every member carries its tag): mark the
# epoch first (a login being stored meanwhile voids itself), delete each record and the index. With a
# webhook id, only once: a replayed delivery finds its mark and does nothing. One round trip. The records
# are not declared as KEYS: each shares the index's hash tag, so every one is in the script's slot; their
# names start with ARGV[4], the deployment's `{prefix}session:`.
_END_BY_ID = """
if ARGV[3] ~= '' and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then return -1 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local ended = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  ended = ended + redis.call('DEL', ARGV[4] .. '{' .. string.sub(sid, 1, 16) .. '}' .. string.sub(sid, 17))
end
redis.call('DEL', KEYS[1])
return ended
"""


# A new session's record and, given KEYS[2..3], its customer-id index (the record's slot: the id carries the
# index's tag), returning that index's epoch. Atomic, so `end_customer` either voids the login (epoch) or
# finds and deletes the record (index). ARGV: value, ttl ms, deadline ms, now ms, index lifetime ms, sid.
_CREATE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #KEYS == 1 then return false end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return redis.call('GET', KEYS[3])
"""

# Add a session to a customer index: drop members past their absolute deadline, add this one, keep the
# index as long as its newest session; {size, epoch}. The epoch is read after the ZADD (see end_all).
# KEYS: index, epoch; ARGV: now ms, deadline ms, sid, index lifetime ms.
_ADD_TO_INDEX = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {redis.call('ZCARD', KEYS[1]), redis.call('GET', KEYS[2])}
"""


class SessionStore:
    """Sessions and the per-customer index in Redis."""

    def __init__(
        self,
        redis: RedisConnections,
        cipher: TokenCipher,
        *,
        idle_timeout: int,
        absolute_lifetime: int,
        prefix: str,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        cache: SessionCache | None = None,
    ) -> None:
        """`prefix` starts every key (BFF_REDIS_PREFIX): another prefix on the same Redis sees none of these.
        `cache` (BFF_SESSION_CACHE): `load` answers from it when it can prove its copy current."""
        self._redis = redis.client
        self._prefix = prefix
        self._cipher = cipher
        self._metrics = metrics
        self._clock = clock
        self._idle_ms = idle_timeout * 1000
        self._absolute_ms = absolute_lifetime * 1000
        # Slide at most every 1% of the idle timeout (capped at a minute): one write per burst.
        self._slack_ms = min(60_000, self._idle_ms // 100)
        self._read: Any = redis.hot_script(SESSION_READ_SCRIPT)
        self._ready = redis.ready
        # Sessions this process saw go over a limit, until the window ends: a flood from one of them is
        # then refused without a Redis round trip (the counter in Redis already says no, for every process).
        self._refused: dict[str, tuple[float, str]] = {}
        self._replace: Any = self._redis.register_script(_REPLACE)
        self._reencrypt: Any = self._redis.register_script(_REENCRYPT)
        self._end_by_id: Any = self._redis.register_script(_END_BY_ID)
        # Every login runs both: on the lean pipelined connection where it applies, like the session read.
        self._create: Any = redis.hot_script(_CREATE)
        self._add_to_index: Any = redis.hot_script(_ADD_TO_INDEX)
        self._cache = cache

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _seal(self, session: Session) -> bytes:
        return self._cipher.encrypt(records.encode(session), session.sid.encode())

    def _open(self, sid: str, blob: bytes) -> bytes | None:
        plain = self._cipher.decrypt(blob, sid.encode())
        if plain is None:
            # Encrypted under a key no longer configured, or tampered with: unusable, so treated as absent.
            log.warning("a session record could not be decrypted; check BFF_TOKEN_ENCRYPTION_KEYS")
        elif not records.readable(plain):
            # Written by a newer release (this one was rolled back to): a logged-out browser, never a 500.
            log.warning("a session record is in a form this release does not read; its browser logs in again")
            return None
        return plain

    async def create(self, session: Session) -> Session:
        """Store a brand-new session under a fresh id (the caller made the id), indexed by customer.

        Two round trips, in this order: the record with its customer-id index (one script, one slot), then
        the `sub` index (another slot), whose epoch is read after the record exists (see `end_all`)."""
        now_ms = self._now_ms()
        deadline = now_ms + self._absolute_ms
        ttl = min(self._idle_ms, self._absolute_ms)
        value = b"%d:0:%s" % (deadline, self._seal(session))
        epoch = await self._store_record(session, value, ttl, deadline, now_ms)
        by_sub = await self._index(session.sub, session.sid, deadline, now_ms)
        epoch = max(epoch or 0, by_sub or 0) or None
        if epoch is not None and epoch >= now_ms:
            # "Log out everywhere" began while this login was being stored, and may have read the index
            # before this session joined it: the login is void, so nothing outlives that logout.
            await self.delete(session.sid, sub=session.sub)
            raise SessionExpired("The customer was just logged out everywhere; log in again.")
        return replace(session, generation=0, ttl_ms=ttl)

    async def load(self, sid: str, *, rates: SessionRates = NO_LIMITS) -> Session | None:
        """Read a session, slide its idle expiry and count it against the session's and the customer's
        `rates`: one round trip, or none when the session cache holds a current copy.

        Raises a 429 `rate_limited` when the session, or its customer across all their sessions, is over
        the limit.
        """
        now = self._clock()
        refused = self._refused.get(sid)
        if refused is not None and now < refused[0]:
            raise RateLimited(refused[1], headers={"Retry-After": str(max(1, math.ceil(refused[0] - now)))})
        # The windows' numbers straight from the clock (`Rate.window` builds a Window for its seconds_left,
        # which only a refusal needs): this runs on every request, cached or not.
        per_session, per_customer = rates.session, rates.customer
        index = int(now // per_session.period)
        customer_index = int(now // per_customer.period)
        tag, rest = _split(sid)
        prefix = self._prefix
        key = _record_key(prefix, tag, rest)
        customer_key = _customer_rate_key(prefix, tag, rest, customer_index)
        customer_limit = per_customer.amount if customer_key is not None else 0
        rate_key = _rate_key(prefix, tag, rest, index)
        cache = self._cache
        if cache is None or not cache.live:
            read = await self._read_through(sid, key, now, rates, rate_key, customer_key, customer_limit)
            return read[0] if read is not None else None
        counted: tuple[Limit, ...] = ()
        if per_session.amount > 0:
            span = per_session.period * 1000
            counted = (Limit(rate_key, per_session.amount, span, (index + 1) * span),)
        if customer_key is not None and customer_limit > 0:
            span = per_customer.period * 1000
            counted += (Limit(customer_key, customer_limit, span, (customer_index + 1) * span),)
        # By the record's key, not the id: the cache serves every shop, and each shop has its own prefix.
        hit = cache.lookup(key, int(now * 1000), counted)
        if not isinstance(hit, int):
            return hit
        if hit != MISS:
            self._refuse(sid, now, rates, b"1" if hit == OVER_SESSION else b"2")
        token = cache.begin(key, counted)
        read = None
        try:
            read = await self._read_through(sid, key, now, rates, rate_key, customer_key, customer_limit)
        finally:
            cache.end(key, token, read)
        return read[0] if read is not None else None

    async def _read_through(
        self,
        sid: str,
        key: str,
        now: float,
        rates: SessionRates,
        rate_key: str,
        customer_key: str | None,
        customer_limit: int,
    ) -> tuple[Session, int, int] | None:
        """`load` from Redis (`key` is the record's): the session, its absolute deadline and its TTL (ms),
        for the cache."""
        found = await guarded(
            self._read(
                keys=[key, rate_key, customer_key or rate_key],
                args=[
                    int(now * 1000),
                    self._idle_ms,
                    self._slack_ms,
                    rates.session.amount,
                    rates.session.window_ms,
                    customer_limit,
                    rates.customer.window_ms,
                ],
            )
        )
        if not found:
            return None
        values = cast(list[bytes], found)
        if len(values) == 3:
            self._refuse(sid, now, rates, values[2])
        raw = values[0]
        deadline, generation, blob = raw.split(b":", 2)
        plain = self._open(sid, blob)
        if plain is None:
            return None
        if not self._cipher.is_primary(blob):
            await self._rewrite(
                sid, raw, b"%s:%s:%s" % (deadline, generation, self._cipher.encrypt(plain, sid.encode()))
            )
        ttl = int(values[1])
        session = Session(sid=sid, generation=int(generation), ttl_ms=ttl, **records.decode(plain))
        return session, int(deadline), ttl

    def _refuse(self, sid: str, now: float, rates: SessionRates, which: bytes) -> None:
        """Raise the 429 for the session's limit (`which` b"1") or its customer's (b"2")."""
        if which == b"1":
            window = rates.session.window(now)
            detail = "Too many requests for this session."
            ends = (window.index + 1) * rates.session.period
        else:
            window = rates.customer.window(now)
            detail = "Too many requests for this customer, across their sessions."
            ends = (window.index + 1) * rates.customer.period
        self._remember_refusal(sid, now, ends, detail)
        raise RateLimited(detail, headers={"Retry-After": str(window.seconds_left)})

    def _remember_refusal(self, sid: str, now: float, ends: float, detail: str) -> None:
        if len(self._refused) >= REFUSALS_KEPT:  # bounded: expired entries go first, then all of them
            self._refused = {k: v for k, v in self._refused.items() if v[0] > now}
            if len(self._refused) >= REFUSALS_KEPT:
                self._refused.clear()
        self._refused[sid] = (ends, detail)  # the end of the clock-aligned window that said no

    async def _rewrite(self, sid: str, read: bytes, rewritten: bytes) -> None:
        """Put a record read under an older key under the first one, unless it changed since it was read."""
        try:
            done = await guarded(self._reencrypt(keys=[session_key(sid, self._prefix)], args=[read, rewritten]))
        except SessionStoreUnavailable:
            return  # the read worked; the next one tries again
        if done and self._metrics is not None:
            self._metrics.records_reencrypted.inc()

    async def peek(self, sid: str) -> Session | None:
        """Read a session without sliding it (used after waiting for another refresher, and at logout)."""
        raw = await guarded(self._redis.get(session_key(sid, self._prefix)))
        if not isinstance(raw, bytes):
            return None
        _, generation, blob = raw.split(b":", 2)
        plain = self._open(sid, blob)
        return Session(sid=sid, generation=int(generation), **records.decode(plain)) if plain is not None else None

    async def replace_if_current(self, session: Session) -> Session | None:
        """Store refreshed tokens unless the session moved on (or was deleted) meanwhile."""
        self._forget(session.sid)
        new_generation = session.generation + 1
        ok = await guarded(
            self._replace(
                keys=[session_key(session.sid, self._prefix)],
                args=[str(session.generation), self._seal(session), str(new_generation)],
            )
        )
        return replace(session, generation=new_generation) if ok else None

    async def delete(self, sid: str, *, sub: str | None = None) -> None:
        # The session's rate-limit counters expire with their windows.
        self._forget(sid)
        await guarded(self._redis.delete(session_key(sid, self._prefix)))
        if sub is not None:
            await guarded(self._redis.zrem(_customer_key(self._prefix, sub), sid))

    def _forget(self, sid: str) -> None:
        # This process's own change: its copy goes now, not when Redis's invalidation arrives.
        if self._cache is not None:
            self._cache.forget(session_key(sid, self._prefix))

    # --- the per-customer index -------------------------------------------------------------------

    async def _store_record(
        self, session: Session, value: bytes, ttl: int, deadline_ms: int, now_ms: int
    ) -> int | None:
        """Write the record and, with a customer id, add it to that customer-id index; returns the index's
        epoch, if any. One script: on Cluster the record and the index share the customer's slot."""
        keys = [session_key(session.sid, self._prefix)]
        tag = customer_tag(session.sub, session.customer_id)
        if session.customer_id and _split(session.sid)[0] == tag:
            keys += [_by_id_key(self._prefix, tag), _by_id_epoch_key(self._prefix, tag)]
        elif session.customer_id:
            # An id made elsewhere, not under this customer's tag (new_session_id always is): its own slot.
            await guarded(self._redis.set(keys[0], value, px=ttl))
            return await self._index_by_id(session, deadline_ms, now_ms)
        args = [value, ttl, deadline_ms, now_ms, self._absolute_ms, session.sid]
        epoch = await guarded(self._create(keys=keys, args=args))
        return int(epoch) if epoch is not None else None

    async def _index(self, sub: str, sid: str, deadline_ms: int, now_ms: int) -> int | None:
        """Add a session to its customer's index; returns the customer's logout-everywhere epoch, if any."""
        key = _customer_key(self._prefix, sub)
        # Bounded: members past their absolute deadline go at every login, and the index expires with
        # its newest session. Idle-expired members are pruned whenever the index grows past a few.
        size, epoch = await guarded(
            self._add_to_index(
                keys=[key, _epoch_key(self._prefix, sub)], args=[now_ms, deadline_ms, sid, self._absolute_ms]
            )
        )
        if int(size) > INDEX_PRUNE_AT:
            members = await self.session_ids_of(sub)
            alive = await asyncio.gather(*(guarded(self._redis.exists(session_key(m, self._prefix))) for m in members))
            dead = [m for m, exists in zip(members, alive, strict=True) if not exists]
            if dead:
                await guarded(self._redis.zrem(key, *dead))
        return int(epoch) if epoch is not None else None

    async def _index_by_id(self, session: Session, deadline_ms: int, now_ms: int) -> int | None:
        """Add a session to its customer-id index (in its own slot); returns that index's epoch, if any."""
        tag = customer_tag(session.sub, session.customer_id)
        keys = [_by_id_key(self._prefix, tag), _by_id_epoch_key(self._prefix, tag)]
        _, epoch = await guarded(
            self._add_to_index(keys=keys, args=[now_ms, deadline_ms, session.sid, self._absolute_ms])
        )
        return int(epoch) if epoch is not None else None

    async def end_customer(self, customer_id: str, *, webhook_id: str = "") -> int | None:
        """End every session of the customer with this Shopify id (a webhook, or the operator); how many
        were live, or None when `webhook_id` was seen before (nothing done twice). One round trip."""
        tag = customer_tag("", customer_id)
        ended = await guarded(
            self._end_by_id(
                keys=[
                    _by_id_key(self._prefix, tag),
                    _by_id_epoch_key(self._prefix, tag),
                    _webhook_key(self._prefix, tag, webhook_id),
                ],
                args=[
                    self._now_ms(),
                    self._absolute_ms,
                    WEBHOOK_MEMORY_MS if webhook_id else "",
                    session_prefix(self._prefix),
                ],
            )
        )
        return None if int(ended) < 0 else int(ended)

    async def sessions_of(self, sub: str) -> list[Session]:
        """Every live session of a customer (by `sub`), with its TTL; for the customer's own list."""
        members = await self.session_ids_of(sub)
        if not members:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in members:
                pipe.get(session_key(sid, self._prefix))
                pipe.pttl(session_key(sid, self._prefix))
            replies = await guarded(pipe.execute())
        found = []
        for sid, raw, ttl in zip(members, replies[::2], replies[1::2], strict=True):
            if not isinstance(raw, bytes):
                continue
            _, generation, blob = raw.split(b":", 2)
            plain = self._open(sid, blob)
            if plain is not None:
                found.append(Session(sid=sid, generation=int(generation), ttl_ms=int(ttl), **records.decode(plain)))
        return found

    def last_used(self, session: Session) -> float | None:
        """When the session was last used, to within the sliding slack (a minute at most), read off its TTL:
        each use slides the TTL back to the idle timeout. None when the absolute deadline caps the TTL."""
        if session.ttl_ms <= 0:
            return None
        deadline_left = session.created_at * 1000 + self._absolute_ms - self._now_ms()
        if abs(deadline_left - session.ttl_ms) < 1000:
            return None
        return max(session.created_at, self._clock() - (self._idle_ms - session.ttl_ms) / 1000)

    async def session_ids_of(self, sub: str) -> list[str]:
        members = await guarded(self._redis.zrange(_customer_key(self._prefix, sub), 0, -1))
        return [m.decode() for m in cast(list[bytes], members)]

    async def end_all(self, sub: str) -> int:
        """End every session of one customer ("log out everywhere"); returns how many were live.

        The epoch is written first. A login racing this call either joined the index before a read
        below (and is deleted here) or joins it after, and then its own `create` sees the epoch and voids
        itself. (A login that began just after the epoch may go too: it raced the logout.)
        """
        key = _customer_key(self._prefix, sub)
        await guarded(self._redis.set(_epoch_key(self._prefix, sub), self._now_ms(), px=self._absolute_ms))
        ended = 0
        for _ in range(10):  # bounded, even under a stream of concurrent logins
            members = await self.session_ids_of(sub)
            if not members:
                break
            for sid in members:
                self._forget(sid)
                ended += int(await guarded(self._redis.delete(session_key(sid, self._prefix))))
            await guarded(self._redis.zrem(key, *members))
        return ended

    async def key_census(self, *, batch: int = 500) -> KeyCensus:
        """Count every session record by its key. A SCAN over all sessions: for `doctor`, never a request."""
        counts = [0, 0, 0]  # primary, older, unlisted
        keys: list[bytes] = []

        async def tally() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.getrange(key, 0, 63)  # the deadline, the generation and the key id are enough
                heads = await guarded(pipe.execute())
            for head in heads:
                parts = bytes(head).split(b":", 2)
                if len(parts) < 3:
                    continue  # expired since the scan
                position = self._cipher.key_position(parts[2])
                counts[2 if position is None else min(position, 1)] += 1
            keys.clear()

        async for key in self._redis.scan_iter(match=f"{session_prefix(self._prefix)}*", count=batch):
            keys.append(key)
            if len(keys) >= batch:
                await tally()
        if keys:
            await tally()
        return KeyCensus(*counts)

    async def ping(self) -> bool:
        """Readiness of every connection the store uses, the hot path's included (RedisConnections.ready)."""
        return await guarded(self._ready(f"{self._prefix}readyz"))
