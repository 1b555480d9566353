"""The demo's rough edges, in headless Chromium: outages never look like a sign-out, every login_error code
has its message, a favicon, the front-end guide's `return_to=/account`, and no login-binding cookie left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Response, expect

from app.errors import catalog
from tests.e2e.conftest import CHROMIUM, Stack
from tests.e2e.test_storefront import EMAIL, sign_in

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed: `apt-get install chromium` (Debian/Ubuntu) to run the browser tests",
)

Screenshot = Callable[[str], Path]
NOT_YOUR_FAULT = "It's not something you did"
UNKNOWN = "Something went wrong while signing you in."

# Every code a sign-in can come back with: /auth/callback's and, on a browser navigation, /auth/login's.
CUSTOMER_SIDE = (
    "access_denied",
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
    "invalid_state",
    "state_mismatch",
    "code_rejected",
    "invalid_request",
    "invalid_return_to",
    "authorization_failed",
    "rate_limited",
)
OUR_SIDE = (
    "invalid_client",
    "invalid_id_token",
    "token_endpoint_error",
    "token_endpoint_unavailable",
    "token_endpoint_throttled",
    "token_endpoint_timeout",
    "discovery_failed",
    "discovery_timeout",
    "session_store_unavailable",
    "login_capacity",
    "upstream_unavailable",
    "upstream_timeout",
    "internal_error",
)


def test_the_login_codes_here_are_the_catalog_s() -> None:
    codes = catalog()
    assert set(CUSTOMER_SIDE + OUR_SIDE) <= codes.keys()
    # Every 5xx a login can meet is listed (the storefront, checkout and refresh-only ones cannot occur there).
    not_at_login = {"storefront_unavailable", "storefront_error", "checkout_url_refused", "storefront_timeout"}
    assert {c for c, (status, _) in codes.items() if status >= 500} - not_at_login - {"refresh_timeout"} <= set(
        OUR_SIDE
    )


def show_login_error(page: Page, stack: Stack, code: str) -> None:
    page.goto(f"{stack.demo_url}/?login_error={code}")
    expect(page.get_by_test_id("login-error-code")).to_have_text(code)


def test_every_login_error_has_its_own_message(page: Page, stack: Stack) -> None:
    for code in CUSTOMER_SIDE:
        show_login_error(page, stack, code)
        alert = page.get_by_test_id("login-error")
        expect(alert).not_to_contain_text(UNKNOWN)
        expect(alert).not_to_contain_text(NOT_YOUR_FAULT)
        expect(alert).to_contain_text("try again")
        expect(page.get_by_test_id("sign-in")).to_be_enabled()
    for code in OUR_SIDE:
        show_login_error(page, stack, code)
        expect(page.get_by_test_id("login-error")).to_contain_text(NOT_YOUR_FAULT)


def test_wrong_client_secret_is_not_your_fault_and_offers_no_retry(
    page: Page, stack: Stack, screenshot: Screenshot
) -> None:
    # Shopify refuses the BFF's credentials at the code exchange: a misconfiguration, not the customer.
    stack.knob("fail_token", status=401, error="invalid_client", count=1)
    page.goto(f"{stack.demo_url}/")
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{stack.shop_url}/**")
    page.fill("#email", EMAIL)
    page.click("#login-submit")
    page.wait_for_url(f"{stack.demo_url}/")

    expect(page.get_by_test_id("login-error-code")).to_have_text("invalid_client")
    alert = page.get_by_test_id("login-error")
    expect(alert).to_contain_text("Sign-in isn't working on our side right now. It's not something you did")
    expect(page.get_by_test_id("sign-in")).to_be_disabled()
    expect(page.get_by_role("button", name="Try again")).to_have_count(0)
    screenshot("40-login-error-invalid-client")


def test_an_outage_keeps_the_signed_in_customer_out_of_the_signed_out_card(
    page: Page, stack: Stack, screenshot: Screenshot
) -> None:
    sign_in(page, stack)
    # The Customer Account API fails; the session is fine.
    stack.knob("fail_graphql", status=503, count=1)
    page.reload()

    expect(page.get_by_test_id("service-error")).to_be_visible()
    expect(page.get_by_test_id("account-unavailable")).to_be_visible()
    expect(page.get_by_test_id("signed-out")).to_be_hidden()
    expect(page.get_by_test_id("sign-out")).to_be_visible()  # still signed in, and can sign out
    screenshot("41-outage-signed-in")

    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_test_id("signed-in")).to_be_visible()
    expect(page.get_by_test_id("service-error")).to_be_hidden()


def test_a_degraded_session_shows_the_outage_not_a_sign_out(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    # The access token is due and Shopify's token endpoint is down: /auth/session says `degraded`.
    stack.knob("expire_access_tokens")
    stack.knob("fail_token", status=503, count=50)
    page.reload()

    expect(page.get_by_test_id("account-unavailable")).to_be_visible()
    expect(page.get_by_test_id("signed-out")).to_be_hidden()
    expect(page.get_by_test_id("sign-in")).to_be_hidden()

    stack.knob("fail_token", status=503, count=0)
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_test_id("signed-in")).to_be_visible()


def test_the_page_loads_without_a_failed_request(page: Page, stack: Stack) -> None:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-out")).to_be_visible()
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon
    response: Response | None = page.goto(f"{stack.demo_url}{icon}")
    assert response is not None and response.ok
    assert response.headers["content-type"].startswith("image/")
    # Signed out, the BFF's 401 for the account is expected; nothing else may fail (no favicon 404).
    assert [f for f in failed if not f.startswith(f"401 {stack.bff_url}/graphql")] == []


def test_the_front_end_guide_s_return_to_path_lands_on_the_demo(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.bff_url}/auth/login?return_to=/account")
    page.wait_for_url(f"{stack.shop_url}/**")
    page.fill("#email", EMAIL)
    page.click("#login-submit")
    page.wait_for_url(f"{stack.demo_url}/account")
    expect(page.get_by_test_id("signed-in")).to_be_visible()


def test_the_login_binding_cookie_is_gone_after_the_callback(page: Page, context: BrowserContext, stack: Stack) -> None:
    page.goto(f"{stack.demo_url}/")
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{stack.shop_url}/**")
    assert "bff_login" in {c["name"] for c in context.cookies(stack.bff_url)}
    page.fill("#email", EMAIL)
    page.click("#login-submit")
    page.wait_for_url(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-in")).to_be_visible()
    names = {c["name"] for c in context.cookies(stack.bff_url)}
    assert "bff_session" in names
    assert "bff_login" not in names
