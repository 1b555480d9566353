"""Browser fixtures: the stand-in, the BFF and the demo storefront on `localhost` ports, and headless Chromium.

All three servers are named `localhost` (on different ports), so they are one *site*: the BFF's SameSite=Lax
session cookie rides along with the storefront's credentialed fetches, as it would on www. and account. of one
domain. Everything here is synchronous: Playwright's sync API must not run inside a running asyncio loop.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, sync_playwright

from devkit.demo_server import DEMO_DIR, DemoHandler
from devkit.redis_server import free_port, wait_port
from mock_shopify.app import create_app as create_mock_app
from mock_shopify.config import MockConfig
from tests.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    CSRF,
    SESSION_SECRET,
    STOREFRONT_TOKEN,
    ServerThread,
    create_app,
    load_settings,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No network beyond loopback: no component updates, sync, field trials or QUIC probes.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


class DemoServer:
    """devkit's demo server (static `demo/` plus `/config.js`) on a loopback port, in a thread."""

    def __init__(self, port: int, bff_url: str, shop_url: str) -> None:
        handler = type("E2EDemoHandler", (DemoHandler,), {"bff_url": bff_url, "shop_url": shop_url})
        self.port = port
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(DEMO_DIR)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> DemoServer:
        self.thread.start()
        wait_port(self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@dataclass
class Stack:
    """The running servers, their browser-facing URLs, and handles on the stand-in's knobs and Redis."""

    shop_url: str
    bff_url: str
    demo_url: str
    http: httpx.Client
    redis: redis.Redis

    def knob(self, name: str, **body: Any) -> dict[str, Any]:
        response = self.http.post(f"{self.shop_url}/_mock/{name}", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get(f"{self.shop_url}/_mock/stats").raise_for_status().json()
        return stats


@pytest.fixture(scope="module")
def running_stack(redis_url: str) -> Iterator[Stack]:
    shop_port, bff_port, demo_port = free_port(), free_port(), free_port()
    shop_url, bff_url, demo_url = (f"http://localhost:{p}" for p in (shop_port, bff_port, demo_port))
    mock_config = MockConfig(
        base_url=shop_url,
        credentials=[(CLIENT_ID, CLIENT_SECRET)],
        redirect_uris=[f"{bff_url}/auth/callback"],
        logout_uris=[f"{demo_url}/"],
    )
    settings = load_settings(
        shopify_shop_domain=shop_url,
        shopify_client_id=CLIENT_ID,
        shopify_client_secret=CLIENT_SECRET,
        bff_public_url=bff_url,
        bff_allowed_origins=demo_url,
        bff_post_logout_redirect_url=f"{demo_url}/",
        bff_session_secret=SESSION_SECRET,
        redis_url=redis_url,
        shopify_storefront_token=STOREFRONT_TOKEN,
    )
    shop = ServerThread(create_mock_app(mock_config), shop_port).start()
    # With its lifespan: the BFF opens its Redis pool and HTTP clients there.
    bff = ServerThread(create_app(settings), bff_port, lifespan=True).start()
    demo = DemoServer(demo_port, bff_url, shop_url).start()
    try:
        with httpx.Client(headers={"User-Agent": "e2e-tests"}, timeout=5) as http:
            client = redis.Redis.from_url(redis_url)
            try:
                yield Stack(shop_url, bff_url, demo_url, http, client)
            finally:
                client.close()
    finally:
        demo.stop()
        bff.stop()
        shop.stop()


@pytest.fixture
def stack(running_stack: Stack) -> Stack:
    """The stack with the stand-in back to fresh customers, tokens, carts and knobs."""
    running_stack.knob("reset")
    running_stack.knob("storefront/reset")
    return running_stack


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


CONTEXT_DEFAULTS: dict[str, Any] = {
    "locale": "en-US",
    "timezone_id": "UTC",
    "viewport": {"width": 1280, "height": 860},
    "device_scale_factor": 1,
}


@pytest.fixture
def context_options() -> dict[str, Any]:
    """Extra `new_context` options for the `context` fixture; a test module overrides this (e.g. `user_agent`)."""
    return {}


@pytest.fixture
def new_context(browser: Browser, running_stack: Stack) -> Iterator[Callable[..., BrowserContext]]:
    """Opens fresh browser profiles (no cookies; a fixed locale and clock zone for stable text): a second
    "device" for the same customer is `new_context(user_agent=...)`. Each is signed out and closed after the test."""
    opened: list[BrowserContext] = []

    def open_context(**options: Any) -> BrowserContext:
        context = browser.new_context(**{**CONTEXT_DEFAULTS, **options})
        context.set_default_timeout(10_000)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        # Sign out through the BFF, so no session outlives the test in the Redis the rest of the suite shares.
        logout = f"{running_stack.bff_url}/auth/logout"
        context.request.post(logout, headers={**CSRF, "Accept": "application/json"}, max_redirects=0)
        context.close()


@pytest.fixture
def context(new_context: Callable[..., BrowserContext], context_options: dict[str, Any]) -> BrowserContext:
    """The test's browser profile."""
    return new_context(**context_options)


# Run before the page's own scripts and outside its CSP: every violation the page sees becomes a console line,
# also the ones Chromium reports only as an event.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) =>
  console.error(`securitypolicyviolation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`));
"""


def is_csp_violation(message: ConsoleMessage) -> bool:
    # Chromium's own line reads "Refused to ... violates the following Content Security Policy directive".
    return "Content Security Policy" in message.text or "securitypolicyviolation" in message.text


@pytest.fixture
def csp_violations() -> list[str]:
    """What the `page` fixture's tab reported as Content Security Policy violations, in order."""
    return []


def watch_csp(page: Page, violations: list[str]) -> Page:
    """`page`, with every CSP violation it reports appended to `violations` (pass `csp_violations` to fail the
    test on them, as the `page` fixture does)."""
    page.add_init_script(REPORT_CSP_VIOLATIONS)
    page.on("console", lambda message: violations.append(message.text) if is_csp_violation(message) else None)
    return page


@pytest.fixture
def page(context: BrowserContext, csp_violations: list[str]) -> Iterator[Page]:
    """A tab that fails the test on any CSP violation: the demo must work under its policy, not around it."""
    page = watch_csp(context.new_page(), csp_violations)
    yield page
    assert not csp_violations, csp_violations


@pytest.fixture
def screenshot(page: Page) -> Callable[..., Path]:
    """`screenshot("03-signed-in")` saves the whole page to test-artifacts/e2e/03-signed-in.png;
    `screenshot("15-other", of=other_page)` another tab's."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, *, of: Page | None = None) -> Path:
        path = ARTIFACTS / f"{name}.png"
        (of or page).screenshot(path=str(path), full_page=True, animations="disabled")
        return path

    return take
