"""Tokens at rest: AES-256-GCM with rotating keys, the session id bound as associated data.

A blob is `key id (4 bytes) || nonce (12) || ciphertext+tag`. The key id picks the key directly, so
decryption never tries keys in turn; the first key encrypts, every listed key decrypts.
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


def derive_key(secret: str) -> bytes:
    """An AES key from a session secret, so a minimal setup still encrypts (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"customer-account-bff", info=b"tokens-at-rest-v1")
    return hkdf.derive(secret.encode())


class TokenCipher:
    """Encrypts session records for Redis; `decrypt` returns None for anything it cannot open."""

    def __init__(self, keys: tuple[bytes, ...] | list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._primary = (hashlib.sha256(keys[0]).digest()[:_KID], AESGCM(keys[0]))
        self._by_kid = {hashlib.sha256(k).digest()[:_KID]: AESGCM(k) for k in keys}

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        kid, aead = self._primary
        nonce = os.urandom(_NONCE)
        return kid + nonce + aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, blob: bytes, associated_data: bytes) -> bytes | None:
        aead = self._by_kid.get(blob[:_KID])
        if aead is None:
            return None
        try:
            return aead.decrypt(blob[_KID : _KID + _NONCE], blob[_KID + _NONCE :], associated_data)
        except InvalidTag:
            return None
