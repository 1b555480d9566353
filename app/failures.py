"""Why a connection to the shop or to Redis failed, in words an operator can act on, and where it went.

Discovery (shopify/discovery.py), Redis (store/connections.py), the startup check (main.py) and `doctor` all
describe a failure with `cause_of`, so the log and the command line never disagree about what went wrong:

    DNS failure           the host name does not resolve (a typo in the setting, or no DNS)
    connection refused    the host answers but nothing listens on that port
    network unreachable   no route to the host
    connection reset      the peer dropped the connection
    TLS error (REASON)    the handshake failed: a plain port behind https:// or rediss://, a bad certificate
    timeout               no answer in time
    HTTP 503              the server answered, with an unusable status
    Redis answered NOAUTH an error reply (password, read-only replica, loading, out of memory)

The exception chain is walked from the outermost error inwards and the first recognisable link wins, so a
catalog error raised `from` an httpx or redis-py error is described by what actually failed. Anything
else is named by a catalog error's detail or the exception's class, never by its message (an upstream's
message may echo a URL with credentials in it). `without_credentials` is the one way a target URL is printed.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.errors import BFFError

_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})


@dataclass(frozen=True, slots=True)
class Cause:
    """`kind` is stable (dns, refused, unreachable, reset, tls, timeout, http, redis, other); `text` is for people."""

    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one(link: BaseException) -> Cause | None:
    """What this one exception says by itself, if anything an operator can act on."""
    if isinstance(link, httpx.HTTPStatusError):
        return Cause("http", f"HTTP {link.response.status_code}")
    if isinstance(link, socket.gaierror):
        return Cause("dns", "DNS failure")
    if isinstance(link, ConnectionRefusedError):
        return Cause("refused", "connection refused")
    if isinstance(link, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return Cause("reset", "connection reset")
    if isinstance(link, ssl.SSLError):
        reason = link.reason or getattr(link, "verify_message", None)
        return Cause("tls", f"TLS error ({reason})" if reason else "TLS error")
    if isinstance(link, TimeoutError | httpx.TimeoutException | RedisTimeoutError):
        return Cause("timeout", "timeout")
    if isinstance(link, OSError) and link.errno in _UNREACHABLE:
        return Cause("unreachable", "network unreachable")
    if isinstance(link, AuthenticationError):
        return Cause("redis", "Redis refused the password")
    if isinstance(link, ResponseError):
        # Only Redis's error prefix (NOAUTH, WRONGPASS, READONLY, LOADING, OOM...): the rest may quote a key.
        return Cause("redis", f"Redis answered {str(link).split(' ', 1)[0]}")
    return None


def cause_of(error: BaseException) -> Cause:
    """The first recognisable cause along `error`'s chain; else its detail (catalog errors) or class name."""
    for link in _chain(error):
        found = _one(link)
        if found is not None:
            return found
    if isinstance(error, BFFError):
        return Cause("other", error.detail.rstrip("."))
    return Cause("other", type(error).__name__)


def target_of(error: BaseException, default: str) -> str:
    """The URL an httpx error along the chain was for (after redirects, the one that failed), else `default`."""
    for link in _chain(error):
        if isinstance(link, httpx.RequestError | httpx.HTTPStatusError):
            try:
                return without_credentials(str(link.request.url))
            except RuntimeError:  # an httpx error built without its request
                continue
    return without_credentials(default)


def without_credentials(url: str) -> str:
    """`url` with any `user:password@` removed and no query (a Redis URL's query may carry a password)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=hosts, query="", fragment=""))
