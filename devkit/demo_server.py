"""Serve the demo storefront (`demo/`) on its own origin, with `/config.js` pointing at the BFF."""

from __future__ import annotations

import argparse
import json
import os
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"


class DemoHandler(SimpleHTTPRequestHandler):
    """Static files plus a generated config script; no caching, so edits show on reload."""

    bff_url = "http://localhost:8000"

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
        self.send_header("X-Content-Type-Options", "nosniff")
        # Not no-referrer: under it browsers send `Origin: null` on the sign-out form post, which the
        # BFF (rightly) refuses as CSRF proof.
        self.send_header("Referrer-Policy", "strict-origin-when-cross-origin")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--bff-url", default=os.environ.get("DEMO_BFF_URL", "http://localhost:8000"))
    args = parser.parse_args()
    DemoHandler.bff_url = args.bff_url
    handler = partial(DemoHandler, directory=str(DEMO_DIR))
    with ThreadingHTTPServer((args.host, args.port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
