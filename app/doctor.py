"""`python -m app doctor`: check the settings, Redis and the shop, and print what to register in the admin."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx

from app.config import ConfigError, Settings
from app.crypto import TokenCipher
from app.errors import BFFError, InvalidClient, InvalidGrant
from app.failures import Cause, cause_of, target_of
from app.shopify.credentials import Credentials
from app.shopify.discovery import Discovery
from app.shopify.http import auth_http_client, get_json
from app.shopify.oauth import ShopifyOAuth
from app.shops import Shops, in_file_terms, load_configuration
from app.store.connections import RedisConnections
from app.store.sessions import SessionStore

Printer = Callable[[str], None]

# What each kind of cause (failures.py) usually means, said after it.
_MEANINGS = {
    "dns": "the host name does not resolve",
    "refused": "nothing listens on that port",
    "unreachable": "no route to that host",
    "tls": "a plain port behind https:// or rediss://, or a certificate this machine does not trust",
    "timeout": "nothing answered in time: a firewall, or the wrong host",
}


def _explained(cause: Cause) -> str:
    """`cause`, with what it usually means: `connection refused (nothing listens on that port)`."""
    if cause.kind == "http" and cause.text == "HTTP 404":
        return f"{cause} (no discovery there: use the shop's *.myshopify.com domain)"
    meaning = _MEANINGS.get(cause.kind)
    return f"{cause} ({meaning})" if meaning else str(cause)


async def _check_redis(every_shop: Sequence[Settings], say: Printer) -> bool:
    settings = every_shop[0]  # the deployment's Redis, shared by every shop
    redis = RedisConnections(settings.redis_url, max_connections=2)
    where = redis.target
    prefix, each = settings.bff_redis_prefix, ""
    if settings.shop_id is not None:
        prefix = prefix.removesuffix(f"{settings.shop_id}:")  # shops.py puts each shop's id after it
        each = f", each shop's with {prefix}<shop id>:"
    try:
        await redis.client.ping()
        say(f"ok    Redis answers at {where}; this deployment's keys start with {prefix!r}{each}")
    except Exception as exc:
        say(f"FAIL  Redis at {where} does not answer: {_explained(cause_of(exc))}; check REDIS_URL")
        await redis.aclose()
        return False
    try:
        for shop in every_shop:
            await _count_session_keys(shop, redis, say)
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
        prefix=settings.bff_redis_prefix,  # this deployment's records, not another's on the same Redis
    )
    census = await store.key_census()
    total = census.primary + census.older + census.unlisted
    whose = f'shop "{settings.shop_id}": ' if settings.shop_id is not None else ""
    say = _after_status(say, whose)
    if census.older:
        say(
            f"wait  {census.older} of {total} session record(s) under an older token encryption key: keep it listed "
            "(each is rewritten under the first key when next used; docs/operations.md, runbooks b and c)"
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
            where = target_of(exc, settings.shop_origin)
            say(f"FAIL  the shop's discovery at {where} failed: {_explained(cause_of(exc))}; check SHOPIFY_SHOP_DOMAIN")
            return False
        say(f"ok    discovery at {settings.shop_origin}: issuer {endpoints.issuer}")
        say(f"ok    GraphQL endpoint {endpoints.graphql_url}")
        say(f"ok    {len(keys.keys)} ID-token signing key(s) at {endpoints.jwks_uri}")
        for line in _version_notes(settings.shopify_api_version, endpoints.advertised_api_version):
            say(line)
        ok = await _check_credentials(settings, http, discovery, say) and ok
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


PROBE_TOKEN = "doctor-probe-not-a-token"  # noqa: S105 (a made-up refresh token, refused by design)
MAX_VERSION_AGE_DAYS = 9 * 30  # versions are supported for 12 months: move on with a quarter to spare


def _version_notes(pinned: str, advertised: str | None, today: datetime.date | None = None) -> list[str]:
    """Warnings about SHOPIFY_API_VERSION: not what the shop advertises, or close to its end of support."""
    notes = []
    if advertised and advertised != pinned:
        notes.append(
            f"warn  SHOPIFY_API_VERSION is {pinned}; the shop advertises {advertised}. Test your queries against "
            f"{advertised} and move the pin when they pass"
        )
    if pinned == "unstable":
        notes.append("warn  SHOPIFY_API_VERSION=unstable changes without notice; pin a quarterly version")
        return notes
    released = datetime.date(int(pinned[:4]), int(pinned[5:7]), 1)
    age = ((today or datetime.date.today()) - released).days
    if age > MAX_VERSION_AGE_DAYS:
        notes.append(
            f"warn  SHOPIFY_API_VERSION {pinned} is {age // 30} months old; Shopify supports each version for "
            "12 months, so move to a newer one"
        )
    return notes


async def _check_credentials(settings: Settings, http: httpx.AsyncClient, discovery: Discovery, say: Printer) -> bool:
    """Present each configured credential to the token endpoint with a refresh token that cannot exist: a
    working credential gets `invalid_grant`, a refused one `invalid_client` (and no customer is involved)."""
    oauth = ShopifyOAuth(http, discovery, redirect_uri=settings.redirect_uri, scopes=settings.shopify_scopes)
    credentials = Credentials.from_settings(settings)
    ok = True
    for credential in filter(None, (credentials.current, credentials.other_than(credentials.current))):
        name = "SHOPIFY_PREVIOUS_CLIENT_SECRET" if credentials.is_previous(credential) else "SHOPIFY_CLIENT_SECRET"
        try:
            await oauth.refresh(refresh_token=PROBE_TOKEN, credential=credential)
        except InvalidGrant:
            say(f"ok    Shopify accepts {name} for client {credential.client_id}")
            continue
        except InvalidClient as exc:
            say(f"FAIL  Shopify refuses {name} for client {credential.client_id} ({exc.reason}); check it")
            ok = False
            continue
        except BFFError as exc:
            say(f"note  could not check {name} at the token endpoint ({exc.code})")
            continue
        say(f"note  the token endpoint accepted a made-up refresh token for {name}; is this a real shop?")
    if settings.shopify_pkce:
        say(
            "note  SHOPIFY_PKCE is on. Shopify documents PKCE for public clients only: if the first login ends "
            "with login_error=token_endpoint_error and the log says the code exchange was rejected (HTTP 400), "
            "set SHOPIFY_PKCE=false"
        )
    return ok


def _domain_notes(settings: Settings) -> list[str]:
    host = urlsplit(settings.shop_origin).hostname or ""
    if host.endswith(".myshopify.com") or settings.shop_origin.startswith("http://"):
        return []
    return [
        f"note  SHOPIFY_SHOP_DOMAIN is {host}; the shop's *.myshopify.com domain is the safe choice (a custom "
        "domain may redirect elsewhere, or move its account pages)"
    ]


async def run_doctor(say: Printer = print) -> int:
    """Print one line per check (for every shop of a BFF_SHOPS_FILE); return the process exit code."""
    # Everything doctor finds it says itself, once; the services' own warning lines would repeat it.
    logging.getLogger("bff").setLevel(logging.CRITICAL)
    try:
        configuration = load_configuration()
    except ConfigError as exc:
        say(f"FAIL  {exc}")
        return 1
    every_shop = configuration.settings if isinstance(configuration, Shops) else (configuration,)
    deployment = every_shop[0]
    loaded = f" ({len(every_shop)} shops from {configuration.source})" if isinstance(configuration, Shops) else ""
    say("ok    settings load" + loaded + (" (development mode)" if deployment.bff_dev_mode else ""))
    redis_ok = await _check_redis(every_shop, say)
    ok = redis_ok
    for settings in every_shop:
        shop_say = say
        if settings.shop_id is not None:
            say("")
            say(f'Shop "{settings.shop_id}" ({settings.public_url}):')
            # A shop's settings are keys of its table: the variables the checks name are refused beside the file.
            shop_say = _in_file_terms(say)
        for line in _domain_notes(settings):
            shop_say(line)
        ok = await _check_shop(settings, shop_say) and ok
        shop_say("")
        shop_say("Register these in the Shopify admin (Customer Account API → Application setup):")
        shop_say(f"  Callback URI:      {settings.redirect_uri}")
        shop_say(f"  Logout URI:        {settings.bff_post_logout_redirect_url}")
        shop_say("  JavaScript origin: none needed: a confidential client's browser never calls Shopify directly")
        shop_say(f"  Client type:       Confidential, client ID {settings.shopify_client_id}")
        if settings.bff_allowed_origins:
            shop_say(
                f"Storefront origins this BFF answers (CORS, return_to): {', '.join(settings.bff_allowed_origins)}"
            )
    return 0 if ok else 1


def _in_file_terms(say: Printer) -> Printer:
    return lambda line: say(in_file_terms(line))


def _after_status(say: Printer, text: str) -> Printer:
    """`say`, with `text` put after each line's six-column status (`ok    `, `FAIL  `)."""
    return (lambda line: say(line[:6] + text + line[6:])) if text else say
