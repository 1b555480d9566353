"""What the BFF asks of Redis: commands per proxied request, and memory per stored session."""

from __future__ import annotations

import asyncio
import contextlib
import time
import timeit
from collections import Counter
from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis

from app.rates import Rate, SessionRates
from app.store import records
from app.store.sessions import SessionStore, session_key
from bench.bff import GRAPHQL_BODY, fake_session

# What redis-py sends when it opens a connection: not per request, though a pool that reconnects under
# load pays it again.
HANDSHAKE = frozenset({"hello", "client", "auth", "select", "ping"})


@dataclass(frozen=True, slots=True)
class CommandUsage:
    """Redis calls per BFF request. `round_trips` are the commands clients sent; the rest ran inside Lua."""

    requests: int
    failed: int
    per_command: dict[str, float]  # INFO commandstats delta / requests, every command incl. those run by scripts
    round_trips: dict[str, float]  # MONITOR: commands that arrived over a socket, per request
    in_scripts: dict[str, float]  # MONITOR: commands that ran inside Lua, per request

    @property
    def request_round_trips(self) -> float:
        """Round trips per request, not counting a (re)connection's handshake."""
        return sum(calls for name, calls in self.round_trips.items() if name not in HANDSHAKE)


@dataclass(frozen=True, slots=True)
class SessionMemory:
    """Redis memory per session: MEMORY USAGE of every key the sessions made, grouped by key prefix."""

    sessions: int
    bytes_per_session: float  # all keys, MEMORY USAGE
    by_prefix: dict[str, float]  # e.g. "bff:session" -> bytes per session
    used_memory_per_session: float  # INFO used_memory delta / sessions, allocator overhead included
    record_bytes: float  # the stored value alone: `{deadline}:{generation}:` and the encrypted record
    decode_us: float  # CPU per decode of a record's plaintext into Session fields (app/store/records.py)


async def _commandstats(redis: Redis) -> Counter[str]:
    info = await redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in info.items()})


async def _watch(redis: Redis, seen: Counter[tuple[str, str]]) -> None:
    """Count every command Redis runs, split by who sent it (a socket, or a Lua script)."""
    async with redis.monitor() as monitor:
        while True:
            command = await monitor.next_command()
            name = command["command"].split(" ", 1)[0].strip('"').lower()
            seen[("lua" if command["client_type"] == "lua" else "tcp", name)] += 1


async def _until_monitored(redis: Redis, seen: Counter[tuple[str, str]], *, timeout: float = 5.0) -> None:
    """Send ECHOs until MONITOR shows one: it is attached, and has counted every command sent before."""
    deadline = time.monotonic() + timeout
    target = seen[("tcp", "echo")] + 1
    while seen[("tcp", "echo")] < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"MONITOR showed no ECHO within {timeout}s")
        await redis.echo("bench: in step with MONITOR")
        await asyncio.sleep(0.01)


async def _post_many(url: str, cookie: str, count: int, concurrency: int) -> int:
    """POST `count` /graphql requests, `concurrency` at a time; the number that did not answer 200."""
    headers = {"Cookie": cookie, "X-CSRF": "1", "Content-Type": "application/json"}
    failed = 0
    queue = iter(range(count))

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal failed
        for _ in queue:
            async with http.post(url, data=GRAPHQL_BODY, headers=headers) as response:
                await response.read()
                failed += response.status != 200

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return failed


async def command_usage(redis_url: str, graphql_url: str, cookie: str, *, requests: int = 1000) -> CommandUsage:
    """Steady state: warm up (script loaded, discovery cached), then count Redis commands over `requests`."""
    await _post_many(graphql_url, cookie, 50, 8)
    redis = Redis.from_url(redis_url)
    try:
        seen: Counter[tuple[str, str]] = Counter()
        watcher = asyncio.create_task(_watch(redis, seen))
        await _until_monitored(redis, seen)  # attached before the first counted request
        before = await _commandstats(redis)
        failed = await _post_many(graphql_url, cookie, requests, 8)
        after = await _commandstats(redis)
        await _until_monitored(redis, seen)  # drained: every counted request's commands are in `seen`
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    finally:
        await redis.aclose()
    # Our own bookkeeping (INFO, MONITOR, the ECHOs that keep in step with it) is not the BFF's.
    ours = {"info", "monitor", "echo"}
    delta = {name: (after[name] - before[name]) / requests for name in after if name not in ours}
    return CommandUsage(
        requests=requests,
        failed=failed,
        per_command={name: calls for name, calls in sorted(delta.items()) if calls},
        round_trips={n: c / requests for (who, n), c in sorted(seen.items()) if who == "tcp" and n not in ours},
        in_scripts={n: c / requests for (who, n), c in sorted(seen.items()) if who == "lua"},
    )


async def session_memory(store: SessionStore, redis: Redis, *, sessions: int = 2000) -> SessionMemory:
    """Create `sessions` realistic sessions, use each once, and measure what they hold in Redis.

    `store` and `redis` must use an otherwise empty Redis database: every key in it is counted. Each session is
    read once through the hot path, so per-session keys that exist only while a browser is active (the
    /graphql rate-limit counter) are counted too.
    """
    await redis.flushdb()
    base = int((await redis.info("memory"))["used_memory"])
    made = [fake_session() for _ in range(sessions)]
    for batch in range(0, sessions, 100):
        chunk = made[batch : batch + 100]
        await asyncio.gather(*(store.create(s) for s in chunk))
        await asyncio.gather(*(store.load(s.sid, rates=SessionRates(Rate(300, 60), Rate(1200, 60))) for s in chunk))
    used = int((await redis.info("memory"))["used_memory"]) - base
    keys = [key async for key in redis.scan_iter(count=1000)]
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = await pipe.execute()
    by_prefix: Counter[str] = Counter()
    for key, size in zip(keys, sizes, strict=True):
        # A rate-limit window's number is in its keys' names: one group for every window the run spanned.
        prefix = key.decode().split("{", 1)[0].rstrip(":")
        by_prefix[":".join("<n>" if part.isdigit() else part for part in prefix.split(":"))] += int(size or 0)
    stored = [len(await redis.get(session_key(s.sid)) or b"") for s in made[:100]]
    await redis.flushdb()
    return SessionMemory(
        sessions=sessions,
        bytes_per_session=sum(by_prefix.values()) / sessions,
        by_prefix={prefix: size / sessions for prefix, size in by_prefix.most_common()},
        used_memory_per_session=used / sessions,
        record_bytes=sum(stored) / len(stored),
        decode_us=_decode_us([records.encode(s) for s in made[:100]]),
    )


def _decode_us(plains: list[bytes], *, rounds: int = 20) -> float:
    """Process CPU µs per `records.decode`, the best of `rounds`: what every /graphql request that reads its
    session from Redis pays beyond AES-GCM (other processes on the cores slow a wall clock, less a CPU one)."""
    timer = timeit.Timer(lambda: [records.decode(p) for p in plains], timer=time.process_time)
    return min(timer.repeat(repeat=rounds, number=10)) / (10 * len(plains)) * 1e6
