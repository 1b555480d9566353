"""Shopify behind its own clients: discovery, OAuth endpoints, ID tokens, credentials and GraphQL.

Each client sets its headers, timeouts and error mapping once: `http.py` for the shop's discovery, JWKS
and token endpoints (httpx), `graphql.py` for the Customer Account API (aiohttp, the hot path).
"""
