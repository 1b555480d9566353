"""Tokens at rest: AES-256-GCM with rotating keys, the session id bound as associated data.

A blob is `key id (4 bytes) || nonce (12) || ciphertext+tag`. The key id picks the key directly, so
decryption never tries keys in turn; the first key encrypts, every listed key decrypts. The key id also
tells, without decrypting, whether a blob is under the first key (`is_primary`): the session store rewrites
records that are not, so a rotated-out key can be dropped once nothing is left under it.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE = 12
_KID = 4
_TAG = 16


def derive_key(secret: str) -> bytes:
    """An AES key from a session secret, so a minimal setup still encrypts (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"customer-account-bff", info=b"tokens-at-rest-v1")
    return hkdf.derive(secret.encode())


def shop_key(key: bytes, purpose: str, shop_id: str) -> bytes:
    """One shop's own key for `purpose` ("cookies", "tokens"), from a deployment key (HKDF-SHA256): shops
    share no key, and a deployment key's rotation rotates every shop's (shops.py)."""
    info = f"shop-{purpose}-v1:{shop_id}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"customer-account-bff", info=info).derive(key)


class TokenCipher:
    """Encrypts session records for Redis; `decrypt` returns None for anything it cannot open."""

    def __init__(self, keys: tuple[bytes, ...] | list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._kids = [hashlib.sha256(k).digest()[:_KID] for k in keys]
        self._primary = (self._kids[0], AESGCM(keys[0]))
        self._by_kid = {kid: AESGCM(k) for kid, k in zip(self._kids, keys, strict=True)}

    def is_primary(self, blob: bytes) -> bool:
        """Whether `blob` names the first key (a 4-byte comparison, no decryption)."""
        return blob[:_KID] == self._primary[0]

    def key_position(self, blob: bytes) -> int | None:
        """Which listed key `blob` names (0 = the first), or None for a key no longer listed."""
        kid = blob[:_KID]
        return self._kids.index(kid) if len(kid) == _KID and kid in self._kids else None

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        kid, aead = self._primary
        nonce = os.urandom(_NONCE)
        return kid + nonce + aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes | None:
        aead = self._by_kid.get(blob[:_KID])
        if aead is None or len(blob) < _KID + _NONCE + _TAG:  # cut short: AESGCM would raise, not refuse
            return None
        try:
            return aead.decrypt(blob[_KID : _KID + _NONCE], blob[_KID + _NONCE :], associated_data)
        except InvalidTag:
            return None
