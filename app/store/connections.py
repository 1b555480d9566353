"""Every Redis connection of the process, built in one place from REDIS_URL, and its error mapping.

  redis://[:password@]host:6379/0            standalone
  rediss://...                               standalone over TLS
  redis+sentinel://[:pw@]h1:26379,h2:26379/mymaster[/db]   Sentinel-managed primary
  redis+cluster://[:pw@]h1:7000,h2:7001      Redis Cluster (rediss+cluster:// for TLS)
  unix:///run/redis.sock                     standalone over a Unix socket

`RedisConnections` owns a redis-py client for all of them and, on plain `redis://`, the pipelined
connection that carries the hot path's one script (pipelined.py). A standalone URL is parsed once, by
redis-py's own parser, and both paths connect from that one result; a URL option a path could not honour
stops startup with a message naming REDIS_URL, so the paths never disagree (which database, which user).
Every key of a session shares a hash tag (see sessions.py), so scripts and multi-key calls work on
Cluster. `guarded` turns an unavailable Redis into a 503 that never logs anyone out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
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

from app.errors import SessionStoreUnavailable
from app.failures import cause_of, without_credentials
from app.store.pipelined import Endpoint, ScriptRunner, supports

if TYPE_CHECKING:
    from app.tracing import Tracing

T = TypeVar("T")
log = logging.getLogger("bff.redis")

_TIMEOUTS: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


def connection_retry() -> Retry:
    """Retry a command twice on a broken connection, so connections pooled before a Redis restart
    reconnect instead of failing one request each. Timeouts are not retried: a script may have run."""
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2, supported_errors=(RedisConnectionError,))


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """`h1:7000,[::1]:7001` → [(h1, 7000), (::1, 7001)]."""
    hosts = []
    for item in netloc.rpartition("@")[2].split(","):
        one = urlsplit(f"//{item.strip()}")
        hosts.append((one.hostname or "localhost", one.port or default_port))
    return hosts


def _username(netloc: str) -> str | None:
    userinfo = netloc.rpartition("@")[0]
    return unquote(userinfo.partition(":")[0]) or None


def _password(netloc: str) -> str | None:
    userinfo = netloc.rpartition("@")[0]
    if not userinfo:
        return None
    return unquote(userinfo.partition(":")[2]) or None


# What the pipelined runner honours of a redis:// URL. Any other option is refused at startup rather than
# moving the URL to redis-py: a tuning option must not silently cost the hot path ten times its CPU.
_PIPELINED_OPTIONS = frozenset(
    {"host", "port", "db", "username", "password", "client_name", "socket_timeout", "socket_connect_timeout"}
)
_POOL_OPTIONS = frozenset({"max_connections", "timeout"})  # BlockingConnectionPool's own, not a connection's
_HINTS = {"max_connections": "BFF_REDIS_MAX_CONNECTIONS sets the pool size", "ssl": "TLS is rediss://"}


def standalone_options(url: str) -> dict[str, Any]:
    """redis-py's connection options for a redis://, rediss:// or unix:// URL, as redis-py itself parses
    them (query options included); raises ValueError naming REDIS_URL for one that some path would ignore."""
    try:
        options: dict[str, Any] = dict(parse_url(url))
    except ValueError as exc:
        raise ValueError(f"REDIS_URL: {exc}") from None
    if supports(url) and (ignored := sorted(set(options) - _PIPELINED_OPTIONS)):
        hints = {hint for name in ignored for key, hint in _HINTS.items() if name.startswith(key)}
        raise ValueError(
            f"REDIS_URL option {', '.join(ignored)} is not supported on redis://: the hot path's pipelined "
            f"connection honours only {', '.join(sorted(_PIPELINED_OPTIONS - {'host', 'port'}))}"
            + "".join(f"; {hint}" for hint in sorted(hints))
        )
    if options.get("username") and not options.get("password"):
        raise ValueError("REDIS_URL names a Redis user but no password")
    connection = {k: v for k, v in options.items() if k not in _POOL_OPTIONS and k != "connection_class"}
    try:  # no I/O: an option the connection class does not take would otherwise fail at the first command
        options.get("connection_class", Connection)(**connection)
    except TypeError as exc:
        raise ValueError(f"REDIS_URL has an option redis-py does not take: {exc}") from None
    return options


def pipelined_endpoint(options: dict[str, Any]) -> Endpoint:
    """The runner's endpoint from `standalone_options`, with the same defaults redis-py applies."""
    settings = {**_TIMEOUTS, **options}
    return Endpoint(
        host=options.get("host", "localhost"),
        port=options.get("port", 6379),
        db=options.get("db", 0),
        username=options.get("username"),
        password=options.get("password"),
        client_name=options.get("client_name"),
        timeout=settings["socket_timeout"],
        connect_timeout=settings["socket_connect_timeout"],
    )


def _refuse_query(parts: SplitResult) -> None:
    if parts.query:  # named, not quoted: a value may be a password
        names = ", ".join(sorted(dict(parse_qsl(parts.query, keep_blank_values=True))))
        raise ValueError(f"REDIS_URL options are not read on {parts.scheme}:// URLs; remove {names}")


def redis_from_url(url: str, *, max_connections: int = 200) -> Redis:
    """A redis-py asyncio client for any of the URL forms above (Cluster is typed as Redis for callers)."""
    parts = urlsplit(url)
    if parts.scheme in {"redis+cluster", "rediss+cluster"}:
        _refuse_query(parts)
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc, 6379)]
        cluster = RedisCluster(
            startup_nodes=nodes,
            username=_username(parts.netloc),
            password=_password(parts.netloc),
            ssl=parts.scheme.startswith("rediss"),
            retry=connection_retry(),
            max_connections=max_connections,
            **_TIMEOUTS,
        )
        # RedisCluster implements the commands the store uses (scripts, pipelines, GETDEL, ...).
        return cluster  # type: ignore[return-value]
    if parts.scheme in {"redis+sentinel", "rediss+sentinel"}:
        _refuse_query(parts)
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("REDIS_URL for Sentinel must name the primary: redis+sentinel://host:26379/mymaster")
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _hosts(parts.netloc, 26379),
            sentinel_kwargs=_TIMEOUTS,
            username=_username(parts.netloc),
            password=_password(parts.netloc),
            db=int(path[1]) if len(path) > 1 else 0,
            ssl=parts.scheme.startswith("rediss"),
            retry=connection_retry(),
            **_TIMEOUTS,
        )
        return cast(Redis, sentinel.master_for(path[0], max_connections=max_connections))
    # A blocking pool: past max_connections a request waits (up to the socket timeout) for a free
    # connection instead of failing, so a burst is queued rather than answered with 503s. The URL's own
    # options win over these defaults, as in redis-py's from_url.
    defaults = {"max_connections": max_connections, "timeout": 2.0, "health_check_interval": 30, **_TIMEOUTS}
    pool = BlockingConnectionPool(retry=connection_retry(), **{**defaults, **standalone_options(url)})
    return Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it


async def close_redis(client: Redis) -> None:
    """Close a client from `redis_from_url`, including a Sentinel's own connections to the sentinels."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    manager = getattr(pool, "sentinel_manager", None)
    if pool is not None and manager is not None:
        await pool.disconnect()
        for sentinel in manager.sentinels:
            await sentinel.aclose()


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
# NOAUTH and WRONGPASS too: Redis's password changed under us, a configuration outage (logged by pipelined.py).
_UNAVAILABLE_PREFIXES = frozenset(
    {"LOADING", "READONLY", "MASTERDOWN", "OOM", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOAUTH", "WRONGPASS"}
)


async def guarded(call: Awaitable[T]) -> T:
    """Run one Redis call; an unavailable Redis becomes a 503, never a logout or a 500."""
    try:
        return await call
    except _UNAVAILABLE as exc:
        raise SessionStoreUnavailable(because=f"Redis: {cause_of(exc)} (REDIS_URL)") from exc
    except ResponseError as exc:
        # The pipelined reader keeps Redis's error prefix in the message.
        if str(exc).split(" ", 1)[0] in _UNAVAILABLE_PREFIXES:
            raise SessionStoreUnavailable(because=f"Redis: {cause_of(exc)} (REDIS_URL)") from exc
        raise


class RedisConnections:
    """The process's Redis: one redis-py client, plus the pipelined hot-path connection where it applies."""

    def __init__(self, url: str, *, max_connections: int, tracing: Tracing | None = None) -> None:
        """`tracing`: span every command (tracing.py); None, the default, adds nothing."""
        self.url = url
        self.client = redis_from_url(url, max_connections=max_connections)
        self._tracing = tracing
        if tracing is not None:
            tracing.traced_redis(self.client)
        # The same parse the client was built from: both paths reach the same database as the same user.
        self._endpoint = pipelined_endpoint(standalone_options(url)) if supports(url) else None
        self._runners: list[ScriptRunner] = []

    def hot_script(self, source: str) -> Any:
        """A callable `(keys=, args=)` running `source`: pipelined on plain redis://, else redis-py's."""
        if self._endpoint is not None:
            runner = ScriptRunner(self._endpoint, source)
            self._runners.append(runner)
            return runner if self._tracing is None else self._tracing.traced_script(runner)
        return self.client.register_script(source)

    @property
    def endpoint(self) -> Endpoint | None:
        """Where the pipelined connections go (plain redis:// only), for the session cache's own connections."""
        return self._endpoint

    @property
    def target(self) -> str:
        """REDIS_URL fit to print: no user, password or query."""
        return without_credentials(self.url)

    async def ready(self, key: str) -> bool:
        """Readiness: a write (to `key`, under the deployment's prefix), not PING, so a read-only replica or a
        full Redis counts as not ready; then a round trip on each pipelined connection, the hot path's own.
        Raises redis-py errors (see `guarded`), after logging one line with the target and the cause
        (failures.py)."""
        try:
            written = bool(await self.client.set(key, b"1", px=10_000))
            for runner in self._runners:
                await runner.ping()
        except Exception as exc:
            log.warning("Redis unavailable: %s at %s (REDIS_URL)", cause_of(exc), self.target)
            raise
        return written

    async def aclose(self) -> None:
        for runner in self._runners:
            await runner.aclose()
        await close_redis(self.client)
