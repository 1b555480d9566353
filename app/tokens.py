"""Fresh access tokens: refresh before expiry, or once after a 401, exactly once per session.

Refreshes are single-flight twice over: coroutines of one process share one in-flight task, and
processes share a per-session Redis lock. Whoever waits re-reads the session afterwards and reuses the
winner's tokens, because Shopify rotates refresh tokens and a second refresh with the old one would
fail with `invalid_grant`, logging the customer out. The write is a compare-and-set on the session's
generation, so even a lock that expired mid-call cannot let an old result overwrite a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from app.errors import (
    BFFError,
    InvalidClient,
    InvalidGrant,
    RefreshTimeout,
    SessionStoreUnavailable,
    TokenEndpointTimeout,
    TokenEndpointUnavailable,
    by_code,
)
from app.metrics import Metrics
from app.security import fingerprint
from app.shopify.credentials import Credentials
from app.shopify.oauth import ShopifyOAuth, TokenSet
from app.store.refresh_locks import RefreshLocks
from app.store.sessions import Session, SessionStore

log = logging.getLogger("bff.tokens")
RESCUE_SECONDS = 600


def refresh_due(session: Session, *, buffer: float, now: float) -> bool:
    """True when the access token is expired or within its refresh buffer.

    The buffer shrinks for short-lived tokens (a quarter of their lifetime at most), so a 60-second
    token is not refreshed on every request.
    """
    margin = min(buffer, session.access_lifetime / 4)
    return now >= session.access_expires_at - margin


def _peer_failure(code: str) -> BFFError:
    """The error a peer process's failed refresh ended with, recreated from its recorded code."""
    cls = by_code(code) or TokenEndpointUnavailable
    return cls("The token refresh failed; retry shortly.", headers={"Retry-After": "2"})


class TokenRefresher:
    """Keeps a session's access token fresh; see the module docstring for the concurrency rules."""

    def __init__(
        self,
        store: SessionStore,
        locks: RefreshLocks,
        oauth: ShopifyOAuth,
        credentials: Credentials,
        metrics: Metrics,
        *,
        buffer: float,
        call_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._locks = locks
        self._auth = oauth
        self._clock = clock
        self._credentials = credentials
        self._metrics = metrics
        self._buffer = buffer
        self._call_timeout = call_timeout
        self._lock_ttl = call_timeout + 5.0
        self._inflight: dict[str, asyncio.Future[Session]] = {}
        self._rescued: dict[tuple[str, str], tuple[Session, float]] = {}

    def due(self, session: Session) -> bool:
        """Whether `fresh` would refresh `session` now: the hot path awaits `fresh` only then."""
        return refresh_due(session, buffer=self._buffer, now=self._clock())

    async def fresh(self, session: Session) -> Session:
        """The session with a usable access token, refreshing first if it is due.

        An early refresh that fails for a passing reason is not the customer's problem while the current
        token still works: the request goes on with it, and a later one refreshes.
        """
        now = self._clock()
        if not refresh_due(session, buffer=self._buffer, now=now):
            return session
        try:
            return await self.refresh(session)
        except BFFError as exc:  # invalid_grant (401) always propagates: the session has ended
            if now < session.access_expires_at and exc.status >= 500:
                log.warning("early token refresh failed (%s); using the current token meanwhile", exc.code)
                return session
            raise

    async def refresh(self, session: Session) -> Session:
        """Replace `session.access_token` (seen as stale) with a new one, sharing work with peers."""
        key = f"{session.sid}:{session.access_token}"
        shared = self._inflight.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._refresh_across_processes(session))
            self._inflight[key] = shared
            shared.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Shielded: one caller's disconnect must not cancel the refresh the others wait on.
        return await asyncio.shield(shared)

    async def _refresh_across_processes(self, stale: Session) -> Session:
        tag = fingerprint(stale.access_token)[:16]
        deadline = time.monotonic() + self._lock_ttl + 2.0
        delay = 0.01
        while True:
            async with self._locks.hold(stale.sid, ttl=self._lock_ttl) as owned:
                if owned:
                    return await self._refresh_holding_lock(stale, tag)
            # Another process is refreshing: wait for it, then take its result.
            self._metrics.refresh_waits.inc()
            while await self._locks.held(stale.sid):
                if time.monotonic() > deadline:
                    raise RefreshTimeout("Timed out waiting for a token refresh.")
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.1)
            current = await self._store.peek(stale.sid)
            if current is None:
                raise InvalidGrant()
            if current.access_token != stale.access_token:
                return current
            failed = await self._locks.failure(stale.sid, tag)
            if failed is not None:
                raise _peer_failure(failed)

    async def _refresh_holding_lock(self, stale: Session, tag: str) -> Session:
        current = await self._store.peek(stale.sid)
        if current is None:
            raise InvalidGrant()
        if current.access_token != stale.access_token:
            return current  # a peer finished just before we took the lock
        key = (current.sid, current.refresh_token)
        if key in self._rescued:
            # Shopify already rotated this refresh token for us, but Redis missed the write: store
            # that result instead of presenting the dead token again (which would end the session).
            stored = await self._store_refreshed(replace(self._rescued[key][0], generation=current.generation))
            self._rescued.pop(key, None)
            return stored
        try:
            async with asyncio.timeout(self._call_timeout):
                tokens, credential_id = await self._call(current)
        except InvalidGrant:
            log.info("refresh token rejected (invalid_grant); ending session")
            self._metrics.refreshes.labels("invalid_grant").inc()
            self._metrics.sessions_ended.labels("invalid_grant").inc()
            await self._store.delete(stale.sid, sub=current.sub)
            raise
        except TimeoutError as exc:
            self._metrics.refreshes.labels("timeout").inc()
            await self._locks.record_failure(stale.sid, tag, TokenEndpointTimeout.code)
            raise TokenEndpointTimeout("Shopify's token endpoint timed out.") from exc
        except BFFError as exc:
            self._metrics.refreshes.labels(exc.code).inc()
            await self._locks.record_failure(stale.sid, tag, exc.code)
            raise
        self._metrics.refreshes.labels("ok").inc()
        updated = replace(
            current,
            access_token=tokens.access_token,
            access_expires_at=tokens.received_at + tokens.expires_in,
            access_lifetime=tokens.expires_in,
            # Shopify rotates refresh tokens; keep the old one only if none came back.
            refresh_token=tokens.refresh_token or current.refresh_token,
            credential=credential_id,
        )
        try:
            return await self._store_refreshed(updated)
        except SessionStoreUnavailable:
            self._rescue(current, updated)
            raise

    async def _store_refreshed(self, updated: Session) -> Session:
        stored = await self._store.replace_if_current(updated)
        if stored is None:
            # Logout (or a newer login) won the race; the new tokens are simply dropped.
            raise InvalidGrant()
        return stored

    def _rescue(self, current: Session, updated: Session) -> None:
        """Keep new tokens that Redis could not store, keyed by the refresh token they replace."""
        now = time.monotonic()
        self._rescued = {k: v for k, v in self._rescued.items() if now - v[1] < RESCUE_SECONDS}
        self._rescued[(current.sid, current.refresh_token)] = (updated, now)

    async def _call(self, session: Session) -> tuple[TokenSet, str]:
        """Refresh with the credential the tokens were issued to; after `invalid_client`, once with the other."""
        credential = self._credentials.for_session(session.credential)
        try:
            tokens = await self._auth.refresh(refresh_token=session.refresh_token, credential=credential)
        except InvalidClient:
            fallback = self._credentials.other_than(credential)
            if fallback is None:
                raise
            log.warning("Shopify refused a credential (invalid_client); retrying the refresh with the other one")
            credential = fallback
            tokens = await self._auth.refresh(refresh_token=session.refresh_token, credential=credential)
        if self._credentials.is_previous(credential):
            self._metrics.previous_credential.inc()
            log.warning(
                "the previous Shopify credential (client %s) is still in use; keep it until "
                "bff_previous_credential_uses_total stops moving",
                credential.client_id,
            )
        return tokens, credential.id
