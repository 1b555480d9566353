"""The long-lived parts of one running BFF, built by the lifespan and shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import aiohttp
import httpx
from fastapi import Depends, Request

from app.config import Settings
from app.credentials import Credentials
from app.discovery import Discovery
from app.graphql_policy import GraphQLPolicy
from app.metrics import Metrics
from app.ratelimit import IpRateLimiter
from app.security import CookieJar
from app.sessions import SessionStore
from app.shopify import ShopifyAuth
from app.tokens import TokenRefresher


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a request handler may need; one instance per process."""

    settings: Settings
    store: SessionStore
    discovery: Discovery
    auth: ShopifyAuth
    refresher: TokenRefresher
    cookies: CookieJar
    http: httpx.AsyncClient
    upstream: aiohttp.ClientSession
    credentials: Credentials  # new logins use .current
    metrics: Metrics
    rate_limiter: IpRateLimiter
    graphql_policy: GraphQLPolicy
    graphql_rate: tuple[int, int]  # (requests, per milliseconds) per session


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Deps = Annotated[Services, Depends(_services)]
