"""The demo storefront in headless Chromium, against the real BFF, Redis and the Shopify stand-in.

Each test drives the page as a customer would (sign in at the stand-in's login page, read orders, edit the
address, sign out) and saves a screenshot of every step to test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from app.store.sessions import session_key
from mock_shopify.customers import Customer, seed_customer
from tests.e2e.conftest import CHROMIUM, REPORT_CSP_VIOLATIONS, Stack, is_csp_violation

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed: `apt-get install chromium` (Debian/Ubuntu) to run the browser tests",
)

EMAIL = "joan.clarke@example.com"  # seeded with three orders; no other test signs her in
Screenshot = Callable[[str], Path]


def seeded(stack: Stack, email: str = EMAIL) -> Customer:
    """The customer the stand-in creates for `email` on first login (seeded deterministically)."""
    return seed_customer(email, base_url=stack.shop_url)


def cad(amount: Any) -> str:
    """What `Intl.NumberFormat("en-US", {style: "currency", currency: "CAD"})` prints."""
    return f"CA${amount:,.2f}"


def sign_in(page: Page, stack: Stack, email: str = EMAIL) -> None:
    """From wherever the page is: the demo's Sign in, the stand-in's login form, back to the account page."""
    if not page.url.startswith(stack.shop_url):
        page.goto(f"{stack.demo_url}/")
        page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{stack.shop_url}/**")
    page.fill("#email", email)
    page.click("#login-submit")
    page.wait_for_url(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-in")).to_be_visible()


def session_status(context: BrowserContext, stack: Stack) -> dict[str, Any]:
    """GET /auth/session with the browser's cookies."""
    status: dict[str, Any] = context.request.get(f"{stack.bff_url}/auth/session").json()
    return status


def test_sign_in_shows_profile_and_orders(
    page: Page, context: BrowserContext, stack: Stack, screenshot: Screenshot
) -> None:
    page.goto(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-out")).to_be_visible()
    expect(page.get_by_test_id("loading")).to_be_hidden()
    expect(page.get_by_test_id("account-menu")).to_be_hidden()
    screenshot("01-signed-out")

    # The language choice travels as `locale` through the BFF to the shop's login page.
    page.select_option("#locale", "fr")
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{stack.shop_url}/**")
    expect(page.locator("#locale")).to_have_text("fr")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    screenshot("02-shop-login")
    sign_in(page, stack)

    customer = seeded(stack)
    expect(page.get_by_test_id("customer-name")).to_have_text("Joan Clarke")
    expect(page.get_by_test_id("customer-email")).to_have_text(EMAIL)
    expect(page.get_by_test_id("header-name")).to_have_text("Joan Clarke")
    expect(page.get_by_test_id("default-address")).to_contain_text(customer.addresses[0].address1 or "")

    # Newest first, each with its total (MoneyV2 through Intl.NumberFormat) and its line items.
    orders = sorted(customer.orders, key=lambda o: o.processed_at, reverse=True)
    cards = page.get_by_test_id("order")
    expect(cards).to_have_count(len(orders))
    expect(page.get_by_test_id("orders-count")).to_have_text(f"{len(orders)} orders")
    for card, order in zip(cards.all(), orders, strict=True):
        expect(card.get_by_test_id("order-name")).to_have_text(f"Order #{order.number}")
        expect(card.get_by_test_id("order-total")).to_have_text(cad(order.total_price))
        items = card.get_by_test_id("line-item")
        expect(items).to_have_count(len(order.line_items))
        for row, item in zip(items.all(), order.line_items, strict=True):
            expect(row).to_contain_text(item.title)
            expect(row).to_contain_text(f"{item.quantity} \u00d7 {cad(item.price)}")  # 3 times CA$18.50
            expect(row).to_contain_text(cad(item.price * item.quantity))
    screenshot("03-signed-in")

    # The browser holds only the HttpOnly session cookie: nothing a script could read or leak.
    assert page.evaluate("document.cookie") == ""
    assert "token" not in page.evaluate("JSON.stringify({...localStorage, ...sessionStorage})")
    assert session_status(context, stack)["customer"]["email"] == EMAIL


def test_loading_state_shows_while_the_account_loads(page: Page, stack: Stack, screenshot: Screenshot) -> None:
    sign_in(page, stack)
    stack.knob("delay_graphql", seconds=1)
    page.reload()
    expect(page.get_by_test_id("loading")).to_be_visible()
    expect(page.get_by_test_id("loading")).to_contain_text("Loading your account")
    screenshot("04-loading")
    expect(page.get_by_test_id("signed-in")).to_be_visible()
    expect(page.get_by_test_id("loading")).to_be_hidden()


def test_edit_default_address_shows_user_errors_then_saves(page: Page, stack: Stack, screenshot: Screenshot) -> None:
    sign_in(page, stack)
    home = seeded(stack).addresses[0]
    page.get_by_test_id("address-edit").click()
    form = page.get_by_test_id("address-form")
    expect(form).to_be_visible()
    expect(page.locator("#address1")).to_have_value(home.address1 or "")
    expect(page.locator("#territoryCode")).to_have_value("CA")

    page.fill("#territoryCode", "ZZ")
    page.get_by_test_id("address-save").click()
    errors = page.get_by_test_id("address-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("Country is invalid.")
    expect(errors).to_contain_text("INVALID_TERRITORY_CODE")
    expect(page.locator("#territoryCode")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("address-success")).to_be_hidden()
    screenshot("05-address-user-error")

    page.fill("#address1", "500 King St W")
    page.fill("#address2", "Suite 12")
    page.fill("#territoryCode", "CA")
    page.get_by_test_id("address-save").click()
    expect(page.get_by_test_id("address-success")).to_be_visible()
    expect(form).to_be_hidden()
    expect(page.get_by_test_id("default-address")).to_contain_text("500 King St W")
    expect(page.get_by_test_id("default-address")).to_contain_text("Suite 12")
    screenshot("06-address-saved")

    # Saved at the shop, not just on the page.
    stored = stack.http.get(f"{stack.shop_url}/_mock/customers/{EMAIL}").json()
    assert stored["addresses"][0]["address1"] == "500 King St W"
    page.reload()
    expect(page.get_by_test_id("default-address")).to_contain_text("500 King St W")


def test_sign_out_lands_on_the_logout_url_signed_out(
    page: Page, context: BrowserContext, stack: Stack, screenshot: Screenshot
) -> None:
    sign_in(page, stack)
    page.get_by_test_id("sign-out").click()

    # BFF (303) -> the shop's logout -> BFF_POST_LOGOUT_REDIRECT_URL, the storefront's front page.
    page.wait_for_url(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-out")).to_be_visible()
    expect(page.get_by_test_id("signed-out-notice")).to_be_visible()
    expect(page.get_by_test_id("account-menu")).to_be_hidden()
    screenshot("07-signed-out")
    assert stack.stats()["logouts"] == 1
    assert session_status(context, stack) == {"authenticated": False}


def test_session_revoked_at_the_shop_leads_back_to_sign_in(page: Page, stack: Stack, screenshot: Screenshot) -> None:
    sign_in(page, stack)
    # The access token dies and Shopify refuses the refresh token (invalid_grant): the BFF ends the session.
    stack.knob("revoke_refresh_tokens")
    stack.knob("expire_access_tokens")
    page.reload()

    expired = page.get_by_test_id("session-expired")
    expect(expired).to_be_visible()
    expect(expired).to_contain_text("Your session has expired")
    expect(page.get_by_test_id("signed-in")).to_be_hidden()
    # One way on: the signed-out card's Sign in (with its language picker), not a second button in the notice.
    sign_in_buttons = page.get_by_role("button", name=re.compile("sign in", re.I)).or_(
        page.get_by_role("link", name=re.compile("sign in", re.I))
    )
    expect(sign_in_buttons).to_have_count(1)
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    screenshot("08-session-expired")

    page.get_by_test_id("sign-in").click()
    sign_in(page, stack)
    expect(page.get_by_test_id("session-expired")).to_be_hidden()
    expect(page.get_by_test_id("customer-email")).to_have_text(EMAIL)


def test_session_ended_mid_page_shows_expiry_on_the_next_action(
    page: Page, context: BrowserContext, stack: Stack, screenshot: Screenshot
) -> None:
    sign_in(page, stack)
    page.get_by_test_id("address-edit").click()

    # The session ends server-side while the page is open (idle timeout, or an operator ending it).
    cookie = next(c for c in context.cookies(stack.bff_url) if c["name"] == "bff_session")
    sid = cookie["value"].rsplit(".", 1)[0]  # an itsdangerous-signed opaque id: "<sid>.<signature>"
    assert stack.redis.delete(session_key(sid)) == 1

    page.fill("#address1", "1 Front St W")
    page.get_by_test_id("address-save").click()
    expect(page.get_by_test_id("session-expired")).to_be_visible()
    expect(page.get_by_test_id("address-form")).to_be_hidden()
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    screenshot("09-session-expired-mid-action")


def test_login_error_from_the_callback_is_shown(page: Page, stack: Stack, screenshot: Screenshot) -> None:
    # A stale or forged callback: the BFF sends the browser back to the storefront with ?login_error=.
    page.goto(f"{stack.bff_url}/auth/callback?state={'x' * 43}&code=stale")
    page.wait_for_url(f"{stack.demo_url}/**")
    alert = page.get_by_test_id("login-error")
    expect(alert).to_be_visible()
    expect(page.get_by_test_id("login-error-code")).to_have_text("invalid_state")
    expect(alert).to_contain_text("already used or has expired")
    expect(page.get_by_test_id("sign-in")).to_be_visible()
    assert "login_error" not in page.url  # shown once, then dropped from the address bar
    screenshot("10-login-error")


def test_customer_data_is_rendered_as_text_never_html(page: Page, stack: Stack) -> None:
    sign_in(page, stack)
    payload = '<img src=x onerror="window.__pwned = 1">'

    def tamper(route: Route) -> None:
        # Shopify's answer, with markup where names and titles go: the page must show it, not run it.
        response = route.fetch()
        body = response.json()
        customer = body["data"]["customer"]
        customer["displayName"] = payload
        customer["orders"]["nodes"][0]["lineItems"]["nodes"][0]["title"] = payload
        route.fulfill(response=response, body=json.dumps(body))

    page.route(f"{stack.bff_url}/graphql", tamper)
    page.reload()
    expect(page.get_by_test_id("customer-name")).to_have_text(payload)
    expect(page.get_by_test_id("line-item").first).to_contain_text(payload)
    assert page.locator("#signed-in img").count() == 0
    assert page.evaluate("window.__pwned") is None


def csp_directives(policy: str) -> dict[str, list[str]]:
    """`"default-src 'none'; connect-src 'self' x"` as `{"default-src": ["'none'"], "connect-src": ["'self'", "x"]}`."""
    parsed = (directive.split() for directive in policy.split(";") if directive.strip())
    return {name: sources for name, *sources in parsed}


def test_the_storefront_sends_a_strict_csp_and_works_under_it(
    page: Page, stack: Stack, csp_violations: list[str]
) -> None:
    response = page.goto(f"{stack.demo_url}/")
    assert response is not None
    headers = response.headers
    policy = headers["content-security-policy"]
    assert "unsafe" not in policy  # no 'unsafe-inline', 'unsafe-eval' or 'unsafe-hashes'
    assert csp_directives(policy) == {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        # 'self': the stored .graphql documents; the BFF: /graphql; the shop: its Storefront API.
        "connect-src": ["'self'", stack.bff_url, stack.shop_url],
        "form-action": ["'self'", stack.bff_url, stack.shop_url],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin"

    # Every script, style, fetch and form of the page, under that policy: sign in, edit, sign out.
    sign_in(page, stack)
    page.get_by_test_id("address-edit").click()
    page.fill("#address1", "1 Yonge St")
    page.get_by_test_id("address-save").click()
    expect(page.get_by_test_id("address-success")).to_be_visible()
    page.get_by_test_id("sign-out").click()
    page.wait_for_url(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-out-notice")).to_be_visible()
    assert csp_violations == []


def test_the_csp_blocks_inline_script_and_the_violation_is_seen(context: BrowserContext, stack: Stack) -> None:
    # The check above is only as good as its listener: an inline script must be refused, and reported.
    probe = context.new_page()
    probe.add_init_script(REPORT_CSP_VIOLATIONS)
    probe.goto(f"{stack.demo_url}/")
    expect(probe.get_by_test_id("signed-out")).to_be_visible()
    with probe.expect_console_message(is_csp_violation) as reported:
        probe.evaluate("""() => {
            const script = document.createElement("script");
            script.textContent = "window.__inline = 1";
            document.body.append(script);
        }""")
    assert "script-src" in reported.value.text
    assert probe.evaluate("window.__inline") is None
