"""Origins and URLs: parsing, loopback checks, safe return targets and query flags."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.errors import InvalidReturnTo

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_RETURN_TO = 2048
_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")


class Origin(str):
    """`scheme://host[:port]`, lower-cased, default ports dropped: the form browsers send in `Origin`.

    A `str`, so it compares with and hashes like the header value it is matched against.
    """

    __slots__ = ()

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an absolute URL; raises ValueError for anything else."""
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if not scheme or not host:
            raise ValueError(f"not an absolute URL: {url!r}")
        if ":" in host:
            host = f"[{host}]"
        port = parts.port
        if port is None or (scheme, port) in {("https", 443), ("http", 80)}:
            return cls(f"{scheme}://{host}")
        return cls(f"{scheme}://{host}:{port}")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def with_query_flag(url: str, name: str, value: str) -> str:
    """`url` with `name=value` in its query, replacing an earlier value of `name`."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urlunsplit(parts._replace(query=urlencode([*query, (name, value)])))


def is_trusted(origin: str, trusted: frozenset[str]) -> bool:
    """Whether an `Origin` header value (or any URL) is on one of the trusted origins.

    Browsers send the canonical form, so an exact match settles most calls without parsing.
    """
    if origin in trusted:
        return True
    try:
        return origin != "null" and Origin.of(origin) in trusted
    except ValueError:
        return False


def safe_return_to(raw: str | None, *, default: str, trusted: frozenset[Origin]) -> str:
    """An absolute URL on a trusted origin to send the browser back to, or a 400.

    Relative paths resolve against the default origin; `//host`, `/\\host`, control characters and
    schemes other than http(s) are refused outright rather than "fixed".
    """
    if raw is None or raw == "":
        return default
    if len(raw) > MAX_RETURN_TO or _CONTROL.search(raw):
        raise InvalidReturnTo("return_to is too long or has forbidden characters.")
    if raw.startswith("/") and not raw.startswith("//"):
        return default.rstrip("/") + raw
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in {"http", "https"} and bool(parts.hostname) and not parts.username
    except ValueError:
        valid = False
    if not valid:
        raise InvalidReturnTo("return_to must be a path or a URL on an allowed origin.")
    if not is_trusted(raw, trusted):
        raise InvalidReturnTo("return_to is not on an allowed origin (BFF_ALLOWED_ORIGINS).")
    return raw


_SECRET_PARAMS = frozenset({"password", "pass", "pwd", "token", "secret"})


def redacted(url: str) -> str:
    """`url` fit to print: a password in the userinfo or in the query becomes `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:***@{hosts}" if ":" in userinfo or not user else f"***@{hosts}"
    query = [
        (k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))
