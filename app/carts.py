"""Logged-in checkout: the customer's access token put on their cart server-side, and taken off at logout.

Checkout knows who is buying from the cart's `buyerIdentity.customerAccessToken`, and that token never
reaches the browser, so the BFF sets it through the Storefront API (app/shopify/storefront.py) with the
session's current token, refreshed first if due, and the buyer's IP.

The token is re-attached lazily, not after each refresh: every `/cart/buyer-identity` and `/cart/checkout`
sets the session's freshest token on the cart, and checkout is the one moment the cart's token matters
(Shopify asks for `checkoutUrl` to be fetched only then, and the same call answers it). An eager update
would add a Storefront call per remembered cart to every refresh, on the refresh path shared by /graphql,
for carts that may never check out; a cart holding an expired token in the meantime just shows no
customer until it is used. A token that Shopify refuses although it looked fresh gets one refresh and one
retry, as on /graphql.

Every cart a session's token is put on is remembered in the session (newest first, at most `MAX_CARTS`;
one pushed out is released at once) *before* the token goes on it, so logout can always take the token off
again: at logout (and at log out everywhere, for every session of the customer) each remembered cart's
buyer identity is cleared, best effort and within the upstream deadline, so a shared computer's cart does
not keep the customer signed in at checkout. A signed-out checkout clears it too, so it always goes as a
guest.

The session write takes the session's refresh lock (store/refresh_locks.py) and compare-and-sets on its
generation. Without the lock, a cart remembered while another request refreshes would move the generation
under the refresh, whose write would then fail and drop the rotated refresh token: a logout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from app.errors import (
    BFFError,
    CartNotFound,
    CartRejected,
    CheckoutUrlRefused,
    RefreshTimeout,
    SessionExpired,
)
from app.metrics import Metrics
from app.shopify.storefront import CartUpdate, StorefrontAPI, UserError
from app.store.refresh_locks import RefreshLocks
from app.store.sessions import Session, SessionStore
from app.tokens import TokenRefresher
from app.urls import Origin

log = logging.getLogger("bff.carts")

MAX_CARTS = 5
RELEASE_CONCURRENCY = 4
LOCK_TTL = 5.0  # the cart write holds the lock for one read and one write
# Everything a signed-in checkout may have put on a cart; a guest's cart carries none of it.
GUEST: Mapping[str, str | None] = {"customerAccessToken": None, "email": None, "companyLocationId": None}


@dataclass(frozen=True, slots=True)
class CartChoice:
    """A validated cart request: which cart, and optionally the B2B location and the buyer's country."""

    cart_id: str
    company_location_id: str | None = None
    country_code: str | None = None


@dataclass(frozen=True, slots=True)
class Checkout:
    """The cart as Shopify answered it, its checkout URL on a host Shopify uses for checkouts."""

    cart_id: str
    checkout_url: str


def _refuses_token(update: CartUpdate) -> bool:
    return any(e.field[-1:] == ("customerAccessToken",) for e in update.user_errors)


def _scrubbed(error: UserError, token: str) -> dict[str, object]:
    # Shopify's messages are not known to quote the token; should one ever, it still goes no further.
    return {"field": list(error.field), "code": error.code, "message": error.message.replace(token, "[token]")}


class Carts:
    """Attaches sessions' tokens to carts, answers checkout URLs, and releases carts at logout."""

    def __init__(
        self,
        storefront: StorefrontAPI,
        sessions: SessionStore,
        locks: RefreshLocks,
        refresher: TokenRefresher,
        metrics: Metrics,
        *,
        shop_origin: Origin,
        domain_ttl: float,
        lock_wait: float,
        release_deadline: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`domain_ttl`: how long the shop's primary domain is trusted as a checkout host once read;
        `lock_wait`: how long a cart write waits for a refresh in progress; `release_deadline`: the
        most logout waits for carts to be released."""
        self._storefront = storefront
        self._sessions = sessions
        self._locks = locks
        self._refresher = refresher
        self._metrics = metrics
        self._shop_origin = shop_origin
        self._domain_ttl = domain_ttl
        self._lock_wait = lock_wait
        self._release_deadline = release_deadline
        self._clock = clock
        self._primary: tuple[frozenset[Origin], float] | None = None

    async def attach(self, session: Session, choice: CartChoice, *, buyer_ip: str, purpose: str) -> Checkout:
        """Put the session's freshest token (and email) on the cart; `purpose` labels the metric."""
        session = await self._refresher.fresh(session)
        await self._remember(session, choice.cart_id, buyer_ip=buyer_ip)
        identity: dict[str, str | None] = {"customerAccessToken": session.access_token}
        email = session.claims.get("email")
        if isinstance(email, str):
            identity["email"] = email
        if choice.country_code is not None:
            identity["countryCode"] = choice.country_code
        if choice.company_location_id is not None:
            identity["companyLocationId"] = choice.company_location_id
        update = await self._storefront.update_buyer_identity(choice.cart_id, identity, buyer_ip=buyer_ip)
        if _refuses_token(update):
            # The token died before its time (revoked, clock skew): one refresh, one retry, never a loop.
            session = await self._refresher.refresh(session)
            identity["customerAccessToken"] = session.access_token
            update = await self._storefront.update_buyer_identity(choice.cart_id, identity, buyer_ip=buyer_ip)
        return await self._answer(update, purpose, buyer_ip=buyer_ip, token=session.access_token)

    async def as_guest(self, choice: CartChoice, *, buyer_ip: str) -> Checkout:
        """The cart without any customer on it, for a signed-out checkout."""
        identity = dict(GUEST)
        if choice.country_code is not None:
            identity["countryCode"] = choice.country_code
        update = await self._storefront.update_buyer_identity(choice.cart_id, identity, buyer_ip=buyer_ip)
        return await self._answer(update, "guest", buyer_ip=buyer_ip, token=None)

    async def _answer(self, update: CartUpdate, purpose: str, *, buyer_ip: str, token: str | None) -> Checkout:
        """The checkout, or the catalog error for what Shopify said."""
        if any(e.field[:1] == ("cartId",) for e in update.user_errors) or (
            not update.user_errors and update.cart_id is None
        ):
            self._count(purpose, "not_found")
            raise CartNotFound("Shopify knows no cart with that id (it may have expired).")
        if update.user_errors or update.cart_id is None or update.checkout_url is None:
            self._count(purpose, "rejected")
            errors = [_scrubbed(e, token or "\0") for e in update.user_errors]
            raise CartRejected("Shopify refused the cart's buyer identity.", user_errors=errors)
        await self._check_checkout_host(update.checkout_url, buyer_ip=buyer_ip)
        self._count(purpose, "ok")
        return Checkout(update.cart_id, update.checkout_url)

    def _count(self, purpose: str, outcome: str) -> None:
        self._metrics.cart_updates.labels(purpose, outcome).inc()

    # --- the checkout URL's host ------------------------------------------------------------------

    async def _check_checkout_host(self, url: str, *, buyer_ip: str) -> None:
        """Only a host Shopify's own answers name for checkouts: the shop's domain, or its primary domain."""
        try:
            parts = urlsplit(url)
            origin = Origin.of(url)
        except ValueError:
            raise CheckoutUrlRefused() from None
        if parts.scheme not in ("https", "http") or parts.username is not None or parts.password is not None:
            raise CheckoutUrlRefused()
        if origin == self._shop_origin or origin in await self._primary_origins(buyer_ip):
            return
        log.warning("refused a checkout URL on %s: not a host of the shop", origin)
        raise CheckoutUrlRefused()

    async def _primary_origins(self, buyer_ip: str) -> frozenset[Origin]:
        """The shop's primary domain as the Storefront API states it, read at most every `domain_ttl`.

        Only asked when a checkout URL is not on the shop's own domain, so most checkouts cost nothing.
        """
        now = self._clock()
        if self._primary is not None and now - self._primary[1] < self._domain_ttl:
            return self._primary[0]
        try:
            primary = Origin.of(await self._storefront.primary_domain(buyer_ip=buyer_ip))
        except ValueError:
            primary = None
        # Plain http only for a loopback stand-in, which is the shop's own origin anyway.
        origins = frozenset({primary} if primary is not None and primary.startswith("https://") else set())
        self._primary = (origins, now)
        return origins

    # --- remembering and releasing ----------------------------------------------------------------

    async def _remember(self, session: Session, cart_id: str, *, buyer_ip: str) -> None:
        """Add the cart to the session's remembered carts; release one pushed out by it."""
        if cart_id not in session.carts:
            await self.release(await self._add(session.sid, cart_id), buyer_ip=buyer_ip)

    async def _add(self, sid: str, cart_id: str) -> tuple[str, ...]:
        """Write the cart into the session under its refresh lock (see the module docstring); the carts
        pushed out of the bound."""
        deadline = time.monotonic() + self._lock_wait
        delay = 0.01
        while True:
            async with self._locks.hold(sid, ttl=LOCK_TTL) as owned:
                if owned:
                    current = await self._sessions.peek(sid)
                    if current is None:
                        raise SessionExpired("The session has ended; log in again.")
                    if cart_id in current.carts:
                        return ()
                    carts = (cart_id, *current.carts)
                    if await self._sessions.replace_if_current(replace(current, carts=carts[:MAX_CARTS])) is None:
                        raise SessionExpired("The session has ended; log in again.")
                    return carts[MAX_CARTS:]
            # A refresh holds the lock: wait for it, as the refresher's own waiters do.
            while await self._locks.held(sid):
                if time.monotonic() > deadline:
                    raise RefreshTimeout("Timed out waiting for a token refresh.")
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.1)

    async def linked(self, session: Session, *, everywhere: bool) -> tuple[str, ...]:
        """The carts to release when `session` logs out (with `everywhere`, those of all the customer's
        sessions: read before they are deleted)."""
        carts = list(session.carts)
        if everywhere:
            try:
                for sid in await self._sessions.session_ids_of(session.sub):
                    other = await self._sessions.peek(sid)
                    carts += other.carts if other is not None else ()
            except BFFError as exc:
                log.warning("carts of other sessions not read at logout: %s", exc.code)
        return tuple(dict.fromkeys(carts))

    async def release(self, cart_ids: Sequence[str], *, buyer_ip: str) -> None:
        """Clear the buyer identity of each cart, best effort: a failure is logged and counted, never raised."""
        if not cart_ids:
            return
        gate = asyncio.Semaphore(RELEASE_CONCURRENCY)

        async def one(cart_id: str) -> None:
            async with gate:
                try:
                    update = await self._storefront.update_buyer_identity(cart_id, GUEST, buyer_ip=buyer_ip)
                except BFFError as exc:
                    log.warning("a cart's buyer identity was not cleared: %s", exc.code)
                    self._count("release", "error")
                    return
                # An unknown cart has expired at Shopify, or was never real: nothing is left to clear.
                gone = any(e.field[:1] == ("cartId",) for e in update.user_errors)
                self._count("release", "not_found" if gone else "rejected" if update.user_errors else "ok")

        try:
            async with asyncio.timeout(self._release_deadline):
                await asyncio.gather(*(one(c) for c in cart_ids))
        except TimeoutError:
            log.warning("releasing %d cart(s) at logout timed out", len(cart_ids))
            self._count("release", "error")


@dataclass(frozen=True, slots=True)
class LogoutCarts:
    """What logout does with carts: find the ones its session(s) touched, then release them. A no-op
    while the cart endpoints are off."""

    carts: Carts | None
    buyer_ip: str

    async def linked(self, session: Session, *, everywhere: bool) -> tuple[str, ...]:
        return await self.carts.linked(session, everywhere=everywhere) if self.carts is not None else ()

    async def release(self, cart_ids: Sequence[str]) -> None:
        if self.carts is not None:
            await self.carts.release(cart_ids, buyer_ip=self.buyer_ip)
