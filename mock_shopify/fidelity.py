"""Where shops differ or Shopify's behaviour is unconfirmed: one switch each, set through `POST /_mock/fidelity`.

Both URL shapes and both auth layouts are always served; the switches only pick what discovery advertises:
- `graphql_shape`: `customer` (`/customer/api/{v}/graphql`, the docs' samples) or `account`
  (`/account/customer/api/{v}/graphql`, what one live shop advertises).
- `auth_layout`: `shop_id` (`/authentication/{shop_id}/...`, most shops) or `custom_domain` (`/authentication/...`,
  a shop with its own customer-account domain); the `issuer` is `https://shopify.com/authentication/{shop_id}`
  either way.

The rest are strictnesses nobody here has confirmed on a real shop. Each default is the stand-in's behaviour before
they became switches; the safe assumption for a client is in the comment on each field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

GRAPHQL_SHAPES = ("customer", "account")
AUTH_LAYOUTS = ("shop_id", "custom_domain")
CONFIDENTIAL_PKCE = ("accepted", "refused")
_CHOICES = {"graphql_shape": GRAPHQL_SHAPES, "auth_layout": AUTH_LAYOUTS, "confidential_pkce": CONFIDENTIAL_PKCE}


@dataclass(frozen=True)
class Fidelity:
    graphql_shape: str = "customer"
    auth_layout: str = "shop_id"
    # Unconfirmed: Shopify documents PKCE for public clients only. Safe assumption: a confidential client that
    # sends `code_verifier` may be refused, so PKCE must be a setting the merchant can turn off.
    confidential_pkce: str = "accepted"
    # Unconfirmed: Shopify documents the raw token (`Authorization: <token>`). Safe assumption: `Bearer` is refused.
    reject_bearer: bool = True
    # Unconfirmed: the `errors` string of GraphQL's 401 for a bad token (a community report; the docs show
    # "User does not have access"). Safe assumption: any 401 means the token is bad, whatever the text.
    unauthorized_body: str = "Not a valid access token"
    # Unconfirmed: whether a refresh token dies when used. Safe assumption: it does, so store the new one at once
    # and never refresh twice with the same token.
    single_use_refresh_tokens: bool = True
    # Unconfirmed: whether a refresh token issued under a since-revoked secret still refreshes with another live
    # secret of the app. Safe assumption: it may not, so revoke an old secret only after every session has
    # refreshed under the new one.
    refresh_survives_secret_revocation: bool = True

    def updated(self, body: dict[str, Any]) -> Fidelity:
        """A copy with `body`'s fields applied (`"reset": true` starts from the defaults); ValueError if bad."""
        unknown = set(body) - {f.name for f in fields(self)} - {"reset"}
        if unknown:
            raise ValueError(f"unknown fidelity fields: {sorted(unknown)}")
        reset = body.get("reset", False)
        if not isinstance(reset, bool):
            raise ValueError("reset must be a boolean")
        changes = {k: v for k, v in body.items() if k != "reset"}
        for name, value in changes.items():
            if name in _CHOICES:
                if value not in _CHOICES[name]:
                    raise ValueError(f"{name} must be one of {list(_CHOICES[name])}")
            elif not isinstance(value, type(getattr(self, name))):
                raise ValueError(f"{name} must be a {type(getattr(self, name)).__name__}")
        return replace(Fidelity() if reset else self, **changes)
