"""RS256 signing keys: the published JWKS, the current signing key, and ID token signing and checking."""

from __future__ import annotations

import secrets
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey


def _new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


def _new_kid() -> str:
    return secrets.token_hex(8)


class KeyRing:
    """The stand-in's keys: the newest signs, older ones stay published until dropped."""

    def __init__(self, initial: RSAKey | None = None) -> None:
        self._keys: list[RSAKey] = [initial or _new_key(_new_kid())]

    @staticmethod
    def generate_key() -> RSAKey:
        """A fresh 2048-bit RS256 signing key with a random kid (for callers that share one across apps)."""
        return _new_key(_new_kid())

    @property
    def current(self) -> RSAKey:
        """The key that signs new ID tokens."""
        return self._keys[-1]

    def rotate(self, *, drop_old: bool = False) -> str:
        """Make a new key the signing key and return its kid."""
        key = _new_key(_new_kid())
        self._keys = [key] if drop_old else [*self._keys, key]
        return str(key.kid)

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document."""
        return dict(KeySet(list(self._keys)).as_dict(private=False))

    def sign(self, claims: dict[str, Any], *, tamper: str | None = None) -> str:
        """Sign claims as an RS256 JWT; `tamper` picks a broken signature ("bad_signature", "unknown_kid")."""
        key = self.current
        kid = str(key.kid)
        if tamper == "bad_signature":
            # Announces the published kid but is signed by a key that is never published.
            key = _new_key(kid)
        elif tamper == "unknown_kid":
            kid = _new_kid()
            key = _new_key(kid)
        return jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, key, algorithms=["RS256"])

    def verify(self, token: str) -> dict[str, Any] | None:
        """Claims of a token signed by a published key, or None; expiry is not checked here."""
        try:
            decoded = jwt.decode(token, KeySet(list(self._keys)), algorithms=["RS256"])
        except (JoseError, ValueError):
            return None
        return dict(decoded.claims)
