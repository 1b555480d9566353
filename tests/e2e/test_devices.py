"""The account page's "Your devices" in headless Chromium: one customer on two browser profiles ("devices"),
each with its own User-Agent so the BFF's device summaries tell them apart, and one signing the other out."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, Route, expect

from tests.e2e.conftest import CHROMIUM, Stack, watch_csp
from tests.e2e.test_storefront import session_status, sign_in

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed: `apt-get install chromium` (Debian/Ubuntu) to run the browser tests",
)

# A customer of this run only: the API tests sign in the helpers' default customer on the same Redis, and her
# sessions from them would show up in this list.
EMAIL = f"devices-{uuid.uuid4().hex[:12]}@example.com"
LAPTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
# en-US in UTC, as the contexts are set up: "Signed in Jan 5, 2027, 10:04 AM" (ICU may put U+202F before AM).
SIGNED_IN_AT = r"^Signed in [A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s[AP]M"
Screenshot = Callable[..., Path]


@pytest.fixture
def context_options() -> dict[str, Any]:
    """Device A, the `page` fixture's profile: a laptop."""
    return {"user_agent": LAPTOP}


@pytest.fixture
def phone(new_context: Callable[..., BrowserContext], csp_violations: list[str]) -> Page:
    """Device B: a second profile with a phone's User-Agent, its CSP violations failing the test like the page's."""
    return watch_csp(new_context(user_agent=PHONE, viewport={"width": 390, "height": 844}).new_page(), csp_violations)


def this_device(page: Page) -> Locator:
    return page.get_by_test_id("device").filter(has=page.get_by_test_id("device-current"))


def other_devices(page: Page) -> Locator:
    return page.get_by_test_id("device").filter(has_not=page.get_by_test_id("device-current"))


def test_one_device_signs_another_out(
    page: Page, phone: Page, context: BrowserContext, stack: Stack, screenshot: Screenshot
) -> None:
    sign_in(phone, stack, EMAIL)
    sign_in(page, stack, EMAIL)

    # Newest first, this browser marked, each named from its User-Agent at login.
    expect(page.get_by_test_id("device")).to_have_count(2)
    expect(page.get_by_test_id("devices-count")).to_have_text("2 devices")
    expect(page.get_by_test_id("device-name")).to_have_text(["Chrome on Windows", "Mobile Safari on iOS"])
    expect(this_device(page).get_by_test_id("device-name")).to_have_text("Chrome on Windows")
    expect(this_device(page).get_by_test_id("device-times")).to_have_text(re.compile(f"{SIGNED_IN_AT} · active now$"))
    other = other_devices(page)
    expect(other.get_by_test_id("device-name")).to_have_text("Mobile Safari on iOS")
    # last_used_at is floored to the minute, so a phone used seconds ago may read as a minute ago.
    last_active = re.compile(f"{SIGNED_IN_AT} · last active (just now|1 minute ago)$")
    expect(other.get_by_test_id("device-times")).to_have_text(last_active)
    # "This device" is per browser: the phone sees itself marked.
    expect(this_device(phone).get_by_test_id("device-name")).to_have_text("Mobile Safari on iOS")
    screenshot("14-devices")

    other.get_by_test_id("device-sign-out").click()
    expect(page.get_by_test_id("device")).to_have_count(1)
    expect(page.get_by_test_id("devices-count")).to_have_text("1 device")
    expect(this_device(page)).to_have_count(1)
    expect(page.get_by_test_id("devices-error")).to_be_hidden()

    # The phone finds out on its next request: its session is gone, so it is signed out.
    phone.reload()
    expect(phone.get_by_test_id("session-expired")).to_be_visible()
    expect(phone.get_by_test_id("signed-out")).to_be_visible()
    expect(phone.get_by_test_id("signed-in")).to_be_hidden()
    screenshot("15-device-signed-out-elsewhere", of=phone)
    assert session_status(phone.context, stack) == {"authenticated": False}

    # The laptop is untouched.
    page.reload()
    expect(page.get_by_test_id("signed-in")).to_be_visible()
    expect(page.get_by_test_id("device")).to_have_count(1)
    expect(this_device(page).get_by_test_id("device-name")).to_have_text("Chrome on Windows")
    assert session_status(context, stack)["authenticated"] is True


def test_sign_out_on_this_device_is_the_ordinary_sign_out(page: Page, context: BrowserContext, stack: Stack) -> None:
    sign_in(page, stack, EMAIL)
    this_device(page).get_by_test_id("device-sign-out").click()

    # The header's form post: BFF, the shop's logout, back to the storefront.
    page.wait_for_url(f"{stack.demo_url}/")
    expect(page.get_by_test_id("signed-out-notice")).to_be_visible()
    assert stack.stats()["logouts"] == 1
    assert session_status(context, stack) == {"authenticated": False}


def test_a_device_already_signed_out_just_leaves_the_list(page: Page, phone: Page, stack: Stack) -> None:
    sign_in(phone, stack, EMAIL)
    sign_in(page, stack, EMAIL)
    expect(page.get_by_test_id("device")).to_have_count(2)

    # The phone signs itself out while the laptop's list still shows it: ending it there is a 404, not an error.
    phone.get_by_test_id("sign-out").click()
    phone.wait_for_url(f"{stack.demo_url}/")
    expect(phone.get_by_test_id("signed-out-notice")).to_be_visible()
    other_devices(page).get_by_test_id("device-sign-out").click()
    expect(page.get_by_test_id("device")).to_have_count(1)
    expect(page.get_by_test_id("devices-error")).to_be_hidden()
    expect(page.get_by_test_id("signed-in")).to_be_visible()


def test_a_failing_device_list_shows_its_error_in_the_card(page: Page, stack: Stack) -> None:
    sign_in(page, stack, EMAIL)

    def unavailable(route: Route) -> None:
        if route.request.method != "GET":  # a CORS preflight goes through untouched
            route.continue_()
            return
        # The BFF's own response (so its CORS headers stay), as a 503 in its error shape.
        response = route.fetch()
        body = '{"error": "session_store_unavailable", "detail": "The session store is unavailable."}'
        route.fulfill(response=response, status=503, body=body)

    page.route(f"{stack.bff_url}/auth/sessions", unavailable)
    page.reload()
    error = page.get_by_test_id("devices-error")
    expect(error).to_have_text("The session store is unavailable. (session_store_unavailable)")
    expect(page.get_by_test_id("device")).to_have_count(0)
    expect(page.get_by_test_id("signed-in")).to_be_visible()  # the rest of the account still shows
