"""ID token verification: RS256 against the shop's JWKS, then iss, aud, exp, iat and nonce."""

from __future__ import annotations

import hmac
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from app.errors import InvalidIdToken
from app.shopify.discovery import Discovery

CLOCK_LEEWAY = 60


def _unknown_kid(token: str, keys: KeySet) -> bool:
    from joserfc.jws import extract_compact

    try:
        kid = extract_compact(token.encode()).headers().get("kid")
    except JoseError:
        return False
    return kid is not None and all(k.kid != kid for k in keys.keys)


async def verify_id_token(
    token: str, *, discovery: Discovery, issuer: str, client_id: str, nonce: str
) -> dict[str, Any]:
    """Return the verified claims, or raise a 400 `invalid_id_token` saying which check failed."""
    keys = await discovery.keys()
    if _unknown_kid(token, keys):
        # The shop rotated its signing key since we cached the JWKS: refetch exactly once.
        keys = await discovery.keys(refetch=True)
    try:
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
    except BadSignatureError as exc:
        raise InvalidIdToken("The ID token's signature does not verify against the shop's keys.") from exc
    except (JoseError, ValueError) as exc:
        raise InvalidIdToken("The ID token is malformed or signed with an unknown key.") from exc

    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise InvalidIdToken("The ID token has expired.") from exc
    except (InvalidClaimError, MissingClaimError) as exc:
        raise InvalidIdToken(f"The ID token's claims are wrong: {exc.description}") from exc
    except JoseError as exc:
        raise InvalidIdToken("The ID token's claims are invalid.") from exc
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise InvalidIdToken("The ID token's nonce does not match this login.")
    return claims
