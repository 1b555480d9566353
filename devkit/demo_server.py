"""Serve the demo storefront (`demo/`) on its own origin, with `/config.js` pointing at the BFF."""

from __future__ import annotations

import argparse
import json
import os
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"


def origin(url: str) -> str:
    """`http://localhost:8000/any/path` -> `http://localhost:8000`, as a CSP source."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(bff_url: str, shop_url: str) -> str:
    """Only the page's own files run or style it; it fetches from itself and the BFF; it posts to the BFF."""
    bff, shop = origin(bff_url), origin(shop_url)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            # 'self' for the stored .graphql documents, the BFF for /graphql.
            f"connect-src 'self' {bff}",
            # Chromium checks every hop of the sign-out post: the BFF, the shop's logout, back here.
            f"form-action 'self' {bff} {shop}",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


class DemoHandler(SimpleHTTPRequestHandler):
    """Static files plus a generated config script; no caching, so edits show on reload."""

    bff_url = "http://localhost:8000"
    shop_url = "http://localhost:9000"

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/config.js":
            body = f"export const BFF_URL = {json.dumps(self.bff_url)};\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", content_security_policy(self.bff_url, self.shop_url))
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
        "--shop-url",
        default=os.environ.get("DEMO_SHOP_URL", DemoHandler.shop_url),
        help="the shop the BFF signs out at (the CSP's form-action allows it)",
    )
    args = parser.parse_args()
    DemoHandler.bff_url = args.bff_url
    DemoHandler.shop_url = args.shop_url
    handler = partial(DemoHandler, directory=str(DEMO_DIR))
    with ThreadingHTTPServer((args.host, args.port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
