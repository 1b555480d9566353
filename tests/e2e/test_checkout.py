"""Logged-in checkout in headless Chromium: a cart made by the page, checked out through the BFF."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import CHROMIUM, Stack
from tests.e2e.test_storefront import sign_in

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed: `apt-get install chromium` (Debian/Ubuntu) to run the browser tests",
)

EMAIL = "mary.somerville@example.com"  # no other browser test signs her in


def test_checkout_shows_the_customer_and_after_sign_out_a_guest(
    page: Page, stack: Stack, screenshot: Callable[[str], Path]
) -> None:
    sign_in(page, stack, EMAIL)
    expect(page.get_by_test_id("shop")).to_be_visible()
    page.get_by_test_id("add-to-cart").first.click()
    expect(page.get_by_test_id("cart-line")).to_have_count(1)
    expect(page.get_by_test_id("cart-linked")).to_be_visible()  # the BFF put her on the cart
    screenshot("11-cart-signed-in")

    page.get_by_test_id("checkout").click()
    page.wait_for_url(f"{stack.shop_url}/cart/c/**")
    expect(page.get_by_test_id("checkout-identity")).to_have_text(f"Checking out as {EMAIL}")
    expect(page.get_by_test_id("checkout-line")).to_have_count(1)
    screenshot("12-checkout-as-customer")

    page.goto(f"{stack.demo_url}/")
    page.get_by_test_id("sign-out").click()
    page.wait_for_url(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-out")).to_be_visible()
    expect(page.get_by_test_id("cart-line")).to_have_count(1)  # the cart is the browser's; it stays
    expect(page.get_by_test_id("cart-linked")).to_be_hidden()

    page.get_by_test_id("checkout").click()
    page.wait_for_url(f"{stack.shop_url}/cart/c/**")
    expect(page.get_by_test_id("checkout-identity")).to_have_text("Guest checkout")
    screenshot("13-checkout-as-guest")
