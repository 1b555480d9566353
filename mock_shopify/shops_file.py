"""The `--shops FILE` TOML file: one `[shops.<name>]` table per shop, its keys the single-shop CLI's options.

Every problem is found before any shop starts, each reported on its own line as `shops.<name>.<key>: ...`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mock_shopify.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_LOGOUT_URI,
    DEFAULT_REDIRECT_URI,
    DEFAULT_SHOP_NAME,
    DEFAULT_STOREFRONT_PRIVATE_TOKEN,
    DEFAULT_STOREFRONT_PUBLIC_TOKEN,
    MockConfig,
)
from mock_shopify.shops import ShopListing


class ShopsFileError(Exception):
    """The file cannot be served; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# A check returns what is wrong with a value, or None.
Check = Callable[[Any], str | None]


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _origin(value: Any) -> str | None:
    # Empty: http://HOST:PORT. Otherwise what the BFF takes as the shop domain, so an origin with no path.
    ok = isinstance(value, str) and (not value or re.fullmatch(r"https?://[^/?#\s]+/?", value))
    return None if ok else "must be an origin such as http://127.0.0.1:9000 (or empty)"


def _digits(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"\d+", value):
        return None
    return 'must be a string of digits, e.g. "1234567890"'


def _port(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
    return None if ok else "must be an integer from 1 to 65535"


def _seconds(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return None if ok else "must be a whole number of seconds >= 1"


def _urls(value: Any) -> str | None:
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    return None if ok else "must be a non-empty list of URL strings"


def _credentials(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(v, str) and re.fullmatch(r"[^:]+:.+", v) for v in value)
    return None if ok else 'must be a list of "ID:SECRET" strings'


# Each key with its check and its default (None: required); the defaults are the single-shop CLI's.
KEYS: dict[str, tuple[Check, Any]] = {
    "port": (_port, None),
    "name": (_text, DEFAULT_SHOP_NAME),
    "shop_id": (_digits, "1234567890"),
    "client_id": (_text, DEFAULT_CLIENT_ID),
    "client_secret": (_text, DEFAULT_CLIENT_SECRET),
    "extra_credentials": (_credentials, []),
    "redirect_uris": (_urls, [DEFAULT_REDIRECT_URI]),
    "logout_uris": (_urls, [DEFAULT_LOGOUT_URI]),
    "api_version": (_text, "2026-10"),
    "access_token_ttl": (_seconds, 3600),
    "code_ttl": (_seconds, 60),
    "id_token_ttl": (_seconds, 3600),
    "webhook_url": (_string, ""),
    "webhook_secret": (_string, ""),
    "storefront_private_token": (_text, DEFAULT_STOREFRONT_PRIVATE_TOKEN),
    "storefront_public_token": (_text, DEFAULT_STOREFRONT_PUBLIC_TOKEN),
    "issuer": (_string, ""),
    "base_url": (_origin, ""),
}


def load_shops_file(path: Path, *, host: str) -> list[ShopListing]:
    """The shops `path` lists; `host` is where they listen (base URLs default to http://HOST:PORT)."""
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ShopsFileError([f"cannot read it: {exc.strerror or exc}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ShopsFileError([f"not valid TOML: {exc}"]) from None
    return parse_shops(document, host=host)


def parse_shops(document: Mapping[str, Any], *, host: str) -> list[ShopListing]:
    """The shops a parsed file lists; ShopsFileError with every problem found."""
    problems = [f"{key}: unknown top-level key (only [shops.<name>] tables)" for key in document if key != "shops"]
    shops = document.get("shops")
    if not isinstance(shops, dict) or not shops:
        raise ShopsFileError([*problems, "shops: no [shops.<name>] table"])
    listings: list[ShopListing] = []
    for name, table in shops.items():
        if not isinstance(table, dict):
            problems.append(f"shops.{name}: must be a table ([shops.{name}])")
            continue
        shop_problems = _check_table(name, table)
        if shop_problems:
            problems += shop_problems
            continue
        try:
            listings.append(_listing(name, table, host))
        except ValueError as exc:
            problems.append(f"shops.{name}: {exc}")
    problems += _duplicates(listings)
    if problems:
        raise ShopsFileError(problems)
    return listings


def _check_table(name: str, table: Mapping[str, Any]) -> list[str]:
    problems = [f"shops.{name}.{key}: unknown key" for key in table if key not in KEYS]
    for key, (check, default) in KEYS.items():
        if key not in table:
            if default is None:
                problems.append(f"shops.{name}.{key}: required")
            continue
        problem = check(table[key])
        if problem:
            problems.append(f"shops.{name}.{key}: {problem}")
    return problems


def _listing(name: str, table: Mapping[str, Any], host: str) -> ShopListing:
    options = {key: table.get(key, default) for key, (_, default) in KEYS.items()}
    extra = [tuple(pair.split(":", 1)) for pair in options["extra_credentials"]]
    config = MockConfig(
        base_url=options["base_url"] or f"http://{host}:{options['port']}",
        shop_id=options["shop_id"],
        issuer=options["issuer"],
        credentials=[(options["client_id"], options["client_secret"]), *((cid, secret) for cid, secret in extra)],
        redirect_uris=options["redirect_uris"],
        logout_uris=options["logout_uris"],
        api_version=options["api_version"],
        access_token_ttl=options["access_token_ttl"],
        code_ttl=options["code_ttl"],
        id_token_ttl=options["id_token_ttl"],
        webhook_url=options["webhook_url"],
        webhook_secret=options["webhook_secret"],
        storefront_private_token=options["storefront_private_token"],
        storefront_public_token=options["storefront_public_token"],
        shop_name=options["name"],
    )
    return ShopListing(name=name, port=options["port"], config=config)


def _duplicates(listings: list[ShopListing]) -> list[str]:
    # Two shops on one port cannot both listen; two with one shop_id would share an issuer and auth paths.
    problems = []
    seen: dict[str, dict[object, str]] = {"port": {}, "shop_id": {}, "base_url": {}}
    for listing in listings:
        values = {"port": listing.port, "shop_id": listing.config.shop_id, "base_url": listing.config.base_url}
        for key, value in values.items():
            first = seen[key].setdefault(value, listing.name)
            if first != listing.name:
                problems.append(f"shops.{listing.name}.{key}: {value} is already shops.{first}'s {key}")
    return problems
