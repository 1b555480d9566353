"""The BFF under test: its environment, and logged-in sessions stored through the project's own wiring."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import string
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import httpx
from redis.asyncio import Redis

from app.config import Settings, load_settings
from app.cookies import CookieJar
from app.deps import Services
from app.main import build_services
from app.metrics import Metrics
from app.shopify.graphql import CustomerAccountAPI
from app.store.connections import RedisConnections
from app.store.sessions import Session, new_session_id

CLIENT_ID = "bench-client-id"
CLIENT_SECRET = "bench-client-secret-" + secrets.token_hex(16)
GRAPHQL_BODY = '{"query":"query { customer { id firstName } }"}'
# The per-session /graphql and per-IP login limits stay on (their Redis work is part of the cost), just
# far above what a benchmark sends from one session and one address.
RATE_LIMITS = {
    "BFF_RATE_LIMIT_GRAPHQL": "1000000/minute",
    "BFF_RATE_LIMIT_GRAPHQL_CUSTOMER": "1000000/minute",
    "BFF_RATE_LIMIT_LOGIN": "1000000/minute",
}
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class BffConfig:
    """One BFF instance: where it listens, which shop it talks to, which Redis it uses."""

    port: int
    shop_origin: str
    redis_url: str
    session_secret: str

    def env(self) -> dict[str, str]:
        return {
            "SHOPIFY_SHOP_DOMAIN": self.shop_origin,
            "SHOPIFY_CLIENT_ID": CLIENT_ID,
            "SHOPIFY_CLIENT_SECRET": CLIENT_SECRET,
            "SHOPIFY_API_VERSION": "2026-10",
            "BFF_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "BFF_ALLOWED_ORIGINS": "http://localhost:3000",
            "BFF_POST_LOGOUT_REDIRECT_URL": "http://localhost:3000/",
            "BFF_SESSION_SECRET": self.session_secret,
            "REDIS_URL": self.redis_url,
            "BFF_LOG_LEVEL": "warning",
            # Every request reads Redis: the cache (on by default for redis://) is its own target, "BFF, cache on".
            "BFF_SESSION_CACHE": "off",
            "BFF_METRICS_LISTENER": "off",  # several BFFs at once: no one port for all of them
            **RATE_LIMITS,
        }

    def settings(self) -> Settings:
        """The same settings the child process builds from `env()`."""
        return load_settings(**{name.lower(): value for name, value in self.env().items()})


def new_config(port: int, shop_origin: str, redis_url: str) -> BffConfig:
    # Hex: random, 48 characters, and never contains a placeholder word that Settings would refuse.
    return BffConfig(port, shop_origin, redis_url, secrets.token_hex(24))


@asynccontextmanager
async def bff_services(settings: Settings, redis_url: str) -> AsyncIterator[tuple[Services, Redis]]:
    """The services exactly as the running BFF builds them (`app.main.build_services`) on `redis_url`,
    and a plain Redis client on the same database for measuring."""
    redis = RedisConnections(redis_url, max_connections=8)
    metrics = Metrics()
    graphql = CustomerAccountAPI(user_agent="bench", connect_timeout=1, read_timeout=5, metrics=metrics)
    try:
        async with httpx.AsyncClient() as http, graphql:
            yield build_services(settings, redis, http, graphql, metrics), redis.client
    finally:
        await redis.aclose()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(43))


def fake_id_token(sub: str, email: str) -> str:
    """An RS256-shaped ID token of realistic size (~900 bytes); stored, never verified."""
    header = {"alg": "RS256", "kid": secrets.token_hex(8), "typ": "JWT"}
    now = int(time.time())
    claims = {
        "iss": "https://shopify.com/authentication/1234567890",
        "sub": sub,
        "aud": "shp_" + secrets.token_hex(16),
        "exp": now + 3600,
        "iat": now,
        "nonce": secrets.token_urlsafe(32),
        "sid": secrets.token_hex(16),
        "email": email,
        "email_verified": True,
    }
    signature = secrets.token_bytes(256)  # a 2048-bit RSA signature
    return ".".join(_b64(json.dumps(part).encode()) for part in (header, claims)) + "." + _b64(signature)


def fake_session(*, access_lifetime: float = 86400) -> Session:
    """A session as a real login stores it (app/routes/auth.py `_open_session`): Shopify-shaped tokens, the
    customer id fetched at login (so the id is tagged by it, and the customer-id index exists too), the
    device summary, and a far-future access expiry."""
    customer = secrets.randbelow(10**13)
    sub = f"gid://shopify/Customer/{customer}"
    customer_id = sub  # what the login's `customer { id }` answers
    email = f"customer{customer}@example.com"
    now = time.time()
    values: dict[str, Any] = {
        "sid": new_session_id(sub, customer_id),
        "sub": sub,
        "customer_id": customer_id,
        "user_agent": "Chrome on Mac OS X",
        "claims": {"sub": sub, "email": email, "email_verified": True},
        "access_token": _token("shcat_"),
        "access_expires_at": now + 10 * 365 * 86400,
        "access_lifetime": access_lifetime,
        "refresh_token": _token("shcrt_"),
        "id_token": fake_id_token(sub, email),
        "created_at": now,
        # Which credential issued the tokens: a client id in older versions of Session, a 16-hex id in newer.
        "client_id": CLIENT_ID,
        "credential": secrets.token_hex(8),
    }
    return Session(**{f.name: values[f.name] for f in dataclasses.fields(Session) if f.name in values})


def session_cookie(settings: Settings, sid: str) -> str:
    """`name=value` of the signed session cookie, exactly as the BFF's CookieJar writes it."""
    jar = CookieJar.from_settings(settings)
    _, header = jar.set_session(sid)
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(header.decode())
    (morsel,) = cookie.values()
    return f"{morsel.key}={morsel.value}"
