"""The hot path's one Redis command, on a lean pipelined connection.

redis-py's asyncio client spends about ten times the CPU of this runner per EVALSHA (figures in
bench/results.md), and that difference was most of what the BFF added per request. So the session read
(one script, see sessions.py) goes through here; everything else uses redis-py.

One connection carries every concurrent call: commands are written as they come and replies, parsed by
hiredis (the C parser redis-py itself uses), resolve the waiting futures in order. A broken or stuck
connection fails every waiting call with redis-py's ConnectionError (a 503 upstream, never a logout)
and the next call reconnects. Plain `redis://` only; TLS, Unix-socket, Sentinel and Cluster URLs use
redis-py throughout. The runner reads no URL: connections.py resolves REDIS_URL once, with redis-py's own
parser, into the `Endpoint` both paths use.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)


def supports(url: str) -> bool:
    # TLS (rediss://) stays on redis-py, which honours the URL's ssl_* options (CA file, verification).
    return urlsplit(url).scheme == "redis"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom the runner connects: exactly what redis-py resolved from REDIS_URL."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_name: str | None = None
    timeout: float = 2.0  # a reply later than this means the connection is stuck (socket_timeout)
    connect_timeout: float = 2.0


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP, ready to write."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def setup_commands(to: Endpoint) -> list[bytes]:
    """What every raw connection of ours sends first, as redis-py would for REDIS_URL: AUTH, the client name,
    the database (the hot path's connection and the session cache's both)."""
    commands = []
    if to.password is not None:  # AUTH <password> alone is the `default` user, and works before Redis 6
        commands.append(pack(b"AUTH", *([to.username] if to.username else []), to.password))
    if to.client_name:
        commands.append(pack(b"CLIENT", b"SETNAME", to.client_name))
    if to.db:
        commands.append(pack(b"SELECT", to.db))
    return commands


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError("Redis connection lost"))

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("Redis connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.waiting.append((future, time.monotonic()))
        # Commands issued in one turn of the event loop leave in one write: one syscall, not one each.
        if not self.outgoing:
            loop.call_soon(self._flush)
        self.outgoing.append(payload)
        return future

    def _flush(self) -> None:
        data, self.outgoing = b"".join(self.outgoing), []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def stuck_for(self) -> float:
        return time.monotonic() - self.waiting[0][1] if self.waiting else 0.0

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class ScriptRunner:
    """Runs one Lua script by EVALSHA over a single pipelined connection (see the module docstring)."""

    def __init__(self, endpoint: Endpoint, script: str) -> None:
        self._endpoint = endpoint
        self._script = script.encode()
        self._sha = hashlib.sha1(self._script, usedforsecurity=False).hexdigest().encode()
        self._timeout = endpoint.timeout
        self._conn: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None
        self._refusal: str | None = None  # the last setup refusal logged, so an outage logs once, not per call

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        conn = await self._connection()
        reply = await conn.send(pack(b"EVALSHA", self._sha, len(keys), *keys, *args))
        if isinstance(reply, hiredis.ReplyError):
            if not str(reply).startswith("NOSCRIPT"):
                raise ResponseError(str(reply))
            # Redis restarted or its script cache was flushed: load the script once, then retry.
            await conn.send(pack(b"SCRIPT", b"LOAD", self._script))
            reply = await conn.send(pack(b"EVALSHA", self._sha, len(keys), *keys, *args))
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
        return reply

    async def ping(self) -> None:
        """A round trip on the very connection the script uses (connecting first if need be), for readiness."""
        reply = await (await self._connection()).send(pack(b"PING"))
        if isinstance(reply, hiredis.ReplyError):  # a refused PING is the connection's state, not a bad script
            raise RedisConnectionError(f"Redis refused PING: {reply}")

    async def _connection(self) -> _Connection:
        return self._conn if self._conn is not None and not self._conn.closed else await self._connect()

    async def _connect(self) -> _Connection:
        async with self._connecting:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            loop = asyncio.get_running_loop()
            conn = None
            try:
                async with asyncio.timeout(self._endpoint.connect_timeout):
                    _, conn = await loop.create_connection(_Connection, self._endpoint.host, self._endpoint.port)
                    await self._handshake(conn)
            except (OSError, TimeoutError) as exc:
                if conn is not None:
                    conn.abort()  # connected but the handshake stalled: do not leak the socket
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
            self._conn, self._refusal = conn, None
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = asyncio.create_task(self._watch())
            return conn

    async def _handshake(self, conn: _Connection) -> None:
        # Sent in one write, read in order. The PING makes a connection Redis accepts but will not serve
        # (NOAUTH, max clients) fail here, as a connection error, instead of on the first script call.
        commands = [*setup_commands(self._endpoint), pack(b"PING")]
        futures = [conn.send(command) for command in commands]
        for reply in [await future for future in futures]:
            if isinstance(reply, hiredis.ReplyError):
                conn.abort()
                if str(reply) != self._refusal:
                    self._refusal = str(reply)
                    log.error("Redis refused the hot path's connection (%s); check REDIS_URL", reply)
                raise RedisConnectionError(f"Redis refused the connection setup: {reply}; check REDIS_URL")

    async def _watch(self) -> None:
        # One timer for all calls instead of a timeout per call: a reply that is this late means the
        # connection is stuck, so it is dropped and every waiting call fails (and will reconnect).
        while True:
            await asyncio.sleep(self._timeout / 4)
            conn = self._conn
            if conn is not None and not conn.closed and conn.stuck_for() > self._timeout:
                conn.abort()

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
