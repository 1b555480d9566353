"""Serve the demo storefront (`demo/`) on its own origin, with `/config.js` pointing at the BFF and the shop.

The page may be opened under more than one host name (`make dev`: localhost and 127.0.0.1). Browsers keep
cookies per host name, so the page must talk to a BFF on the name it was loaded from: `/config.js` and the
CSP name the configured BFF whose host matches the request's Host header, else the first one. Host only
picks among configured URLs; no URL is ever built from it.

Each host name may also be a shop of its own (`make dev-shops`): `DEMO_SITES` lists, per site, its BFF URL,
its shop and the shop's public Storefront token, and the page gets the site whose BFF is on its host name.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from mock_shopify.config import DEFAULT_STOREFRONT_PUBLIC_TOKEN

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
STOREFRONT_API_VERSION = "2026-10"


def origin(url: str) -> str:
    """`http://localhost:8000/any/path` -> `http://localhost:8000`, as a CSP source."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(bff_url: str, shop_url: str) -> str:
    """Only the page's own files run or style it; it fetches from itself, the BFF and the shop's Storefront
    API; it posts to the BFF."""
    bff, shop = origin(bff_url), origin(shop_url)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            # 'self' for the stored .graphql documents, the BFF for /graphql, the shop for its Storefront API.
            f"connect-src 'self' {bff} {shop}",
            # Chromium checks every hop of a form post: sign-out's (the BFF, the shop's logout, back here) and
            # checkout's (the BFF, then the shop's checkout page).
            f"form-action 'self' {bff} {shop}",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


@dataclass(frozen=True)
class DemoSite:
    """What a page loaded on one host name talks to: its BFF, its shop, and the shop's public Storefront token."""

    bff_url: str
    shop_url: str
    storefront_token: str


def parse_sites(text: str) -> tuple[DemoSite, ...]:
    """DEMO_SITES: a JSON list of {"bff_url", "shop_url", "storefront_token"} objects; ValueError if not."""
    try:
        sites = tuple(DemoSite(**site) for site in json.loads(text))
    except (TypeError, ValueError) as exc:
        shape = '{"bff_url", "shop_url", "storefront_token"}'
        raise ValueError(f"DEMO_SITES must be a JSON list of {shape} objects: {exc}") from None
    if not sites:
        raise ValueError("DEMO_SITES lists no site")
    return sites


class DemoHandler(SimpleHTTPRequestHandler):
    """Static files plus a generated config script; no caching, so edits show on reload."""

    bff_url = "http://localhost:8000"
    # More BFFs, each for pages loaded on its own host name (`--extra-bff-url`).
    extra_bff_urls: tuple[str, ...] = ()
    shop_url = "http://localhost:9000"
    # A public Storefront token is public by design: browsers send it; it reads products and makes carts.
    storefront_token = DEFAULT_STOREFRONT_PUBLIC_TOKEN
    # One site per shop (`DEMO_SITES`); when set, it replaces the four settings above.
    sites: tuple[DemoSite, ...] = ()

    def configured_sites(self) -> tuple[DemoSite, ...]:
        """Every site, the default first: `sites`, or one per BFF URL, all of the one shop."""
        if self.sites:
            return self.sites
        bffs = (self.bff_url, *self.extra_bff_urls)
        return tuple(DemoSite(url, self.shop_url, self.storefront_token) for url in bffs)

    def page_site(self) -> DemoSite:
        """The site whose BFF is on the host name this request came to, else the first one."""
        host = urlsplit(f"//{self.headers.get('Host', '')}").hostname
        sites = self.configured_sites()
        return next((site for site in sites if urlsplit(site.bff_url).hostname == host), sites[0])

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        path = self.path.split("?")[0]
        # A storefront's own pages (`return_to=/account`, say) are this one page: the script reads the path.
        if "." not in path.rsplit("/", 1)[-1] and not Path(self.translate_path(path)).exists():
            self.path = "/"
        return super().send_head()

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/config.js":
            site = self.page_site()
            storefront = f"{origin(site.shop_url)}/api/{STOREFRONT_API_VERSION}/graphql.json"
            body = (
                f"export const BFF_URL = {json.dumps(site.bff_url)};\n"
                f"export const STOREFRONT_URL = {json.dumps(storefront)};\n"
                f"export const STOREFRONT_TOKEN = {json.dumps(site.storefront_token)};\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        site = self.page_site()
        self.send_header("Content-Security-Policy", content_security_policy(site.bff_url, site.shop_url))
        self.send_header("X-Content-Type-Options", "nosniff")
        # Not no-referrer: under it browsers send `Origin: null` on the sign-out form post, which the
        # BFF (rightly) refuses as CSRF proof. strict-origin never sends a path or query either, only
        # this origin (index.html says the same in a <meta>).
        self.send_header("Referrer-Policy", "strict-origin")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--bff-url", default=os.environ.get("DEMO_BFF_URL", DemoHandler.bff_url))
    parser.add_argument(
        "--extra-bff-url",
        action="append",
        metavar="URL",
        help="another BFF, for pages loaded on its host name (repeatable; or DEMO_EXTRA_BFF_URLS, comma-separated)",
    )
    parser.add_argument(
        "--shop-url",
        default=os.environ.get("DEMO_SHOP_URL", DemoHandler.shop_url),
        help="the shop: the BFF signs out there, the page calls its Storefront API (the CSP allows both)",
    )
    parser.add_argument(
        "--storefront-token",
        default=os.environ.get("DEMO_STOREFRONT_TOKEN", DemoHandler.storefront_token),
        help="the shop's public Storefront API token (default: the stand-in's)",
    )
    parser.add_argument(
        "--sites",
        default=os.environ.get("DEMO_SITES", ""),
        metavar="JSON",
        help='one site per shop, instead of the four options above: [{"bff_url": ..., "shop_url": ..., '
        '"storefront_token": ...}, ...] (or DEMO_SITES); a page gets the site whose BFF is on its host name',
    )
    args = parser.parse_args()
    if args.sites:
        try:
            DemoHandler.sites = parse_sites(args.sites)
        except ValueError as exc:
            parser.error(str(exc))
    DemoHandler.bff_url = args.bff_url
    extra = args.extra_bff_url or os.environ.get("DEMO_EXTRA_BFF_URLS", "").replace(",", " ").split()
    DemoHandler.extra_bff_urls = tuple(extra)
    DemoHandler.shop_url = args.shop_url
    DemoHandler.storefront_token = args.storefront_token
    handler = partial(DemoHandler, directory=str(DEMO_DIR))
    with ThreadingHTTPServer((args.host, args.port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
