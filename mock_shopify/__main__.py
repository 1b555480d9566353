"""CLI: `python -m mock_shopify --port 9000 ...`; every option also reads a `MOCK_SHOPIFY_*` variable.

`python -m mock_shopify --shops FILE` (or MOCK_SHOPIFY_SHOPS) serves every shop FILE lists from one process,
each on its own port (mock_shopify/shops_file.py); the per-shop options then come from the file only.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from mock_shopify.access_log import AccessLog
from mock_shopify.app import create_app
from mock_shopify.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_LOGOUT_URI,
    DEFAULT_REDIRECT_URI,
    DEFAULT_STOREFRONT_PRIVATE_TOKEN,
    DEFAULT_STOREFRONT_PUBLIC_TOKEN,
    MockConfig,
)
from mock_shopify.shops import create_shops_app, listen
from mock_shopify.shops_file import ShopsFileError, load_shops_file

# The variables that still apply with --shops; every other MOCK_SHOPIFY_* is one shop's option.
PROCESS_VARIABLES = ("MOCK_SHOPIFY_SHOPS", "MOCK_SHOPIFY_HOST", "MOCK_SHOPIFY_ACCESS_LOG")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MOCK_SHOPIFY_{name}", default)


def _env_list(name: str, default: str) -> list[str]:
    # Several URIs in one variable are separated by commas or whitespace.
    return _env(name, default).replace(",", " ").split()


def _add_access_log(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        default=_env("ACCESS_LOG", "1") not in {"0", "false", "no"},
        help="no line per request (MOCK_SHOPIFY_ACCESS_LOG=0): for benchmarks, where logging is a cost measured",
    )


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, MockConfig]:
    """The parsed options and the config they describe."""
    parser = argparse.ArgumentParser(
        prog="python -m mock_shopify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # Only for --help: main() takes the --shops path before this parser sees it.
    parser.add_argument("--shops", metavar="FILE", help="serve the shops FILE lists instead (TOML, see --shops -h)")
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(_env("PORT", "9000")))
    parser.add_argument("--base-url", default=_env("BASE_URL", ""), help="default: http://HOST:PORT")
    parser.add_argument("--shop-id", default=_env("SHOP_ID", "1234567890"))
    parser.add_argument(
        "--issuer", default=_env("ISSUER", ""), help="default: https://shopify.com/authentication/SHOP_ID"
    )
    parser.add_argument("--client-id", default=_env("CLIENT_ID", DEFAULT_CLIENT_ID))
    parser.add_argument("--client-secret", default=_env("CLIENT_SECRET", DEFAULT_CLIENT_SECRET))
    parser.add_argument(
        "--extra-credential",
        action="append",
        metavar="ID:SECRET",
        default=_env_list("EXTRA_CREDENTIALS", ""),
        help="another valid credential of the same app, e.g. during secret rotation (repeatable)",
    )
    parser.add_argument("--redirect-uri", action="append", metavar="URL")
    parser.add_argument("--logout-uri", action="append", metavar="URL")
    parser.add_argument("--api-version", default=_env("API_VERSION", "2026-10"))
    parser.add_argument("--access-token-ttl", type=int, default=int(_env("ACCESS_TOKEN_TTL", "3600")))
    parser.add_argument("--code-ttl", type=int, default=int(_env("CODE_TTL", "60")))
    parser.add_argument("--id-token-ttl", type=int, default=int(_env("ID_TOKEN_TTL", "3600")))
    parser.add_argument("--webhook-url", default=_env("WEBHOOK_URL", ""), help="where customer webhooks go")
    parser.add_argument("--webhook-secret", default=_env("WEBHOOK_SECRET", ""), help="the app's webhook secret")
    parser.add_argument(
        "--storefront-private-token",
        default=_env("STOREFRONT_PRIVATE_TOKEN", DEFAULT_STOREFRONT_PRIVATE_TOKEN),
        help="the Storefront API token servers send as Shopify-Storefront-Private-Token",
    )
    parser.add_argument(
        "--storefront-public-token",
        default=_env("STOREFRONT_PUBLIC_TOKEN", DEFAULT_STOREFRONT_PUBLIC_TOKEN),
        help="the Storefront API token browsers send as X-Shopify-Storefront-Access-Token",
    )
    _add_access_log(parser)
    args = parser.parse_args(argv)
    extra = [tuple(pair.split(":", 1)) for pair in args.extra_credential]
    if any(len(pair) != 2 for pair in extra):
        parser.error("--extra-credential must look like ID:SECRET")
    config = MockConfig(
        base_url=args.base_url or f"http://{args.host}:{args.port}",
        shop_id=args.shop_id,
        issuer=args.issuer,
        credentials=[(args.client_id, args.client_secret), *((cid, secret) for cid, secret in extra)],
        # append actions can't take a list default without always keeping it, hence the fallback here.
        redirect_uris=args.redirect_uri or _env_list("REDIRECT_URI", DEFAULT_REDIRECT_URI),
        logout_uris=args.logout_uri or _env_list("LOGOUT_URI", DEFAULT_LOGOUT_URI),
        api_version=args.api_version,
        access_token_ttl=args.access_token_ttl,
        code_ttl=args.code_ttl,
        id_token_ttl=args.id_token_ttl,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        storefront_private_token=args.storefront_private_token,
        storefront_public_token=args.storefront_public_token,
    )
    return args, config


# uvicorn's logging, plus our access logger on its stderr handler; uvicorn's access line (full URL) is off.
LOG_CONFIG: dict[str, Any] = {
    **LOGGING_CONFIG,
    "loggers": {
        **LOGGING_CONFIG["loggers"],
        "mock_shopify": {"handlers": ["default"], "level": "INFO", "propagate": False},
    },
}


def parse_shops_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of `--shops FILE`: the file, and what all its shops share."""
    parser = argparse.ArgumentParser(
        prog="python -m mock_shopify",
        description="Serve every shop FILE lists, each on its own port, from one process. FILE holds one "
        "[shops.<name>] table per shop; its keys are the single-shop options in snake_case (port, shop_id, "
        "client_id, client_secret, extra_credentials, redirect_uris, logout_uris, ...), plus name (the shop's name).",
    )
    shops = _env("SHOPS", "")
    parser.add_argument("--shops", metavar="FILE", required=not shops, default=shops or None)
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="where every shop listens")
    _add_access_log(parser)
    return parser.parse_args(argv)


def serve_shops(args: argparse.Namespace) -> int:
    """Serve the shops of `args.shops` until interrupted; the exit status (2: a bad file, 1: a port taken)."""
    try:
        listings = load_shops_file(Path(args.shops), host=args.host)
    except ShopsFileError as exc:
        sys.stderr.write("".join(f"{args.shops}: {problem}\n" for problem in exc.problems))
        return 2
    ignored = sorted(k for k in os.environ if k.startswith("MOCK_SHOPIFY_") and k not in PROCESS_VARIABLES)
    if ignored:
        sys.stderr.write(f"{args.shops}: ignoring {', '.join(ignored)}: each shop's options come from the file\n")
    sockets: list[socket.socket] = []
    for listing in listings:
        try:
            sockets.append(listen(args.host, listing.port))
        except OSError as exc:
            sys.stderr.write(f"shops.{listing.name}: cannot listen on {args.host}:{listing.port}: {exc.strerror}\n")
            for sock in sockets:
                sock.close()
            return 1
    app = create_shops_app(listings, access_log=args.access_log)
    # Built first: it configures logging, which the lines below go through.
    config = uvicorn.Config(app, log_level="info", log_config=LOG_CONFIG, access_log=False, lifespan="off")
    log = logging.getLogger("mock_shopify.shops")
    for listing in listings:
        # uvicorn says nothing of sockets handed to it, so each shop is announced here.
        log.info("shop %s (shop_id %s) on %s", listing.name, listing.config.shop_id, listing.config.base_url)
    uvicorn.Server(config).run(sockets=sockets)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Run the stand-in under uvicorn until interrupted."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--shops", default=_env("SHOPS", ""))
    if first.parse_known_args(argv)[0].shops:
        sys.exit(serve_shops(parse_shops_args(argv)))
    args, config = parse_args(argv)
    app = create_app(config)
    uvicorn.run(
        AccessLog(app) if args.access_log else app,
        host=args.host,
        port=args.port,
        log_level="info",
        log_config=LOG_CONFIG,
        access_log=False,
    )


if __name__ == "__main__":
    main()
