"""Request proofs: CSRF checks for state-changing requests, and the client's address behind proxies."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets

from app.errors import CsrfFailed
from app.urls import Origin, is_trusted

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def new_id() -> str:
    """An unguessable id for sessions, login states and nonces (256 bits)."""
    return secrets.token_urlsafe(32)


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_csrf(origin: str | None, x_csrf: str | None, trusted: frozenset[Origin], *, allow_form: bool) -> None:
    """A present `Origin` must be trusted. Then either the custom `X-CSRF: 1` header (which forces a CORS
    preflight, so only trusted origins can send it) or, for form posts, that trusted Origin is proof."""
    if origin is not None and not is_trusted(origin, trusted):
        raise CsrfFailed("The request's Origin is not allowed.")
    if x_csrf == "1":
        return
    if allow_form and origin is not None:
        return
    raise CsrfFailed("Missing CSRF proof: send the header `X-CSRF: 1`.")


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address: the TCP peer, or, only when that peer is a trusted proxy, the nearest
    X-Forwarded-For entry that is not itself a trusted proxy (never the spoofable leftmost one)."""
    peer = peer or "unknown"
    if not trusted_proxies or not _in_networks(peer, trusted_proxies):
        return peer
    forwarded = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    for hop in reversed(forwarded):
        if not _in_networks(hop, trusted_proxies):
            return hop
    return forwarded[0] if forwarded else peer


def _in_networks(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
