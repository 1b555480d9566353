"""Pending logins: what /auth/login must remember until /auth/callback, single-use and short-lived.

  bff:login:{state}   string  encrypted PendingLogin, 10 minutes, consumed with GETDEL

The record is encrypted with the state as associated data, so the verifier and nonce never sit in Redis
in the clear, and a replayed state finds nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

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


class PendingLogins:
    """Saves a pending login under its state and hands it out exactly once."""

    def __init__(self, redis: RedisConnections, cipher: TokenCipher) -> None:
        self._redis = redis.client
        self._cipher = cipher

    async def save(self, login: PendingLogin) -> None:
        blob = self._cipher.encrypt(json.dumps(asdict(login)).encode(), login.state.encode())
        await guarded(self._redis.set(f"bff:login:{login.state}", blob, ex=PENDING_LOGIN_TTL))

    async def take(self, state: str) -> PendingLogin | None:
        """Consume a pending login atomically: a replayed state finds nothing."""
        blob = await guarded(self._redis.getdel(f"bff:login:{state}"))
        plain = self._cipher.decrypt(blob, state.encode()) if isinstance(blob, bytes) else None
        return PendingLogin(**json.loads(plain)) if plain else None
