"""The long-lived parts of one running BFF, built by the lifespan and shared by the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import aiohttp
import httpx
from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from app.config import Settings
from app.discovery import Discovery
from app.security import CookieJar
from app.sessions import SessionStore
from app.shopify import Credential, ShopifyAuth
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
    credential: Credential  # new logins use this one


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


def _services(request: Request) -> Services:
    return services_of(request)


Deps = Annotated[Services, Depends(_services)]
