"""Settings: one frozen object built at startup from the environment and `.env`."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections import Counter
from itertools import pairwise
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.crypto import derive_key
from app.rates import Rate, SessionRates
from app.store import DEFAULT_PREFIX
from app.urls import Origin, is_loopback

# Words of a placeholder, long enough not to turn up by chance in a random secret (a run of x is caught
# by the entropy and repetition checks instead).
PLACEHOLDERS = ("changeme", "changethis", "replace-me", "secret", "placeholder", "example")
API_VERSION = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
REDIS_PREFIX = re.compile(r"[!-~]{1,32}")
REDIS_PREFIX_REFUSED = frozenset("{}*?[]\\")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """Raised at startup when a setting is missing or unsafe; the message names the variable."""


def _check_web_url(name: str, url: str, *, dev_mode: bool, origin_only: bool = False) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {url!r}")
    if parts.scheme == "http" and not (dev_mode or is_loopback(parts.hostname)):
        raise ValueError(f"{name} must use https (http is allowed only for localhost/127.0.0.1/::1): {url!r}")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{name} must not carry credentials or a fragment: {url!r}")
    if origin_only and (parts.path not in {"", "/"} or parts.query):
        raise ValueError(f"{name} entries must be bare origins like https://shop.example.com, got {url!r}")
    return url


MIN_SECRET_BITS = 80


def _estimated_bits(value: str) -> float:
    """Shannon entropy of the characters times the length: an upper bound on a secret's strength that is
    low for anything typed by hand (`abcdefgh` four times scores 96) and about 4 bits a character for hex."""
    counts = Counter(value)
    return -sum(n * math.log2(n / len(value)) for n in counts.values())


def _period(value: str) -> int:
    """The length of the shortest block that `value` repeats (its own length if none)."""
    for size in range(1, len(value) // 2 + 1):
        if value == (value[:size] * (len(value) // size + 1))[: len(value)]:
            return size
    return len(value)


def _looks_weak(value: str) -> bool:
    steps = sum(abs(ord(a) - ord(b)) == 1 for a, b in pairwise(value))
    return (
        any(p in value.lower() for p in PLACEHOLDERS)
        or len(set(value)) < 8
        or _period(value) <= len(value) // 2
        or steps * 2 >= len(value)  # mostly a run like abcdef or 123456
        or _estimated_bits(value) < MIN_SECRET_BITS
    )


def _check_secret(name: str, value: str, *, dev_mode: bool, min_length: int = 32) -> None:
    if dev_mode:
        return
    if len(value) < min_length:
        raise ValueError(f"{name} must be at least {min_length} characters (use `openssl rand -hex 32`)")
    if _looks_weak(value):
        raise ValueError(f"{name} looks guessable; generate a random value (`openssl rand -hex 32`)")


def _shop_origin(raw: str) -> Origin:
    raw = raw.strip().rstrip("/")
    if "://" not in raw:
        if not re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}", raw):
            raise ValueError(f"SHOPIFY_SHOP_DOMAIN must be a domain like example.myshopify.com, got {raw!r}")
        return Origin(f"https://{raw.lower()}")
    parts = urlsplit(raw)
    if (
        parts.path == ""
        and parts.hostname
        and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)))
    ):
        return Origin.of(raw)
    raise ValueError(
        "SHOPIFY_SHOP_DOMAIN must be a bare domain (https implied); an http://host:port origin is "
        f"accepted only for a loopback stand-in, got {raw!r}"
    )


def _encryption_keys(raw: str) -> tuple[bytes, ...]:
    keys = []
    for item in raw.split(","):
        try:
            key = base64.urlsafe_b64decode(item.strip() + "=" * (-len(item.strip()) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ValueError(
                "BFF_TOKEN_ENCRYPTION_KEYS must be comma-separated base64url 32-byte keys "
                "(python -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
            )
        # 32 random bytes hold about 30 distinct values; a zero, constant or patterned key holds few.
        if len(set(key)) < 16:
            raise ValueError("BFF_TOKEN_ENCRYPTION_KEYS holds a key that is not random (all zeros or a pattern)")
        keys.append(key)
    return tuple(keys)


def _check_credential(name: str, value: str) -> None:
    # HTTP Basic client authentication: RFC 6749 wants both values form-urlencoded first, Shopify's
    # docs show them plain, and authlib has done both across versions. For these characters all
    # three agree, so the header cannot depend on which one is right.
    if not re.fullmatch(r"[A-Za-z0-9._~-]+", value):
        raise ValueError(f"{name} may only contain letters, digits and . _ ~ - (as Shopify issues them)")


def _metrics_address(listener: str) -> tuple[str, int] | None:
    if listener in {"public", "off"}:
        return None
    host, _, port = listener.rpartition(":")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"BFF_METRICS_LISTENER's port must be 1 to 65535, got {port}")
    return host.strip("[]"), int(port)


def _rate(name: str, value: str) -> Rate:
    try:
        return Rate.parse(value)
    except ValueError:
        raise ValueError(f"{name} must look like `30/minute` or `5/second`, got {value!r}") from None


def _invalidations_trusted(redis_url: str) -> bool:
    """Whether the session cache can trust Redis to tell it of every change to a session (BFF_SESSION_CACHE)."""
    # Invalidations are per node: on Cluster a key's node may change (and a replica's copy lags), Sentinel
    # fails over to a server that never tracked this process, and the cache's own raw connections speak
    # neither TLS (rediss://) nor unix sockets. Only a standalone server on redis:// tells it every change.
    return urlsplit(redis_url).scheme == "redis"


class Settings(BaseSettings):
    """Every setting of the BFF. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, case_sensitive=False, env_ignore_empty=True
    )

    shopify_shop_domain: str
    shopify_client_id: str = Field(min_length=1)
    shopify_client_secret: SecretStr
    shopify_previous_client_id: str | None = None
    shopify_previous_client_secret: SecretStr | None = None
    shopify_scopes: str = "openid email customer-account-api:full"
    shopify_api_version: str = "2026-10"
    # Shopify documents PKCE for public clients; whether a confidential client may send it is unconfirmed.
    shopify_pkce: bool = True
    # A private Storefront API token: enables the cart endpoints (logged-in checkout).
    shopify_storefront_token: SecretStr | None = None
    shopify_storefront_api_version: str | None = None  # default: SHOPIFY_API_VERSION
    # The app's webhook signing secret(s), newest first: enables POST /webhooks/shopify.
    shopify_webhook_secret: SecretStr | None = None

    bff_public_url: str
    bff_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    bff_post_logout_redirect_url: str
    bff_session_secret: SecretStr
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", repr=False)  # may carry a password

    bff_dev_mode: bool = False
    bff_session_idle_timeout: int = Field(default=7 * 24 * 3600, ge=60)
    bff_session_absolute_lifetime: int = Field(default=30 * 24 * 3600, ge=60)
    bff_discovery_ttl: int = Field(default=3600, ge=0)
    bff_refresh_buffer: int = Field(default=120, ge=0)
    bff_graphql_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    bff_upstream_connect_timeout: float = Field(default=5.0, gt=0)
    bff_upstream_read_timeout: float = Field(default=20.0, gt=0)
    bff_user_agent: str = "customer-account-bff/0.1"
    # Whole-exchange deadlines: a client that trickles its body, or an upstream that drip-feeds its
    # answer, cannot hold a worker longer than these (per-read timeouts alone do not bound either).
    bff_body_read_timeout: float = Field(default=10.0, gt=0)
    bff_upstream_total_timeout: float = Field(default=30.0, gt=0)
    # uvicorn's own limits for `python -m app serve`: connections served at once, idle keep-alive seconds.
    bff_max_connections: int = Field(default=1000, ge=1)
    bff_keepalive_timeout: int = Field(default=5, ge=1)
    # Pending logins (10 minutes each) kept at once, across every client: past it, new logins get a 503.
    bff_max_pending_logins: int = Field(default=100_000, ge=10)
    bff_token_encryption_keys: SecretStr | None = None
    bff_rate_limit_login: str = "30/minute"
    bff_rate_limit_graphql: str = "300/minute"
    # Every session of one customer together; below Shopify's own 3,000/minute per store and customer.
    bff_rate_limit_graphql_customer: str = "1200/minute"
    bff_trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    # Hosts besides Shopify's and the shop's own that discovered endpoints may name (shopify/discovery.py).
    bff_discovery_extra_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    bff_graphql_allowlist: str | None = None
    bff_graphql_max_depth: int = Field(default=15, ge=0)
    # Bounds on the BFF's own work on a document (allowlist hash, depth), checked before parsing ends.
    bff_graphql_max_tokens: int = Field(default=2000, ge=50)
    bff_graphql_max_inspect_bytes: int = Field(default=16 * 1024, ge=1024)
    # Loopback by default: metrics tell how the service is used, which is nobody's business on the internet.
    bff_metrics_listener: str = Field(default="127.0.0.1:9464", pattern=r"^(public|off|[\w.\-\[\]:]+:\d{1,5})$")
    bff_log_level: Literal["debug", "info", "warning", "error"] = "info"
    bff_log_format: Literal["json", "console"] = "json"
    bff_redis_max_connections: int = Field(default=200, ge=2)
    # The start of every Redis key: deployments sharing one Redis (staging and production, `make dev`) with
    # different prefixes share nothing. The default is what keys were called before the setting existed.
    bff_redis_prefix: str = DEFAULT_PREFIX
    # Decoded sessions kept in process, kept current by Redis's invalidations (store/session_cache.py).
    # auto: on wherever those invalidations can be trusted (a plain redis:// REDIS_URL), off elsewhere.
    bff_session_cache: Literal["auto", "on", "off"] = "auto"
    # A TOML file listing several shops (shops.py); unset: the SHOPIFY_* variables above describe the one shop.
    bff_shops_file: str | None = None

    # Parsed once, by `_parse` below, into the typed values the app uses; read through the properties.
    _shop_origin: Origin = PrivateAttr()
    _allowed_origins: tuple[Origin, ...] = PrivateAttr()
    _trusted_origins: frozenset[Origin] = PrivateAttr()
    _session_keys: tuple[bytes, ...] = PrivateAttr()
    _token_keys: tuple[bytes, ...] = PrivateAttr()
    _trusted_proxies: tuple[IPNetwork, ...] = PrivateAttr()
    _login_rate: Rate = PrivateAttr()
    _graphql_rates: SessionRates = PrivateAttr()
    _metrics_address: tuple[str, int] | None = PrivateAttr()
    # Set by shops.py for each shop of a BFF_SHOPS_FILE, with the shop's own keys and Redis prefix.
    _shop_id: str | None = PrivateAttr(default=None)

    @field_validator("bff_allowed_origins", "bff_trusted_proxies", "bff_discovery_extra_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        schemes = ("redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster", "unix")
        if urlsplit(value).scheme not in schemes:
            raise ValueError(f"REDIS_URL must start with one of {', '.join(s + '://' for s in schemes)}")
        return value

    @field_validator("bff_redis_prefix")
    @classmethod
    def _redis_prefix(cls, value: str) -> str:
        # Braces would move the Redis Cluster hash tag `{...}` every key relies on; glob characters would
        # make the SCANs over our keys (doctor's census) match other deployments' keys too.
        if not REDIS_PREFIX.fullmatch(value) or REDIS_PREFIX_REFUSED.intersection(value):
            raise ValueError(
                "BFF_REDIS_PREFIX must be 1 to 32 printable ASCII characters without spaces, braces or glob "
                f"characters (* ? [ ] \\), such as `shop-staging:`; got {value!r}"
            )
        return value

    @field_validator("shopify_api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not API_VERSION.match(value):
            raise ValueError(f"SHOPIFY_API_VERSION must look like 2026-10 (a quarterly version), got {value!r}")
        return value

    @field_validator("shopify_storefront_api_version")
    @classmethod
    def _storefront_api_version(cls, value: str | None) -> str | None:
        if value is not None and not API_VERSION.match(value):
            raise ValueError(
                f"SHOPIFY_STOREFRONT_API_VERSION must look like 2026-10 (a quarterly version), got {value!r}"
            )
        return value

    @field_validator("shopify_scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("SHOPIFY_SCOPES must include `openid` (the ID token proves who logged in)")
        return value

    @model_validator(mode="after")
    def _parse(self) -> Settings:
        """Check every setting that depends on another, and parse the compound ones into typed values."""
        dev = self.bff_dev_mode
        self._shop_origin = _shop_origin(self.shopify_shop_domain)
        _check_web_url("BFF_PUBLIC_URL", self.bff_public_url, dev_mode=dev)
        if urlsplit(self.bff_public_url).query:
            raise ValueError("BFF_PUBLIC_URL must not carry a query string")
        _check_web_url("BFF_POST_LOGOUT_REDIRECT_URL", self.bff_post_logout_redirect_url, dev_mode=dev)
        for origin in self.bff_allowed_origins:
            if "*" in origin:
                raise ValueError("BFF_ALLOWED_ORIGINS must list exact origins; wildcards are refused")
            _check_web_url("BFF_ALLOWED_ORIGINS", origin, dev_mode=dev, origin_only=True)
        self._allowed_origins = tuple(Origin.of(o) for o in self.bff_allowed_origins)
        self._trusted_origins = frozenset({Origin.of(self.bff_public_url), *self._allowed_origins})

        secrets = [s.strip() for s in self.bff_session_secret.get_secret_value().split(",") if s.strip()]
        if not secrets:
            raise ValueError("BFF_SESSION_SECRET must be set (openssl rand -hex 32)")
        for secret in secrets:
            _check_secret("BFF_SESSION_SECRET", secret, dev_mode=dev)
        self._session_keys = tuple(s.encode() for s in secrets)
        if self.bff_token_encryption_keys is not None:
            self._token_keys = _encryption_keys(self.bff_token_encryption_keys.get_secret_value())
        else:
            self._token_keys = tuple(derive_key(s) for s in secrets)
        if not self.shopify_client_secret.get_secret_value():
            raise ValueError("SHOPIFY_CLIENT_SECRET must be set (Customer Account API settings → Credentials)")
        if self.shopify_previous_client_id and not self.shopify_previous_client_secret:
            raise ValueError("SHOPIFY_PREVIOUS_CLIENT_ID is set but SHOPIFY_PREVIOUS_CLIENT_SECRET is not")
        _check_credential("SHOPIFY_CLIENT_ID", self.shopify_client_id)
        _check_credential("SHOPIFY_CLIENT_SECRET", self.shopify_client_secret.get_secret_value())
        if self.shopify_previous_client_id:
            _check_credential("SHOPIFY_PREVIOUS_CLIENT_ID", self.shopify_previous_client_id)
        if self.shopify_previous_client_secret:
            _check_credential("SHOPIFY_PREVIOUS_CLIENT_SECRET", self.shopify_previous_client_secret.get_secret_value())

        proxies = []
        for entry in self.bff_trusted_proxies:
            try:
                proxies.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"BFF_TRUSTED_PROXIES entries must be IPs or CIDRs, got {entry!r}") from None
        self._trusted_proxies = tuple(proxies)
        self._login_rate = _rate("BFF_RATE_LIMIT_LOGIN", self.bff_rate_limit_login)
        self._graphql_rates = SessionRates(
            session=_rate("BFF_RATE_LIMIT_GRAPHQL", self.bff_rate_limit_graphql),
            customer=_rate("BFF_RATE_LIMIT_GRAPHQL_CUSTOMER", self.bff_rate_limit_graphql_customer),
        )
        if self.bff_discovery_ttl < 60 and not dev:
            # Each expiry refetches two documents from the shop; 0 (fetch on every request) is for tests.
            raise ValueError("BFF_DISCOVERY_TTL must be at least 60 seconds outside BFF_DEV_MODE")
        if self.bff_session_absolute_lifetime < self.bff_session_idle_timeout:
            raise ValueError("BFF_SESSION_ABSOLUTE_LIFETIME must be at least BFF_SESSION_IDLE_TIMEOUT")
        self._metrics_address = _metrics_address(self.bff_metrics_listener)
        if self.bff_session_cache == "on" and not _invalidations_trusted(self.redis_url):
            raise ValueError("BFF_SESSION_CACHE=on needs a plain redis:// REDIS_URL (standalone Redis)")
        return self

    @property
    def session_cache_on(self) -> bool:
        """Whether decoded sessions are kept in process: BFF_SESSION_CACHE=on, or auto on a plain redis:// URL."""
        return self.bff_session_cache == "on" or (
            self.bff_session_cache == "auto" and _invalidations_trusted(self.redis_url)
        )

    @property
    def shop_id(self) -> str | None:
        """The shop's id in BFF_SHOPS_FILE; None for a single-shop deployment (shops.py)."""
        return self._shop_id

    @property
    def public_path(self) -> str:
        """BFF_PUBLIC_URL's path prefix without the trailing slash ("" at the root): where cookies are scoped."""
        return urlsplit(self.bff_public_url).path.rstrip("/")

    @property
    def webhook_secrets(self) -> tuple[bytes, ...]:
        """SHOPIFY_WEBHOOK_SECRET's entries, newest first; empty when webhooks are off."""
        raw = self.shopify_webhook_secret.get_secret_value() if self.shopify_webhook_secret else ""
        return tuple(s.strip().encode() for s in raw.split(",") if s.strip())

    @property
    def storefront_api_version(self) -> str:
        """The cart endpoints' Storefront API version: SHOPIFY_STOREFRONT_API_VERSION, else SHOPIFY_API_VERSION."""
        return self.shopify_storefront_api_version or self.shopify_api_version

    @property
    def shop_origin(self) -> Origin:
        return self._shop_origin

    @property
    def trusted_origins(self) -> frozenset[Origin]:
        """Origins allowed to call us with credentials, and to be sent back to after login."""
        return self._trusted_origins

    @property
    def session_keys(self) -> tuple[bytes, ...]:
        """Cookie signing keys, newest first: sign with the first, accept any."""
        return self._session_keys

    @property
    def token_keys(self) -> tuple[bytes, ...]:
        """AES-256 keys for tokens at rest, newest first (derived from the session secrets when unset)."""
        return self._token_keys

    @property
    def trusted_proxies(self) -> tuple[IPNetwork, ...]:
        return self._trusted_proxies

    @property
    def login_rate(self) -> Rate:
        return self._login_rate

    @property
    def graphql_rates(self) -> SessionRates:
        """/graphql limits: per session (BFF_RATE_LIMIT_GRAPHQL) and per customer (..._CUSTOMER)."""
        return self._graphql_rates

    @property
    def public_url(self) -> str:
        return self.bff_public_url.rstrip("/")

    @property
    def public_origin(self) -> Origin:
        return Origin.of(self.bff_public_url)

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/auth/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.public_origin.startswith("https://")  # Origin is lower-cased, so HTTPS:// counts too

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where a separate /metrics listener binds (BFF_METRICS_LISTENER=host:port), else None."""
        return self._metrics_address

    @property
    def default_return_to(self) -> str:
        """Where a login returns without `return_to`: the first storefront origin, else our own."""
        return (self._allowed_origins[0] if self._allowed_origins else self.public_origin) + "/"


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]).upper() or "settings"
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required but not set"
            lines.append(f"{field}: {msg}" if field != "settings" else msg)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
