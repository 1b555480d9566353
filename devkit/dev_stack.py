"""Where each part of `make dev` listens and the settings each gets: ports from DEV_* variables, the
development secrets (made once into `.dev/secrets.json`), the stand-in's, the BFFs' and the demo's environments.

The demo answers at both `localhost` and `127.0.0.1`. A browser keeps cookies per host name, and the
session cookie lands on the host of the OAuth callback, which is fixed by BFF_PUBLIC_URL. So each host
name gets its own BFF (same Redis, same secrets: one deployment seen under two names), the demo page
talks to the one on its own host name, and sign-in and sign-out come back to the host the customer
started on.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The demo's two names; the first is the one the banner says to open.
HOSTS = ("localhost", "127.0.0.1")


class DevError(Exception):
    """Why `make dev` (or `make doctor`) cannot go on: one line, printed without a traceback."""


def port_setting(name: str, default: int) -> int:
    """The port a DEV_* variable sets, else `default`; DevError for anything but a port number."""
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DevError(f"{name} must be a port number (1-65535), got {raw!r}")
    return int(raw)


def state_directory() -> Path:
    """Where `make dev` keeps its secrets and generated files: DEV_STATE_DIR, else `.dev/` in the checkout."""
    return Path(os.environ.get("DEV_STATE_DIR") or ROOT / ".dev")


@dataclass(frozen=True)
class DevStack:
    """Where each part of the dev stack listens, and the settings every part gets."""

    bff_port: int
    bff_ip_port: int
    shop_port: int
    demo_port: int
    state_dir: Path

    @classmethod
    def from_env(cls) -> DevStack:
        bff = port_setting("DEV_BFF_PORT", 8000)
        return cls(
            bff_port=bff,
            # The 127.0.0.1 demo's BFF (see the module docstring): next to the first one unless set.
            bff_ip_port=port_setting("DEV_BFF_IP_PORT", bff + 1),
            shop_port=port_setting("DEV_SHOP_PORT", 9000),
            demo_port=port_setting("DEV_DEMO_PORT", 3000),
            state_dir=state_directory(),
        )

    def port_variables(self) -> dict[str, int]:
        return {
            "DEV_BFF_PORT": self.bff_port,
            "DEV_BFF_IP_PORT": self.bff_ip_port,
            "DEV_SHOP_PORT": self.shop_port,
            "DEV_DEMO_PORT": self.demo_port,
        }

    def bff_url(self, host: str) -> str:
        return f"http://{host}:{self.bff_port if host == HOSTS[0] else self.bff_ip_port}"

    def demo_url(self, host: str) -> str:
        return f"http://{host}:{self.demo_port}"

    @property
    def shop_url(self) -> str:
        return f"http://localhost:{self.shop_port}"

    def secrets(self) -> dict[str, str]:
        """The development secrets, made once and kept in the state directory."""
        path = self.state_dir / "secrets.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        generated = {
            "client_id": f"dev-{secrets.token_hex(8)}",
            "client_secret": secrets.token_urlsafe(32),
            "session_secret": secrets.token_urlsafe(48),
            # The stand-in's private Storefront token, which the BFF sends to enable the cart endpoints.
            "storefront_token": f"dev-shpat-{secrets.token_hex(16)}",
            # Signs the stand-in's customer webhooks (deleting a customer at /_mock/customers/delete signs them out).
            "webhook_secret": secrets.token_urlsafe(32),
        }
        if generated.keys() <= stored.keys():
            return stored
        # First run, or a secrets file from before a secret was added: keep what it has, add the rest.
        merged = {**generated, **stored}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2))
        path.chmod(0o600)
        return merged

    def shop_environment(self, creds: Mapping[str, str]) -> dict[str, str]:
        """The stand-in's settings: both BFFs' callbacks and both demo pages are registered with it."""
        return {
            "MOCK_SHOPIFY_BASE_URL": self.shop_url,
            "MOCK_SHOPIFY_CLIENT_ID": creds["client_id"],
            "MOCK_SHOPIFY_CLIENT_SECRET": creds["client_secret"],
            "MOCK_SHOPIFY_REDIRECT_URI": ",".join(f"{self.bff_url(h)}/auth/callback" for h in HOSTS),
            "MOCK_SHOPIFY_LOGOUT_URI": ",".join(f"{self.demo_url(h)}/" for h in HOSTS),
            "MOCK_SHOPIFY_STOREFRONT_PRIVATE_TOKEN": creds["storefront_token"],
            "MOCK_SHOPIFY_WEBHOOK_URL": f"{self.bff_url(HOSTS[0])}/webhooks/shopify",
            "MOCK_SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
        }

    def bff_environment(self, creds: Mapping[str, str], redis_url: str, host: str = HOSTS[0]) -> dict[str, str]:
        """The settings of the BFF that serves the demo loaded on `host`."""
        own, *others = [self.demo_url(host), *(self.demo_url(h) for h in HOSTS if h != host)]
        return {
            "SHOPIFY_SHOP_DOMAIN": self.shop_url,
            "SHOPIFY_CLIENT_ID": creds["client_id"],
            "SHOPIFY_CLIENT_SECRET": creds["client_secret"],
            "SHOPIFY_STOREFRONT_TOKEN": creds["storefront_token"],
            "SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
            "BFF_PUBLIC_URL": self.bff_url(host),
            # Both demo origins may call either BFF; its own comes first, the default place to return to.
            "BFF_ALLOWED_ORIGINS": ",".join([own, *others]),
            "BFF_POST_LOGOUT_REDIRECT_URL": f"{own}/",
            "BFF_SESSION_SECRET": creds["session_secret"],
            "BFF_DEV_MODE": "true",
            "BFF_LOG_FORMAT": "console",
            # On the BFF's own port: two BFFs can't share the default separate listener (127.0.0.1:9464).
            "BFF_METRICS_LISTENER": "public",
            "REDIS_URL": redis_url,
            "BFF_REDIS_PREFIX": "bff-dev:",  # its own keys, apart from any deployment on the same Redis
        }

    def demo_environment(self) -> dict[str, str]:
        return {
            "DEMO_BFF_URL": self.bff_url(HOSTS[0]),
            "DEMO_EXTRA_BFF_URLS": ",".join(self.bff_url(h) for h in HOSTS[1:]),
            "DEMO_SHOP_URL": self.shop_url,
        }
