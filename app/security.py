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


MAX_HOPS = 32  # X-Forwarded-For entries looked at, nearest first; a longer chain is not believable anyway
# uvicorn, run without `--no-proxy-headers` (`uvicorn app.main:create_app --factory` does so), replaces
# the TCP peer by an X-Forwarded-For hop whenever the peer is one of its trusted hosts, by default only
# 127.0.0.1, before the BFF sees the request.
UVICORN_TRUSTED = "127.0.0.1"


def _hop_address(hop: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of one X-Forwarded-For entry (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:5678`, `::1`), else None."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1 : hop.find("]")] if "]" in hop else ""
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None


def client_ip(peer: str | None, forwarded_for: list[str], trusted_proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address for rate limits and logs: the TCP peer, or, only when that peer is in
    BFF_TRUSTED_PROXIES, the nearest X-Forwarded-For hop that is not (every header line counts, joined
    in order, as proxies that append a line of their own send them). A hop that is not an IP address
    ends the walk at the last trusted one: a malformed chain is not believed past that point.
    """
    hops = [h for line in forwarded_for for h in line.split(",") if h.strip()][-MAX_HOPS:]
    addresses = [_hop_address(h) for h in hops]
    peer = peer or "unknown"
    untrusted_by_uvicorn = [a for a in addresses if a is not None and str(a) != UVICORN_TRUSTED]
    if untrusted_by_uvicorn and peer == str(untrusted_by_uvicorn[-1]):
        # uvicorn put this hop where the peer was, which it does only for a peer on 127.0.0.1: undo it,
        # so every way of starting the BFF applies these rules, and only these, to the same request.
        peer = UVICORN_TRUSTED
    if not _in_networks(peer, trusted_proxies):
        return peer
    for address in reversed(addresses):
        if address is None:
            return peer
        if not any(address in network for network in trusted_proxies):
            return str(address)
        peer = str(address)
    return peer


def _in_networks(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
