"""`make dev-shops` itself (`python -m devkit.dev --shops`, real processes) in headless Chromium: two shops of one
BFF side by side, Snowboards at `localhost` and Surfboards at `127.0.0.1`, each its own shop in one browser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from devkit.redis_server import free_port
from tests.e2e.conftest import CHROMIUM, CONTEXT_DEFAULTS, watch_csp
from tests.helpers import CSRF, Process, python

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed: `apt-get install chromium` (Debian/Ubuntu) to run the browser tests",
)

SNOWBOARDS_CUSTOMER = "ada.lovelace@example.com"
SURFBOARDS_CUSTOMER = "grace.hopper@example.com"


@dataclass(frozen=True)
class Storefront:
    """One shop of the running `make dev-shops`, as a browser reaches it."""

    name: str
    url: str  # the demo page
    bff_url: str
    shop_url: str  # the stand-in shop, where sign-in happens


@dataclass(frozen=True)
class DevShops:
    snowboards: Storefront
    surfboards: Storefront


@pytest.fixture(scope="module")
def make_dev_shops(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevShops]:
    """`make dev-shops` on free ports, with the suite's Redis."""
    workdir = tmp_path_factory.mktemp("make-dev-shops")
    bff, shop, shop2, demo = (free_port() for _ in range(4))
    env = {
        "DEV_BFF_PORT": str(bff),
        "DEV_SHOP_PORT": str(shop),
        "DEV_SHOP2_PORT": str(shop2),
        "DEV_DEMO_PORT": str(demo),
        "DEV_STATE_DIR": str(workdir / "state"),
        "REDIS_URL": redis_url,
        "NO_COLOR": "1",
    }
    dev = Process("make-dev-shops", python("-m", "devkit.dev", "--shops"), port=demo, workdir=workdir, env=env)
    with dev:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything" not in dev.output():
            assert dev.proc.poll() is None, dev.output()
            assert time.monotonic() < deadline, dev.output()
            time.sleep(0.1)
        yield DevShops(
            snowboards=Storefront(
                "Snowboards", f"http://localhost:{demo}", f"http://localhost:{bff}", f"http://localhost:{shop}"
            ),
            surfboards=Storefront(
                "Surfboards", f"http://127.0.0.1:{demo}", f"http://127.0.0.1:{bff}", f"http://127.0.0.1:{shop2}"
            ),
        )


@pytest.fixture
def context(browser: Browser, make_dev_shops: DevShops) -> Iterator[BrowserContext]:
    """One browser profile for both storefronts; signed out of both shops and closed after the test."""
    context = browser.new_context(**CONTEXT_DEFAULTS)
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        # So no session outlives the test in the Redis the rest of the suite shares.
        for shop in (make_dev_shops.snowboards, make_dev_shops.surfboards):
            logout = f"{shop.bff_url}/auth/logout"
            context.request.post(logout, headers={**CSRF, "Accept": "application/json"}, max_redirects=0)
        context.close()


@pytest.fixture
def csp_violations() -> Iterator[list[str]]:
    """What any tab of the test reported as CSP violations: the demo must work under each shop's policy."""
    violations: list[str] = []
    yield violations
    assert not violations, violations


def open_storefront(context: BrowserContext, shop: Storefront, violations: list[str]) -> Page:
    page = watch_csp(context.new_page(), violations)
    page.goto(f"{shop.url}/")
    expect(page.get_by_test_id("shop-name")).to_have_text(shop.name)
    return page


def sign_in(page: Page, shop: Storefront, email: str) -> None:
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{shop.shop_url}/**")
    page.fill("#email", email)
    page.click("#login-submit")
    page.wait_for_url(f"{shop.url}/")
    expect(page.get_by_test_id("customer-email")).to_have_text(email)


def test_each_storefront_says_which_shop_it_is(
    context: BrowserContext, make_dev_shops: DevShops, csp_violations: list[str]
) -> None:
    snowboards = open_storefront(context, make_dev_shops.snowboards, csp_violations)
    surfboards = open_storefront(context, make_dev_shops.surfboards, csp_violations)

    assert (snowboards.title(), surfboards.title()) == ("Your account · Snowboards", "Your account · Surfboards")


def test_signing_in_at_one_shop_leaves_the_other_shop_signed_out(
    context: BrowserContext, make_dev_shops: DevShops, csp_violations: list[str]
) -> None:
    snowboards = open_storefront(context, make_dev_shops.snowboards, csp_violations)
    sign_in(snowboards, make_dev_shops.snowboards, SNOWBOARDS_CUSTOMER)

    surfboards = open_storefront(context, make_dev_shops.surfboards, csp_violations)
    expect(surfboards.get_by_test_id("signed-out")).to_be_visible()


def test_one_browser_is_a_different_customer_at_each_shop(
    context: BrowserContext, make_dev_shops: DevShops, csp_violations: list[str]
) -> None:
    snowboards = open_storefront(context, make_dev_shops.snowboards, csp_violations)
    sign_in(snowboards, make_dev_shops.snowboards, SNOWBOARDS_CUSTOMER)
    surfboards = open_storefront(context, make_dev_shops.surfboards, csp_violations)
    sign_in(surfboards, make_dev_shops.surfboards, SURFBOARDS_CUSTOMER)

    snowboards.reload()
    # Each page: its own shop's name over its own customer.
    for page, shop, email in (
        (snowboards, make_dev_shops.snowboards, SNOWBOARDS_CUSTOMER),
        (surfboards, make_dev_shops.surfboards, SURFBOARDS_CUSTOMER),
    ):
        expect(page.get_by_test_id("shop-name")).to_have_text(shop.name)
        expect(page.get_by_test_id("customer-email")).to_have_text(email)


def test_signing_out_of_one_shop_leaves_the_other_signed_in(
    context: BrowserContext, make_dev_shops: DevShops, csp_violations: list[str]
) -> None:
    snowboards = open_storefront(context, make_dev_shops.snowboards, csp_violations)
    sign_in(snowboards, make_dev_shops.snowboards, SNOWBOARDS_CUSTOMER)
    surfboards = open_storefront(context, make_dev_shops.surfboards, csp_violations)
    sign_in(surfboards, make_dev_shops.surfboards, SURFBOARDS_CUSTOMER)

    snowboards.get_by_test_id("sign-out").click()
    snowboards.wait_for_url(f"{make_dev_shops.snowboards.url}/")
    expect(snowboards.get_by_test_id("signed-out-notice")).to_be_visible()

    surfboards.reload()
    expect(surfboards.get_by_test_id("customer-email")).to_have_text(SURFBOARDS_CUSTOMER)
