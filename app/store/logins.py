"""Pending logins: what /auth/login must remember until /auth/callback, single-use and short-lived.

  bff:login:{state}   string  encrypted PendingLogin, 10 minutes, consumed with GETDEL  (bff: is BFF_REDIS_PREFIX)

The record is encrypted with the state as associated data, so the verifier and nonce never sit in Redis
in the clear, and a replayed state finds nothing.
"""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass

from app.crypto import TokenCipher
from app.store.connections import RedisConnections, guarded

PENDING_LOGIN_TTL = 600


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """State kept between /auth/login and /auth/callback."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str
    browser: str  # sha256 of the login-binding cookie's id
    created_at: float
    recovery: bool = False  # a restart after a lost binding (routes/auth.py): it is not restarted again


class PendingLogins:
    """Saves a pending login under its state and hands it out exactly once."""

    def __init__(self, redis: RedisConnections, cipher: TokenCipher, *, prefix: str) -> None:
        """`prefix` starts every key (BFF_REDIS_PREFIX)."""
        self._redis = redis.client
        self._cipher = cipher
        self._prefix = f"{prefix}login:"

    async def save(self, login: PendingLogin) -> None:
        # A list, not an object: no field names in every record (pending logins are what a flood makes).
        fields = astuple(login)[1:]  # the state is the key already
        blob = self._cipher.encrypt(json.dumps(fields, separators=(",", ":")).encode(), login.state.encode())
        await guarded(self._redis.set(f"{self._prefix}{login.state}", blob, ex=PENDING_LOGIN_TTL))

    async def take(self, state: str) -> PendingLogin | None:
        """Consume a pending login atomically: a replayed state finds nothing."""
        blob = await guarded(self._redis.getdel(f"{self._prefix}{state}"))
        plain = self._cipher.decrypt(blob, state.encode()) if isinstance(blob, bytes) else None
        if not plain:
            return None
        fields = json.loads(plain)
        if isinstance(fields, dict):  # written by a BFF before this record format, up to 10 minutes ago
            return PendingLogin(**fields)
        return PendingLogin(state, *fields)
