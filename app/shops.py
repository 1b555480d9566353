"""Many shops from one deployment: `BFF_SHOPS_FILE`'s TOML, parsed into one frozen Settings per shop.

Without BFF_SHOPS_FILE nothing here runs: the environment describes one shop, as it always has. With it,
every shop is a `[shops.<id>]` table holding what one shop's environment holds (its Shopify app, its public
URL, its storefronts, its limits), and the environment keeps what the deployment shares (Redis, secrets,
timeouts, logging). Each shop's Settings is the deployment's with the shop's values put in and then:

- its Redis keys start with `<BFF_REDIS_PREFIX><id>:`, so no key of one shop is a key of another;
- its cookie signing keys and token encryption keys are derived from the deployment's with HKDF and the shop
  id (crypto.shop_key), so a cookie or a record copied from one shop to another neither verifies nor
  decrypts, and a rotation of BFF_SESSION_SECRET rotates every shop's keys at once.

Secrets in the file may be literals or `env:VARIABLE`, read from the environment at startup, so the file can
be a ConfigMap and the secrets a Secret. Every problem is one line naming the shop and the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from app.config import ConfigError, Settings, load_settings
from app.crypto import shop_key

SHOP_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")
# A public URL's path prefix, if any: plain segments, so a prefix never needs decoding to compare.
PATH_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")

# The file's keys and the settings they stand for; the variable names are what Settings' messages say.
SHOP_KEYS: dict[str, str] = {
    "shop_domain": "shopify_shop_domain",
    "client_id": "shopify_client_id",
    "client_secret": "shopify_client_secret",
    "previous_client_id": "shopify_previous_client_id",
    "previous_client_secret": "shopify_previous_client_secret",
    "scopes": "shopify_scopes",
    "api_version": "shopify_api_version",
    "pkce": "shopify_pkce",
    "storefront_token": "shopify_storefront_token",
    "storefront_api_version": "shopify_storefront_api_version",
    "webhook_secret": "shopify_webhook_secret",
    "public_url": "bff_public_url",
    "allowed_origins": "bff_allowed_origins",
    "post_logout_redirect_url": "bff_post_logout_redirect_url",
    "rate_limit_login": "bff_rate_limit_login",
    "rate_limit_graphql": "bff_rate_limit_graphql",
    "rate_limit_graphql_customer": "bff_rate_limit_graphql_customer",
    "graphql_allowlist": "bff_graphql_allowlist",
}
SECRET_KEYS = frozenset({"client_secret", "previous_client_secret", "storefront_token", "webhook_secret"})
REQUIRED_KEYS = ("shop_domain", "client_id", "client_secret", "public_url", "post_logout_redirect_url")
_VARIABLES = {field.upper(): key for key, field in SHOP_KEYS.items()}
_VARIABLE_NAME = re.compile(r"\b(?:SHOPIFY|BFF)_[A-Z0-9_]+\b")


def _stray_variables() -> list[str]:
    """The per-shop variables the environment or `.env` sets: with a shops file they belong in the file."""
    env_file = _dotenv()
    names = (field.upper() for field in SHOP_KEYS.values())
    return [name for name in names if os.environ.get(name) or env_file.get(name)]


def _dotenv() -> dict[str, str]:
    from dotenv import dotenv_values

    path = Path(".env")
    if not path.is_file():
        return {}
    return {k.upper(): v for k, v in dotenv_values(path).items() if v}


@dataclass(frozen=True, slots=True)
class ShopRoute:
    """Where a shop's requests arrive: the host (with a port unless the scheme's default) and a path prefix."""

    shop_id: str
    host: str
    prefix: str  # "" or "/acme"


@dataclass(frozen=True, slots=True)
class Shops:
    """The configured shops, in file order: each one's Settings (`shop_id` set) and its route."""

    settings: tuple[Settings, ...]
    routes: tuple[ShopRoute, ...]
    source: str  # the file, for messages

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.shop_id or "" for s in self.settings)

    def by_id(self, shop_id: str) -> Settings:
        """One shop's settings; KeyError for an id the file does not list."""
        for settings in self.settings:
            if settings.shop_id == shop_id:
                return settings
        raise KeyError(shop_id)


def route_of(shop_id: str, public_url: str) -> ShopRoute:
    """The host and path prefix a shop's public URL gives (the URL was validated by Settings), as a Host header
    names it: a host name in IDNA (browsers send `xn--` labels), the port unless the scheme's default."""
    parts = urlsplit(public_url)
    host = (parts.hostname or "").lower()
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return ShopRoute(shop_id, host, parts.path.rstrip("/"))


# Variables a shop's secret may not be read from: the deployment's own settings and secrets. A shops file is
# often less guarded than the environment (a ConfigMap), and a shop's secrets go to that shop's Shopify, so
# `client_secret = "env:BFF_SESSION_SECRET"` would send the key every shop's cookies derive from to its host.
_DEPLOYMENT_VARIABLES = ("BFF_", "SHOPIFY_", "REDIS_", "OTEL_", "PROMETHEUS_")


def _resolve(shop_id: str, key: str, value: object, problems: list[str]) -> object:
    """A value from the file, with `env:VARIABLE` read for secrets."""
    if key in SECRET_KEYS and isinstance(value, str) and value.startswith("env:"):
        name = value.removeprefix("env:")
        if name.upper().startswith(_DEPLOYMENT_VARIABLES):
            problems.append(
                f'shop "{shop_id}": {key} may not refer to {name}, one of the deployment\'s own variables; give the '
                "shop's secret a variable of its own (env:SHOPNAME_CLIENT_SECRET)"
            )
            return None
        found = os.environ.get(name)
        if not found:
            problems.append(f'shop "{shop_id}": {key} refers to the environment variable {name}, which is not set')
            return None
        return found
    if key == "allowed_origins" and isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            problems.append(f'shop "{shop_id}": allowed_origins must be a list of origins (strings)')
            return None
        return ",".join(value)
    if key == "pkce":
        if not isinstance(value, bool):
            problems.append(f'shop "{shop_id}": pkce must be true or false')
            return None
        return value
    if not isinstance(value, str):
        problems.append(f'shop "{shop_id}": {key} must be a string')
        return None
    return value


def in_file_terms(message: str) -> str:
    """`message` with the single-shop variables it names put as the shops file's keys (`SHOPIFY_CLIENT_ID` →
    `client_id`); whole names only, as one may start another (BFF_RATE_LIMIT_GRAPHQL_CUSTOMER)."""
    return _VARIABLE_NAME.sub(lambda found: _VARIABLES.get(found.group(), found.group()), message)


def _shop_problem(shop_id: str, message: str) -> str:
    return f'shop "{shop_id}": {in_file_terms(message)}'


def _names_shop_setting(message: str) -> bool:
    """Whether a message of Settings' checks is about one of a shop's settings (they name the variable)."""
    return any(found in _VARIABLES for found in _VARIABLE_NAME.findall(message))


def _one_shop(
    shop_id: str, table: Mapping[str, Any], overrides: Mapping[str, object], problems: list[str]
) -> Settings | None:
    unknown = sorted(set(table) - set(SHOP_KEYS))
    for key in unknown:
        problems.append(f'shop "{shop_id}": unknown key {key!r} (known: {", ".join(SHOP_KEYS)})')
    for key in REQUIRED_KEYS:
        if key not in table:
            problems.append(f'shop "{shop_id}": {key} is required')
    if unknown or any(key not in table for key in REQUIRED_KEYS):
        return None
    before = len(problems)
    values: dict[str, object] = {}
    for key, field in SHOP_KEYS.items():
        # Every per-shop setting is given, so none can come from the environment's single-shop variables.
        values[field] = (
            _resolve(shop_id, key, table[key], problems) if key in table else Settings.model_fields[field].default
        )
    if len(problems) > before:
        return None
    try:
        settings = Settings(**{**overrides, **values})  # type: ignore[arg-type]
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "is required but not set"  # as load_settings says it
            named = next((k for k, f in SHOP_KEYS.items() if f == field), None)
            if named is not None:
                problems.append(_shop_problem(shop_id, f"{named}: {message}"))
            elif field:
                problems.append(f"{field.upper()}: {message}")  # a deployment setting: said once, below
            elif _names_shop_setting(message):
                problems.append(_shop_problem(shop_id, message))
            else:
                # The checks across settings name their variable first; one of the deployment's is no shop's
                # problem, and every shop would repeat it.
                problems.append(message)
        return None
    return _for_shop(settings, shop_id)


def _for_shop(settings: Settings, shop_id: str) -> Settings:
    """`settings` with the shop's own Redis prefix and keys (see the module docstring)."""
    # A separator of its own after BFF_REDIS_PREFIX: `bff` and shop `acme` must not make another prefix's `bffacme:`.
    base = settings.bff_redis_prefix if settings.bff_redis_prefix.endswith(":") else f"{settings.bff_redis_prefix}:"
    shop = settings.model_copy(update={"bff_redis_prefix": f"{base}{shop_id}:"})
    shop._shop_id = shop_id
    shop._session_keys = tuple(shop_key(k, "cookies", shop_id) for k in settings.session_keys)
    shop._token_keys = tuple(shop_key(k, "tokens", shop_id) for k in settings.token_keys)
    return shop


def load_shops(path: str | Path, **overrides: object) -> Shops:
    """Read and check a shops file; ConfigError with one line per problem. `overrides` are deployment settings
    given as keyword arguments (tests), as `load_settings` takes them."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"invalid configuration:\n  BFF_SHOPS_FILE: cannot read {source}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid configuration:\n  BFF_SHOPS_FILE: {source} is not valid TOML: {exc}") from None
    problems: list[str] = []
    extra = sorted(set(document) - {"shops"})
    if extra:
        problems.append(f"BFF_SHOPS_FILE: unknown top-level key(s) {', '.join(extra)}; shops go in [shops.<id>] tables")
    tables = document.get("shops")
    if not isinstance(tables, dict) or not tables:
        problems.append(f"BFF_SHOPS_FILE: {source} lists no shops (add a [shops.<id>] table per shop)")
        tables = {}
    shops: list[Settings] = []
    for shop_id, table in tables.items():
        if not SHOP_ID.fullmatch(shop_id):
            problems.append(f'shop "{shop_id}": the id must be 1 to 24 lower-case letters, digits or -')
            continue
        if not isinstance(table, dict):
            problems.append(f'shop "{shop_id}": must be a table ([shops.{shop_id}])')
            continue
        found = _one_shop(shop_id, table, overrides, problems)
        if found is not None:
            shops.append(found)
    routes = [route_of(s.shop_id or "", s.bff_public_url) for s in shops]
    seen: dict[tuple[str, str], str] = {}
    for route in routes:
        if route.prefix and (not PATH_PREFIX.fullmatch(route.prefix) or {".", ".."} & set(route.prefix.split("/"))):
            problems.append(f'shop "{route.shop_id}": public_url\'s path must be plain segments like /acme')
        if route.host.endswith((":80", ":443")):
            # The router reads Host with :80 and :443 dropped, as either names a scheme's default port.
            problems.append(
                f'shop "{route.shop_id}": public_url names port 80 or 443 on the other scheme; drop the port'
            )
        taken = seen.setdefault((route.host, route.prefix), route.shop_id)
        if taken != route.shop_id:
            problems.append(f'shop "{route.shop_id}": public_url is also shop "{taken}"\'s; each shop needs its own')
    if problems:
        unique = list(dict.fromkeys(problems))
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(unique))
    return Shops(settings=tuple(shops), routes=tuple(routes), source=source)


def load_configuration() -> Settings | Shops:
    """What the environment describes: one shop's Settings, or with BFF_SHOPS_FILE set, the file's shops."""
    path = os.environ.get("BFF_SHOPS_FILE") or _dotenv().get("BFF_SHOPS_FILE")
    if not path:
        return load_settings()
    stray = _stray_variables()
    if stray:
        raise ConfigError(
            "invalid configuration:\n  "
            + "\n  ".join(
                f"{name}: set per shop in BFF_SHOPS_FILE ({_VARIABLES[name]}), not in the environment" for name in stray
            )
        )
    return load_shops(path)


def setting_name(settings: Settings, variable: str) -> str:
    """How to name a setting to the operator: the variable, or for a shop of a shops file its key there."""
    key = _VARIABLES.get(variable)
    if settings.shop_id is None or key is None:
        return variable
    return f'{key} of shop "{settings.shop_id}" in BFF_SHOPS_FILE'


def deployment_settings(configuration: Settings | Shops) -> Settings:
    """The settings every shop shares (Redis, timeouts, logging, limits of the server): any shop's hold them."""
    return configuration.settings[0] if isinstance(configuration, Shops) else configuration
