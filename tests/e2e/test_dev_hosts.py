"""`make dev` itself (`python -m devkit.dev`, real processes) in headless Chromium: the demo works opened at
`localhost` and at `127.0.0.1`, and sign-in and sign-out come back to the host the customer started on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from devkit.redis_server import free_port
from tests.e2e.conftest import CHROMIUM, CONTEXT_DEFAULTS, watch_csp
from tests.e2e.test_storefront import EMAIL
from tests.helpers import Process, python

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed: `apt-get install chromium` (Debian/Ubuntu) to run the browser tests",
)


@pytest.fixture(scope="module")
def make_dev(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`make dev` on free ports, with the suite's Redis; its DEV_* variables."""
    workdir = tmp_path_factory.mktemp("make-dev")
    env = {
        "DEV_BFF_PORT": str(free_port()),
        "DEV_BFF_IP_PORT": str(free_port()),
        "DEV_SHOP_PORT": str(free_port()),
        "DEV_DEMO_PORT": str(free_port()),
        "DEV_STATE_DIR": str(workdir / "state"),
        "REDIS_URL": redis_url,
        "NO_COLOR": "1",
    }
    dev = Process("make-dev", python("-m", "devkit.dev"), port=int(env["DEV_DEMO_PORT"]), workdir=workdir, env=env)
    with dev:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops everything" not in dev.output():
            assert dev.proc.poll() is None, dev.output()
            assert time.monotonic() < deadline, dev.output()
            time.sleep(0.1)
        yield env


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_the_demo_signs_in_and_out_on_the_host_it_was_opened_on(
    browser: Browser, make_dev: dict[str, str], host: str
) -> None:
    demo = f"http://{host}:{make_dev['DEV_DEMO_PORT']}"
    context = browser.new_context(**CONTEXT_DEFAULTS)
    context.set_default_timeout(10_000)
    violations: list[str] = []
    page = watch_csp(context.new_page(), violations)
    try:
        page.goto(f"{demo}/")
        page.get_by_test_id("sign-in").click()
        page.wait_for_url(f"http://localhost:{make_dev['DEV_SHOP_PORT']}/**")
        page.fill("#email", EMAIL)
        page.click("#login-submit")

        page.wait_for_url(f"{demo}/")
        expect(page.get_by_test_id("signed-in")).to_be_visible()
        expect(page.get_by_test_id("customer-email")).to_have_text(EMAIL)
        # The session cookie is on the page's own host name, so its calls carry it.
        assert "bff_session" in {c["name"] for c in context.cookies(f"http://{host}/")}

        page.get_by_test_id("sign-out").click()
        page.wait_for_url(f"{demo}/")
        expect(page.get_by_test_id("signed-out-notice")).to_be_visible()
        assert not violations, violations
    finally:
        context.close()
