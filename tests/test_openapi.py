"""/docs works offline and the OpenAPI document is honest: the hot path, the catalog's errors, no 422 for
validation (issue 15, part 4)."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from playwright.sync_api import Route, sync_playwright

from app.errors import catalog
from devkit.redis_server import free_port
from tests.helpers import CSRF, ServerThread, Shop, create_app, gql, make_settings, running_bff

CHROMIUM = shutil.which("chromium")
# As in tests/e2e: no network beyond loopback from the browser itself.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture
async def dev_bff(shop: Shop, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_bff(make_settings(shop.url, redis_url, bff_dev_mode=True)) as client:
        yield client


@pytest.fixture
async def document(dev_bff: httpx.AsyncClient) -> dict[str, Any]:
    response = await dev_bff.get("/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def documented_codes(operation: dict[str, Any], status: int) -> list[str]:
    response = operation["responses"].get(str(status))
    if response is None:
        return []
    codes: list[str] = response["content"]["application/json"]["schema"]["properties"]["error"]["enum"]
    return codes


async def test_docs_load_only_same_origin_assets(dev_bff: httpx.AsyncClient) -> None:
    page = await dev_bff.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = _Links()
    links.feed(page.text)
    assert links.inline_scripts == 0
    assert links.urls and all(url.startswith("/") and not url.startswith("//") for url in links.urls), links.urls
    for url in links.urls:
        asset = await dev_bff.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(ASSET_TYPES[url[url.rindex(".") :]]), url
        assert asset.content
    # The browser is allowed our own files and nothing else: no CDN, no inline script.
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp
    assert "http" not in csp and "*" not in csp and "'unsafe-eval'" not in csp
    assert "SwaggerUIBundle" in (await dev_bff.get("/docs/assets/swagger-ui-bundle.js")).text
    assert "/openapi.json" in (await dev_bff.get("/docs/assets/init.js")).text


async def test_docs_stay_off_outside_development_mode(bff: httpx.AsyncClient) -> None:
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
        response = await bff.get(path)
        assert response.status_code == 404 and response.json()["error"] == "not_found", path


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_the_document_describes_post_graphql(document: dict[str, Any]) -> None:
    operation = document["paths"]["/graphql"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"query", "variables", "operationName"} and body["required"] == ["query"]
    where = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert {("header", "X-CSRF"), ("cookie", "bff_session")} <= where
    assert "200" in operation["responses"]
    assert documented_codes(operation, 403) == ["csrf_failed", "operation_not_allowed"]
    assert {"not_authenticated", "session_expired"} <= set(documented_codes(operation, 401))


def test_no_validation_422_is_promised(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and "ValidationError" not in text
    for method, path, operation in operations(document):
        # The one real 422: Shopify refusing a cart change.
        assert documented_codes(operation, 422) in ([], ["cart_rejected"]), (method, path)
    login = document["paths"]["/auth/login"]["get"]
    assert "invalid_request" in documented_codes(login, 400)  # what a bad query parameter gets instead


def test_every_documented_code_is_in_the_catalog_with_its_status(document: dict[str, Any]) -> None:
    known = catalog()
    named: set[str] = set()
    for method, path, operation in operations(document):
        assert "500" in operation["responses"], (method, path)
        for status in operation["responses"]:
            if not status.startswith(("4", "5")):
                continue
            for code in documented_codes(operation, int(status)):
                assert code in known and known[code][0] == int(status), (method, path, status, code)
                named.add(code)
    pipeline = {code for code in known if f"`{known[code][0]} {code}`" in document["info"]["description"]}
    assert named | pipeline == set(known), "every catalog code is documented somewhere"


async def test_the_errors_the_bff_answers_are_the_documented_ones(
    dev_bff: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    paths = document["paths"]
    tried = [
        ("post", "/graphql", await gql(dev_bff, headers={"X-CSRF": "0"})),
        ("post", "/graphql", await gql(dev_bff)),
        ("get", "/auth/login", await dev_bff.get("/auth/login", params={"return_to": "https://evil.example/"})),
        ("get", "/auth/login", await dev_bff.get("/auth/login", params={"prompt": "x" * 30})),
        ("get", "/auth/callback", await dev_bff.get("/auth/callback", params={"state": "made-up", "code": "x"})),
        ("get", "/auth/sessions", await dev_bff.get("/auth/sessions")),
        ("post", "/auth/logout", await dev_bff.post("/auth/logout")),
        ("post", "/auth/sessions/{handle}/end", await dev_bff.post("/auth/sessions/abc/end", headers=CSRF)),
        ("post", "/webhooks/shopify", await dev_bff.post("/webhooks/shopify", content=b"{}")),
        ("post", "/cart/checkout", await dev_bff.post("/cart/checkout", headers=CSRF, json={})),
    ]
    for method, path, response in tried:
        assert response.status_code >= 400, (path, response.text)
        code = response.json()["error"]
        assert code in documented_codes(paths[path][method], response.status_code), (path, response.status_code, code)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_swagger_ui_renders_in_a_browser_with_no_request_off_the_bff(shop_server: ServerThread, redis_url: str) -> None:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = make_settings(shop_server.url, redis_url, bff_dev_mode=True, bff_public_url=origin)
    server = ServerThread(create_app(settings), port, lifespan=True).start()
    off_origin: list[str] = []
    problems: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page()

                def only_the_bff(route: Route) -> None:
                    if route.request.url.startswith(f"{origin}/"):
                        route.continue_()
                    else:  # offline: nothing else may even be asked for
                        off_origin.append(route.request.url)
                        route.abort()

                page.route("**/*", only_the_bff)
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.goto(f"{origin}/docs")
                page.get_by_text("/graphql", exact=True).first.wait_for(timeout=10_000)
                assert page.get_by_text("/auth/login", exact=True).count() == 1
            finally:
                browser.close()
    finally:
        server.stop()
    assert not off_origin, off_origin
    assert not problems, problems  # CSP violations are console errors too
