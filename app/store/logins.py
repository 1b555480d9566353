"""Pending logins: what /auth/login must remember until /auth/callback, single-use and short-lived.

  bff:login:{state}   string  encrypted PendingLogin, 10 minutes, consumed with GETDEL  (bff: is BFF_REDIS_PREFIX)

The record is encrypted with the state as associated data, so the verifier and nonce never sit in Redis
in the clear, and a replayed state finds nothing.
"""

from __future__ import annotations

import json
from dataclasses import astuple, dataclass
from typing import Any

from app.crypto import TokenCipher
from app.store.connections import RedisConnections, guarded

PENDING_LOGIN_TTL = 600
# One command each, as scripts so they run on the pipelined connection where it applies (connections.py):
# every login writes one record and every callback takes one.
_SAVE = "return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])"
_TAKE = "return redis.call('GETDEL', KEYS[1])"


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
        self._save: Any = redis.hot_script(_SAVE)
        self._take: Any = redis.hot_script(_TAKE)
        self._cipher = cipher
        self._prefix = f"{prefix}login:"

    async def save(self, login: PendingLogin) -> None:
        # A list, not an object: no field names in every record (pending logins are what a flood makes).
        fields = astuple(login)[1:]  # the state is the key already
        blob = self._cipher.encrypt(json.dumps(fields, separators=(",", ":")).encode(), login.state.encode())
        await guarded(self._save(keys=[f"{self._prefix}{login.state}"], args=[blob, PENDING_LOGIN_TTL]))

    async def take(self, state: str) -> PendingLogin | None:
        """Consume a pending login atomically: a replayed state finds nothing."""
        blob = await guarded(self._take(keys=[f"{self._prefix}{state}"], args=[]))
        plain = self._cipher.decrypt(blob, state.encode()) if isinstance(blob, bytes) else None
        if not plain:
            return None
        fields = json.loads(plain)
        if isinstance(fields, dict):  # written by a BFF before this record format, up to 10 minutes ago
            return PendingLogin(**fields)
        return PendingLogin(state, *fields)
