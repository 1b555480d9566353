"""A strict, in-memory stand-in for a Shopify shop's Customer Account API (OAuth, OIDC and GraphQL)."""

from mock_shopify.app import create_app
from mock_shopify.config import MockConfig

__all__ = ["MockConfig", "create_app"]
