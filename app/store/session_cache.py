"""Decoded sessions kept in process memory, current because Redis says whenever one changes (CLIENT TRACKING).

One cache per process, for every shop it serves: two connections of our own, however many shops.
`invalidations` is subscribed (RESP2) to `__redis__:invalidate`; `tracking` ran `CLIENT TRACKING on REDIRECT
<invalidations' id> BCAST PREFIX <prefix>session: PREFIX ... NOLOOP`, one PREFIX per shop. With BCAST, every
write to any session key by any client (a refresh's SET, logout's DEL, a webhook's Lua DEL, a slide's PEXPIRE,
an expiry, FLUSHDB) sends that key's name here, whoever read it; checked on Redis 7.0 (DOCS-cache.md). Copies
are keyed by the session's Redis key, so two shops never share one and a message names its copy as is: it
drops that copy; a copy being read while its message arrives is not kept (`begin`/`end`).

A hit is judged here: the absolute deadline and Redis's expiry of the key (kept as a lower bound, so a copy
never outlives Redis's), the session's and the customer's rate-limit windows counted locally. A flush every
FLUSH_EVERY seconds, one pipeline on `tracking`, slides the idle TTL of sessions used since (a plain PEXPIRE:
NOLOOP spares our own copies, not other processes') and adds the local counts to the same counters the read
script uses, reading back the shared totals. A process counts locally at most a tenth of what is left of a
limit between flushes; past that, or near the limit, the request goes to Redis and is counted there exactly.

Anything unsure (a connection lost, no pong within STALE seconds, a failed flush, FLUSHDB) empties the cache
and it stays off until both connections are back: every request then reads Redis, as with the cache off, so
an outage answers 503 and a missed invalidation is never served.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import hiredis

from app.store.pipelined import Endpoint, pack, setup_commands

if TYPE_CHECKING:
    from app.store.sessions import Session

log = logging.getLogger("bff.sessions")

MAX_ENTRIES = 10_000  # LRU beyond this: about 2.8 KB each with its counters (DOCS-cache.md), 28 MB at most
FLUSH_EVERY = 0.05  # seconds between flushes of slides and counts
STALE = 0.5  # a pong or flush reply later than this means the connection cannot be trusted
RETRY_EVERY = 0.5  # seconds between reconnection attempts while off
SAFETY_MS = 1000  # a copy this close to Redis's expiry is read from Redis, which slides it at once
LEASE = 10  # a process spends at most 1/LEASE of a limit's remainder between two flushes

# Hit outcomes besides a Session: go to Redis, or refuse (the session's limit, the customer's).
MISS, OVER_SESSION, OVER_CUSTOMER = 0, 1, 2

# Add local counts to the read script's counters (their TTL set as RATE_LUA sets it) and return the totals.
_COUNT = """
local totals = {}
for i, key in ipairs(KEYS) do
  totals[i] = redis.call('INCRBY', key, ARGV[2 * i - 1])
  if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ARGV[2 * i] + 5000) end
end
return totals
"""


# A connection lost, refused or stuck, or a reply we cannot read: all mean "stop trusting the copies".
_FAILURES = (OSError, TimeoutError, hiredis.ProtocolError, ValueError)


class Limit(NamedTuple):
    """One rate-limit counter a request counts in: its Redis key, limit and window length. (A NamedTuple:
    one is built per counter per request, at half a frozen dataclass's cost.)"""

    key: str
    amount: int
    window_ms: int
    ends_ms: int  # when the window ends, on the BFF's clock


@dataclass(slots=True)
class _Entry:
    session: Session
    deadline_ms: int  # the absolute deadline
    expires_ms: int  # Redis's key lives at least until then


@dataclass(slots=True)
class _Counter:
    window_ms: int
    ends_ms: int
    base: int = -1  # the shared total Redis last gave; -1 until the first flush reads it
    pending: int = 0  # counted here, not yet in Redis


class _Link(asyncio.Protocol):
    """One raw connection: replies resolve futures in order; pub/sub messages go to `on_message`."""

    def __init__(self, on_message: Callable[[Any], None], on_lost: Callable[[_Link], None]) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.on_message, self.on_lost = on_message, on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if isinstance(reply, list) and reply and reply[0] == b"message":
                self.on_message(reply[2])
            elif self.waiting:
                future = self.waiting.popleft()
                if not future.done():
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError("Redis connection lost"))
        self.on_lost(self)

    def send(self, *commands: bytes) -> list[asyncio.Future[Any]]:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("Redis connection closed")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self.waiting.extend(futures)
        self.transport.write(b"".join(commands))
        return futures

    async def call(self, *commands: bytes) -> list[Any]:
        async with asyncio.timeout(STALE):
            replies = [await future for future in self.send(*commands)]
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ConnectionError(f"Redis refused: {reply}")
        return replies

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class SessionCache:
    """The process's copies of the sessions it served, for every shop (see the module docstring). Owned by
    the lifespan; each shop's SessionStore asks it by the session's Redis key."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        prefixes: Iterable[str],
        idle_timeout: int,
        clock: Callable[[], float] = time.time,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        """`prefixes`: where every shop's session keys start (sessions.session_prefix), one BCAST PREFIX
        each. `idle_timeout` is the deployment's (BFF_SESSION_IDLE_TIMEOUT): one value slides every shop's."""
        self._endpoint = endpoint
        # Every session key, nothing else. Redis refuses overlapping BCAST prefixes; shops' never overlap, as a
        # shop id holds no ":" (shops.py), so `<prefix><id>:session:` never starts another shop's.
        self._prefixes = tuple(dict.fromkeys(p.encode() for p in prefixes))
        if not self._prefixes:
            raise ValueError("a session cache needs the key prefix of at least one shop's sessions")
        self._idle_ms = idle_timeout * 1000
        self._slack_ms = min(60_000, self._idle_ms // 100)  # the read script's: one slide per burst
        self._clock = clock
        self._max = max_entries
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._counters: dict[str, _Counter] = {}
        # Used since the last flush, and when last: slid even if the copy was dropped meanwhile.
        self._touched: dict[str, tuple[_Entry, int]] = {}
        self._reading: dict[str, int] = {}  # key → reads in flight
        self._dirty: set[str] = set()  # in flight when its invalidation came: not kept
        self._generation = 0  # bumped whenever everything is dropped: reads begun before are not kept
        self._links: list[_Link] = []
        self.live = False
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None  # the last reason the connections could not be set up, logged once

    async def __aenter__(self) -> SessionCache:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.live = False
        self._off("shutting down")

    # --- the request path ---------------------------------------------------------------------------

    def lookup(self, key: str, now_ms: int, limits: tuple[Limit, ...]) -> Session | int:
        """The session whose Redis key is `key`, counted against `limits`; MISS (read Redis); or
        OVER_SESSION/OVER_CUSTOMER."""
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        if now_ms >= entry.deadline_ms or now_ms >= entry.expires_ms - SAFETY_MS:
            del self._entries[key]  # Redis decides: it ends the session or slides it
            return MISS
        counters = []
        for outcome, limit in enumerate(limits, start=OVER_SESSION):
            counter = self._counters.get(limit.key)
            if counter is None or counter.base < 0:
                self._count_later(limit)  # a total not read yet (a new window): Redis counts until the flush
                return MISS
            if counter.base >= limit.amount:
                return outcome  # the shared total is already over: refused everywhere
            if counter.pending >= (limit.amount - counter.base) // LEASE:
                return MISS  # this process's share of what is left is spent (or none is left): Redis counts
            counters.append(counter)
        for counter in counters:
            counter.pending += 1
        self._entries.move_to_end(key)
        self._touched[key] = (entry, now_ms)
        return entry.session

    def begin(self, key: str, limits: tuple[Limit, ...]) -> int:
        """Before reading the session at `key` from Redis: returns the token `end` needs."""
        self._reading[key] = self._reading.get(key, 0) + 1
        for limit in limits:
            self._count_later(limit)
        return self._generation

    def end(self, key: str, token: int, read: tuple[Session, int, int] | None) -> None:
        """After the read of `key`: keep `read` (the session, its absolute deadline and the TTL the script
        gave it, in ms) unless it may have changed meanwhile."""
        left = self._reading[key] - 1
        dirty = key in self._dirty
        if left:
            self._reading[key] = left
        else:
            del self._reading[key]
            self._dirty.discard(key)
        if read is None or dirty or not self.live or token != self._generation:
            return
        session, deadline_ms, ttl_ms = read
        # The script slides only past the slack, so Redis's TTL may be up to that much shorter than `ttl_ms`.
        now_ms = int(self._clock() * 1000)
        self._entries[key] = _Entry(session, deadline_ms, now_ms + ttl_ms - self._slack_ms)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, key: str) -> None:
        """This process changed the session at `key`: drop its copy now rather than when the message comes."""
        self._invalidate(key)

    def _count_later(self, limit: Limit) -> None:
        if limit.key not in self._counters:
            self._counters[limit.key] = _Counter(limit.window_ms, limit.ends_ms)

    def _invalidate(self, key: str) -> None:
        self._entries.pop(key, None)
        if key in self._reading:
            self._dirty.add(key)

    def _message(self, keys: Any) -> None:
        if not isinstance(keys, list):  # FLUSHDB / FLUSHALL: every key at once
            self._drop_all()
            return
        for key in keys:
            if isinstance(key, bytes):  # the name of a copy as is; surrogateescape: no key name can fail
                self._invalidate(key.decode(errors="surrogateescape"))

    def _drop_all(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._touched.clear()
        self._counters.clear()

    def _lost(self, link: _Link) -> None:
        if link in self._links:  # not one closed earlier, whose loss is reported late
            self._off("connection lost")

    def _off(self, why: str) -> None:
        if self.live:
            log.warning("session cache off (%s): every request reads Redis until it is back", why)
        self.live = False
        self._drop_all()
        links, self._links = self._links, []
        for link in links:
            link.close()

    # --- the background task ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self.live:
                try:
                    await self._connect()
                except _FAILURES as exc:
                    self._off("cannot connect")
                    cause = str(exc) or type(exc).__name__
                    if cause != self._failure:  # once per cause: an outage or a refusal logs one line, not one a retry
                        self._failure = cause
                        log.warning(
                            "session cache waiting for Redis (%s); requests read Redis (BFF_SESSION_CACHE)", cause
                        )
                    await asyncio.sleep(RETRY_EVERY)
                    continue
                self._failure = None
            await asyncio.sleep(FLUSH_EVERY)
            if not self.live:  # lost while asleep
                continue
            try:
                await self._flush()
            except _FAILURES as exc:
                self._off(str(exc) or type(exc).__name__)

    async def _open(self) -> _Link:
        to = self._endpoint
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(to.connect_timeout):
            _, link = await loop.create_connection(lambda: _Link(self._message, self._lost), to.host, to.port)
        self._links.append(link)
        await link.call(*setup_commands(to), pack(b"PING"))
        return link

    async def _connect(self) -> None:
        invalidations = await self._open()
        (client_id,) = await invalidations.call(pack(b"CLIENT", b"ID"))
        await invalidations.call(pack(b"SUBSCRIBE", b"__redis__:invalidate"))
        tracking = await self._open()
        # NOLOOP: our own slides (plain PEXPIREs on this connection) do not drop our own copies.
        prefixes = [part for prefix in self._prefixes for part in (b"PREFIX", prefix)]  # one per shop
        await tracking.call(pack(b"CLIENT", b"TRACKING", b"on", b"REDIRECT", client_id, b"BCAST", *prefixes, b"NOLOOP"))
        self._drop_all()  # reads begun before tracking was on are not kept
        self.live = True
        log.info("session cache on: Redis invalidates this process's copies")

    async def _flush(self) -> None:
        invalidations, tracking = self._links
        await invalidations.call(pack(b"PING"))  # a silent connection is as bad as a lost one
        now_ms = int(self._clock() * 1000)
        commands, slid = [], []
        touched, self._touched = self._touched, {}
        for key, (entry, used_ms) in touched.items():  # a PEXPIRE of a deleted key does nothing
            until = min(used_ms + self._idle_ms, entry.deadline_ms)  # idle from the last use, not from now
            if until > now_ms and until - entry.expires_ms > self._slack_ms:
                commands.append(pack(b"PEXPIRE", key, until - now_ms))
                slid.append((entry, until))
        counted = []
        crowded = len(self._counters) > 2 * self._max  # bounded too: totals of idle counters are re-read
        for key, counter in list(self._counters.items()):
            if now_ms >= counter.ends_ms + 5000 or (crowded and not counter.pending):
                del self._counters[key]
            elif counter.pending or counter.base < 0:
                counted.append((key, counter, counter.pending))
        if counted:
            args = [str(x) for _, c, n in counted for x in (n, c.window_ms)]
            commands.append(pack(b"EVAL", _COUNT, len(counted), *(k for k, _, _ in counted), *args))
        if not commands:
            return
        replies = await tracking.call(*commands)
        for entry, expires_ms in slid:
            entry.expires_ms = max(entry.expires_ms, expires_ms)
        if counted:
            for (_, counter, sent), total in zip(counted, replies[-1], strict=True):
                counter.pending -= sent  # what was counted during the flush goes in the next one
                counter.base = int(total)
