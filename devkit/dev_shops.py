"""`make dev-shops`: two shops of one BFF, side by side. Where each part listens, the development secrets
(made once per shop into `.dev/shops-secrets.json`), the two shops files written into `.dev/`, and each
part's environment.

One stand-in process serves both shops (`python -m mock_shopify --shops .dev/standin-shops.toml`), and one
BFF process serves both storefronts (`BFF_SHOPS_FILE=.dev/shops.toml`), telling them apart by Host:

- Snowboards: storefront http://localhost:3000, BFF http://localhost:8000, stand-in http://localhost:9000;
- Surfboards: storefront http://127.0.0.1:3000, BFF http://127.0.0.1:8000, stand-in http://127.0.0.1:9100.

Browsers keep cookies per host name, not per port, so each shop lives on a host name of its own: the BFF's
session cookie of one is never sent to the other's storefront (as with two shops' real domains), and neither
is the stand-in's login cookie. The BFF's file names its secrets as `env:VAR` references, the values are in
the BFF's environment only: the file holds nothing secret, as a ConfigMap would.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devkit.dev_stack import DevError, port_setting, state_directory

# Each shop's secrets, generated once; the names are the keys of shops-secrets.json.
SHOP_SECRETS = ("client_id", "client_secret", "storefront_token", "storefront_public_token", "webhook_secret")
# The BFF file's `env:` references: <SHOP>_<KEY>, for the secret keys of app.shops.SECRET_KEYS the dev shops use.
REFERENCED = ("client_secret", "storefront_token", "webhook_secret")


@dataclass(frozen=True)
class DevShop:
    """One of the two shops: who it is and the host name every part of it is reached on."""

    id: str  # the BFF's shop id and the stand-in's shop name
    name: str  # what the shop calls itself: the demo's header, the stand-in's login page
    shop_id: str  # the stand-in's numeric shop id
    host: str
    shop_port: int

    def variable(self, key: str) -> str:
        """The environment variable the BFF's file refers to for `key` (e.g. SNOWBOARDS_CLIENT_SECRET)."""
        return f"{self.id.upper().replace('-', '_')}_{key.upper()}"


def _toml(value: str | list[str]) -> str:
    # JSON's strings and arrays of strings are valid TOML, escapes included.
    return json.dumps(value)


def _table(name: str, values: Mapping[str, str | int | list[str]]) -> str:
    lines = [f"[shops.{name}]"]
    lines += [f"{key} = {value if isinstance(value, int) else _toml(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DevShops:
    """Where each part of the two-shop dev stack listens, and the settings and files every part gets."""

    bff_port: int
    demo_port: int
    shops: tuple[DevShop, DevShop]
    state_dir: Path

    @classmethod
    def from_env(cls) -> DevShops:
        first = port_setting("DEV_SHOP_PORT", 9000)
        return cls(
            bff_port=port_setting("DEV_BFF_PORT", 8000),
            demo_port=port_setting("DEV_DEMO_PORT", 3000),
            shops=(
                DevShop("snowboards", "Snowboards", "1234567890", "localhost", first),
                DevShop(
                    "surfboards", "Surfboards", "2345678901", "127.0.0.1", port_setting("DEV_SHOP2_PORT", first + 100)
                ),
            ),
            state_dir=state_directory(),
        )

    def port_variables(self) -> dict[str, int]:
        return {
            "DEV_BFF_PORT": self.bff_port,
            "DEV_SHOP_PORT": self.shops[0].shop_port,
            "DEV_SHOP2_PORT": self.shops[1].shop_port,
            "DEV_DEMO_PORT": self.demo_port,
        }

    @property
    def shop_ports(self) -> tuple[int, ...]:
        return tuple(shop.shop_port for shop in self.shops)

    def bff_url(self, shop: DevShop) -> str:
        """The shop's public URL: the one BFF, under the shop's host name."""
        return f"http://{shop.host}:{self.bff_port}"

    def demo_url(self, shop: DevShop) -> str:
        return f"http://{shop.host}:{self.demo_port}"

    def shop_url(self, shop: DevShop) -> str:
        return f"http://{shop.host}:{shop.shop_port}"

    @property
    def bff_shops_file(self) -> Path:
        return self.state_dir / "shops.toml"

    @property
    def standin_shops_file(self) -> Path:
        return self.state_dir / "standin-shops.toml"

    @property
    def running_file(self) -> Path:
        """Where a running `make dev-shops` notes its Redis, for `--shops --doctor`."""
        return self.state_dir / "running-shops.json"

    def secrets(self) -> dict[str, dict[str, str]]:
        """{"deployment": {"session_secret"}, <shop id>: {SHOP_SECRETS}}, made once and kept in the state dir."""
        path = self.state_dir / "shops-secrets.json"
        stored: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
        wanted: dict[str, dict[str, str]] = {"deployment": {"session_secret": secrets.token_urlsafe(48)}}
        for shop in self.shops:
            wanted[shop.id] = {
                "client_id": f"dev-{shop.id}-{secrets.token_hex(8)}",
                "client_secret": secrets.token_urlsafe(32),
                # The stand-in's private Storefront token: the BFF sends it for the cart endpoints.
                "storefront_token": f"dev-shpat-{secrets.token_hex(16)}",
                # The public one: the demo page sends it for products and carts, as a storefront does.
                "storefront_public_token": f"dev-public-{secrets.token_hex(16)}",
                # Signs the stand-in's customer webhooks to this shop's /webhooks/shopify.
                "webhook_secret": secrets.token_urlsafe(32),
            }
        if all(wanted[part].keys() <= stored.get(part, {}).keys() for part in wanted):
            return stored
        # First run, or a file from before a shop or a secret was added: keep what it has, add the rest.
        merged = {part: {**values, **stored.get(part, {})} for part, values in wanted.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2))
        path.chmod(0o600)
        return merged

    def standin_shops_toml(self, creds: Mapping[str, Mapping[str, str]]) -> str:
        """The stand-in's shops file: literal secrets (it is the shop's side of them), each shop's own URLs."""
        tables = []
        for shop in self.shops:
            own = creds[shop.id]
            tables.append(
                _table(
                    shop.id,
                    {
                        "port": shop.shop_port,
                        "name": shop.name,
                        "shop_id": shop.shop_id,
                        # On the shop's host name, as the browser reaches it (see the module docstring).
                        "base_url": self.shop_url(shop),
                        "client_id": own["client_id"],
                        "client_secret": own["client_secret"],
                        "redirect_uris": [f"{self.bff_url(shop)}/auth/callback"],
                        "logout_uris": [f"{self.demo_url(shop)}/"],
                        "storefront_private_token": own["storefront_token"],
                        "storefront_public_token": own["storefront_public_token"],
                        "webhook_url": f"{self.bff_url(shop)}/webhooks/shopify",
                        "webhook_secret": own["webhook_secret"],
                    },
                )
            )
        return "# Written by `make dev-shops` (devkit/dev_shops.py) on every start; edits are overwritten.\n\n" + (
            "\n".join(tables)
        )

    def bff_shops_toml(self, creds: Mapping[str, Mapping[str, str]]) -> str:
        """The BFF's BFF_SHOPS_FILE: every secret an `env:` reference, so the file itself holds none."""
        tables = []
        for shop in self.shops:
            values: dict[str, str | int | list[str]] = {
                "shop_domain": self.shop_url(shop),
                "client_id": creds[shop.id]["client_id"],
                "public_url": self.bff_url(shop),
                "post_logout_redirect_url": f"{self.demo_url(shop)}/",
                "allowed_origins": [self.demo_url(shop)],
            }
            values |= {key: f"env:{shop.variable(key)}" for key in REFERENCED}
            tables.append(_table(shop.id, values))
        return "# Written by `make dev-shops` (devkit/dev_shops.py) on every start; edits are overwritten.\n\n" + (
            "\n".join(tables)
        )

    def write_files(self, creds: Mapping[str, Mapping[str, str]]) -> None:
        """Both shops files, from the current ports and secrets; the stand-in's is private (literal secrets)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.bff_shops_file.write_text(self.bff_shops_toml(creds))
        self.standin_shops_file.write_text(self.standin_shops_toml(creds))
        self.standin_shops_file.chmod(0o600)

    def bff_environment(self, creds: Mapping[str, Mapping[str, str]], redis_url: str) -> dict[str, str]:
        """The one BFF's settings: the deployment's, the shops file, and the secrets the file refers to."""
        env = {
            "BFF_SHOPS_FILE": str(self.bff_shops_file),
            "BFF_SESSION_SECRET": creds["deployment"]["session_secret"],
            "BFF_DEV_MODE": "true",
            "BFF_LOG_FORMAT": "console",
            # /metrics on the BFF's own port, as under `make dev` (and no clash with a running one's 9464).
            "BFF_METRICS_LISTENER": "public",
            "REDIS_URL": redis_url,
            # Apart from `make dev`'s keys (bff-dev:) on the same Redis; each shop adds its id after it.
            "BFF_REDIS_PREFIX": "bff-dev-shops:",
        }
        for shop in self.shops:
            env |= {shop.variable(key): creds[shop.id][key] for key in REFERENCED}
        return env

    def demo_environment(self, creds: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """The demo's sites: a page on a shop's host name talks to that shop's BFF URL and Storefront API."""
        sites = [
            {
                "bff_url": self.bff_url(shop),
                "shop_url": self.shop_url(shop),
                "storefront_token": creds[shop.id]["storefront_public_token"],
            }
            for shop in self.shops
        ]
        return {"DEMO_SITES": json.dumps(sites)}


def check_distinct_ports(ports: Mapping[str, int]) -> None:
    """Two parts given one port would fail later and less clearly; say which variables collide."""
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise DevError(f"{name} and {seen[port]} are both {port}; give each part its own port")
        seen[port] = name


def without_shop_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the single-shop variables: with BFF_SHOPS_FILE the BFF refuses to start beside them,
    and a developer may well have exported some for their own shop."""
    from app.shops import SHOP_KEYS  # the BFF's own list, so this never falls behind it

    stray = {field.upper() for field in SHOP_KEYS.values()}
    return {k: v for k, v in environ.items() if k.upper() not in stray and not k.startswith("MOCK_SHOPIFY_")}


def with_checkout_on_path(environ: Mapping[str, str], root: Path) -> dict[str, str]:
    """`environ` with this checkout first on PYTHONPATH, for children run outside it."""
    path = os.pathsep.join(p for p in (str(root), environ.get("PYTHONPATH", "")) if p)
    return {**environ, "PYTHONPATH": path}
