"""`python -m app doctor`: check the settings, Redis and the shop, and print what to register in the admin."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.config import ConfigError, Settings, load_settings
from app.crypto import TokenCipher
from app.errors import BFFError
from app.shopify.discovery import Discovery
from app.shopify.http import auth_http_client, get_json
from app.store.connections import RedisConnections
from app.store.sessions import SessionStore
from app.urls import redacted

Printer = Callable[[str], None]


async def _check_redis(settings: Settings, say: Printer) -> bool:
    redis = RedisConnections(settings.redis_url, max_connections=2)
    where = redacted(settings.redis_url)
    try:
        await redis.client.ping()
        say(f"ok    Redis answers at {where}")
    except Exception as exc:
        say(f"FAIL  Redis at {where} does not answer ({type(exc).__name__}); check REDIS_URL")
        return False
    try:
        await _count_session_keys(settings, redis, say)
        return True
    except Exception as exc:
        say(f"FAIL  could not count the session records ({type(exc).__name__})")
        return False
    finally:
        await redis.aclose()


async def _count_session_keys(settings: Settings, redis: RedisConnections, say: Printer) -> None:
    """Which token encryption key the session records are under: an older key can go once none is left."""
    store = SessionStore(
        redis,
        TokenCipher(settings.token_keys),
        idle_timeout=settings.bff_session_idle_timeout,
        absolute_lifetime=settings.bff_session_absolute_lifetime,
    )
    census = await store.key_census()
    total = census.primary + census.older + census.unlisted
    if census.older:
        say(
            f"wait  {census.older} of {total} session record(s) under an older token encryption key: keep it listed "
            "(each is rewritten under the first key when next used; README runbooks b and c)"
        )
    else:
        say(f"ok    {total} session record(s), none under an older token encryption key")
    if census.unlisted:
        say(f"note  {census.unlisted} session record(s) under no listed key: unreadable, those customers sign in again")


async def _check_shop(settings: Settings, say: Printer) -> bool:
    ok = True
    async with auth_http_client(user_agent=settings.bff_user_agent, connect_timeout=10, read_timeout=10) as http:
        discovery = Discovery.from_settings(http, settings)
        try:
            endpoints = await discovery.endpoints()
            keys = await discovery.keys()
        except BFFError as exc:
            say(f"FAIL  {exc.detail} Is SHOPIFY_SHOP_DOMAIN ({settings.shop_origin}) the storefront domain?")
            return False
        say(f"ok    discovery at {settings.shop_origin}: issuer {endpoints.issuer}")
        say(f"ok    GraphQL endpoint {endpoints.graphql_url}")
        say(f"ok    {len(keys.keys)} ID-token signing key(s) at {endpoints.jwks_uri}")
        oidc = await get_json(http, f"{settings.shop_origin}/.well-known/openid-configuration", "OpenID configuration")
        methods = oidc.get("token_endpoint_auth_methods_supported") or []
        if methods and "client_secret_basic" not in methods:
            say("FAIL  the shop does not accept client_secret_basic at its token endpoint")
            ok = False
        supported = set(oidc.get("scopes_supported") or [])
        missing = [s for s in settings.shopify_scopes.split() if supported and s not in supported]
        if missing:
            say(f"FAIL  SHOPIFY_SCOPES asks for scopes the shop does not offer: {' '.join(missing)}")
            ok = False
    return ok


async def run_doctor(say: Printer = print) -> int:
    """Print one line per check; return the process exit code."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        say(f"FAIL  {exc}")
        return 1
    say("ok    settings load" + (" (development mode)" if settings.bff_dev_mode else ""))
    redis_ok, shop_ok = await asyncio.gather(_check_redis(settings, say), _check_shop(settings, say))
    say("")
    say("Register these in the Shopify admin (Customer Account API → Application setup):")
    say(f"  Callback URI:      {settings.redirect_uri}")
    say(f"  Logout URI:        {settings.bff_post_logout_redirect_url}")
    say("  JavaScript origin: none needed: a confidential client's browser never calls Shopify directly")
    say(f"  Client type:       Confidential, client ID {settings.shopify_client_id}")
    if settings.bff_allowed_origins:
        say(f"Storefront origins this BFF answers (CORS, return_to): {', '.join(settings.bff_allowed_origins)}")
    return 0 if redis_ok and shop_ok else 1
