"""The stand-in's configuration: one frozen object, built once by the caller or the CLI."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_CLIENT_ID = "dev-client-id"
DEFAULT_CLIENT_SECRET = "dev-client-secret-not-for-production"
DEFAULT_REDIRECT_URI = "http://localhost:8000/auth/callback"
DEFAULT_LOGOUT_URI = "http://localhost:3000/"
# The Storefront API's two kinds of token: the private one for servers (the BFF), the public one for browsers.
DEFAULT_STOREFRONT_PRIVATE_TOKEN = "dev-storefront-private-token-not-for-production"
DEFAULT_STOREFRONT_PUBLIC_TOKEN = "dev-storefront-public-token"
DEFAULT_SHOP_NAME = "Mock Shop"


@dataclass(frozen=True, kw_only=True)
class MockConfig:
    """Everything the stand-in needs to know about the shop and the one app registered on it.

    `credentials` are (client_id, client_secret) pairs that all belong to that one app, so two can be valid at
    once while a secret is rotated. `issuer` defaults to Shopify's own host, deliberately not `base_url`: real
    shops on a custom account domain serve the endpoints on one host and sign tokens for another.
    """

    base_url: str
    shop_id: str = "1234567890"
    issuer: str = ""
    # repr=False keeps the secrets out of logs and tracebacks.
    credentials: Sequence[tuple[str, str]] = field(default=((DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),), repr=False)
    redirect_uris: Sequence[str] = (DEFAULT_REDIRECT_URI,)
    logout_uris: Sequence[str] = (DEFAULT_LOGOUT_URI,)
    api_version: str = "2026-10"
    access_token_ttl: int = 3600
    code_ttl: int = 60
    id_token_ttl: int = 3600
    # Where customers/delete and customers/redact deliveries go (mock_shopify/webhooks.py); empty: nowhere.
    webhook_url: str = ""
    webhook_secret: str = field(default="", repr=False)
    storefront_private_token: str = field(default=DEFAULT_STOREFRONT_PRIVATE_TOKEN, repr=False)
    storefront_public_token: str = DEFAULT_STOREFRONT_PUBLIC_TOKEN
    # What both APIs' `shop { name }` answer: tells apart the shops of one multi-shop stand-in (shops.py).
    shop_name: str = DEFAULT_SHOP_NAME

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+", self.shop_id):
            raise ValueError("shop_id must be a numeric Shopify shop ID string")
        if not re.fullmatch(r"https?://[^/]+", self.base_url.rstrip("/")):
            raise ValueError("base_url must be an origin such as http://127.0.0.1:9000")
        if not self.credentials:
            raise ValueError("at least one (client_id, client_secret) pair is required")
        if not self.storefront_private_token or not self.storefront_public_token:
            raise ValueError("both Storefront API tokens (private and public) must be non-empty")
        if not self.shop_name:
            raise ValueError("shop_name must be non-empty")
        if not self.redirect_uris or not self.logout_uris:
            raise ValueError("at least one redirect URI and one logout URI are required")
        # Frozen: normalise through object.__setattr__ so callers may pass lists.
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        object.__setattr__(self, "credentials", tuple((cid, sec) for cid, sec in self.credentials))
        object.__setattr__(self, "redirect_uris", tuple(self.redirect_uris))
        object.__setattr__(self, "logout_uris", tuple(self.logout_uris))
        if not self.issuer:
            object.__setattr__(self, "issuer", f"https://shopify.com/authentication/{self.shop_id}")

    @property
    def auth_base(self) -> str:
        """The prefix of the authorize, token, logout and JWKS endpoints (the usual, shop-id layout)."""
        return f"{self.base_url}{self.auth_path}"

    @property
    def auth_path(self) -> str:
        """`auth_base` without the origin, for routing."""
        return f"/authentication/{self.shop_id}"

    @property
    def auth_paths(self) -> dict[str, str]:
        """The auth endpoints' path prefix per layout, all routed; the `auth_layout` knob picks the advertised one.

        A shop with its own customer-account domain serves them on `https://account.<domain>/authentication/...`,
        with no shop id in the path. The stand-in keeps its one host (`base_url`) and changes only the path.
        """
        return {"shop_id": self.auth_path, "custom_domain": "/authentication"}

    def graphql_url(self, shape: str) -> str:
        """The GraphQL URL discovery advertises for a `graphql_shape` ("customer" or "account")."""
        prefix = "/account" if shape == "account" else ""
        return f"{self.base_url}{prefix}/customer/api/{self.api_version}/graphql"
