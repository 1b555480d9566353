"""The BFF serving many shops (BFF_SHOPS_FILE) under test: its shops file, its environment, and the shop the
load goes to.

Every shop of the file talks to the same upstream with the same client credentials; what differs per shop is
what the router and the isolation look at: the public URL (so the Host header), the Redis prefix and the
derived cookie and token keys. The public URLs are `http://127.0.0.<n+1>:<port>`: loopback addresses, which
Settings accepts over http without BFF_DEV_MODE, so the multi-shop BFF runs in the same (production) mode as
the single-shop BFF at `http://127.0.0.1:<port>`. The load goes to the LAST shop of the file, the worst case
for a router that scanned the list (app/shop_routing.py looks the host up in a dict, so it should not matter).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.shops import Shops, load_shops, route_of
from bench.bff import CLIENT_ID, CLIENT_SECRET, RATE_LIMITS

MAX_SHOPS = 253  # one loopback address each: 127.0.0.2 .. 127.0.0.254


def target_name(count: int) -> str:
    """The report's name for the BFF serving `count` shops."""
    return f"BFF, {count} shops"


def process_name(count: int) -> str:
    """Its process's name (logs, CPU columns)."""
    return f"bff-{count}-shops"


def shop_id(n: int) -> str:
    """The id of the n-th shop of the file (from 1)."""
    return f"shop-{n}"


@dataclass(frozen=True, slots=True)
class ShopsConfig:
    """One multi-shop BFF instance: its port, how many shops its file lists, the upstream, Redis and secret."""

    count: int
    port: int
    shop_origin: str
    redis_url: str
    session_secret: str
    path: Path  # where the shops file is written

    def public_url(self, n: int) -> str:
        return f"http://127.0.0.{n + 1}:{self.port}"

    def toml(self) -> str:
        """The shops file: each shop as the single-shop BFF's environment (bench/bff.py) describes its one shop."""
        tables = []
        for n in range(1, self.count + 1):
            values = {
                "shop_domain": self.shop_origin,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "api_version": "2026-10",
                "public_url": self.public_url(n),
                "post_logout_redirect_url": "http://localhost:3000/",
                **{name.removeprefix("BFF_").lower(): value for name, value in RATE_LIMITS.items()},
            }
            # A JSON string of printable ASCII is a TOML basic string.
            lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
            lines.append('allowed_origins = ["http://localhost:3000"]')
            tables.append(f"[shops.{shop_id(n)}]\n" + "\n".join(lines) + "\n")
        return "\n".join(tables)

    def write(self) -> ShopsConfig:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.toml())
        return self

    def env(self) -> dict[str, str]:
        """The deployment's environment: what every shop shares (the per-shop variables are in the file)."""
        return {
            "BFF_SHOPS_FILE": str(self.path),
            "BFF_SESSION_SECRET": self.session_secret,
            "REDIS_URL": self.redis_url,
            "BFF_LOG_LEVEL": "warning",
            "BFF_SESSION_CACHE": "off",  # as the one-shop "BFF" target it is compared with
            "BFF_METRICS_LISTENER": "off",  # several BFFs at once: no one port for all of them
        }

    def shops(self) -> Shops:
        """The shops exactly as the child process reads them from `env()`."""
        deployment = {name.lower(): value for name, value in self.env().items() if name != "BFF_SHOPS_FILE"}
        return load_shops(self.path, **deployment)

    def settings(self) -> Settings:
        """The target (last) shop's settings: its Redis prefix and keys make the session the load sends."""
        return self.shops().by_id(shop_id(self.count))

    @property
    def host(self) -> str:
        """The Host header that routes a request to the target shop."""
        return route_of(shop_id(self.count), self.public_url(self.count)).host


def new_shops_config(count: int, port: int, shop_origin: str, redis_url: str, out: Path) -> ShopsConfig:
    """A config with a fresh secret, its file written to `out`/shops-<count>.toml."""
    if not 1 <= count <= MAX_SHOPS:
        raise ValueError(f"between 1 and {MAX_SHOPS} shops, got {count}")
    # Hex, as bench/bff.py's: random, and never a placeholder word that Settings would refuse.
    secret = secrets.token_hex(24)
    return ShopsConfig(count, port, shop_origin, redis_url, secret, out / f"shops-{count}.toml").write()
