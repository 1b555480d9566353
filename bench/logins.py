"""Full authorization-code logins through the BFF against the strict Shopify stand-in, as a browser does them."""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'<form method="post" action="([^"]+)">')


@dataclass(frozen=True, slots=True)
class LoginRate:
    logins: int
    failed: int
    concurrency: int
    seconds: float
    cpu_ms_per_login: dict[str, float] = field(default_factory=dict)  # process name -> CPU ms per login

    @property
    def per_second(self) -> float:
        return (self.logins - self.failed) / self.seconds if self.seconds else 0.0


def _expect(response: httpx.Response, status: int, step: str) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(f"{step}: expected {status}, got {response.status_code}: {response.text[:200]}")
    return response


async def log_in(client: httpx.AsyncClient, bff_url: str, email: str) -> str:
    """One login from a fresh browser; returns the `bff_session=...` cookie the BFF set."""
    client.cookies.clear()
    start = _expect(await client.get(f"{bff_url}/auth/login", params={"return_to": "/account"}), 302, "login")
    authorize_url = start.headers["location"]
    page = _expect(await client.get(authorize_url), 200, "authorize page")
    action = _ACTION.search(page.text)
    if action is None:
        raise RuntimeError("authorize page: no login form")
    form = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(page.text)}
    form["email"] = email
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    signed_in = _expect(await client.post(origin + html.unescape(action.group(1)), data=form), 302, "sign in")
    callback = _expect(await client.get(signed_in.headers["location"]), 302, "callback")
    if "login_error" in callback.headers["location"]:
        raise RuntimeError(f"callback: {callback.headers['location']}")
    value = client.cookies.get("bff_session")
    if value is None:
        raise RuntimeError("callback: no session cookie")
    return f"bff_session={value}"


async def login_rate(bff_url: str, *, logins: int = 200, concurrency: int = 4) -> LoginRate:
    """`logins` complete logins, `concurrency` browsers at a time; a failed login is counted, not fatal."""
    failed = 0
    queue = iter(range(logins))

    async def browser() -> None:
        nonlocal failed
        async with httpx.AsyncClient(follow_redirects=False, timeout=30) as client:
            for n in queue:
                try:
                    await log_in(client, bff_url, f"bench{n}@example.com")
                except (RuntimeError, httpx.HTTPError):
                    failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(browser() for _ in range(concurrency)))
    return LoginRate(logins, failed, concurrency, time.perf_counter() - started)
