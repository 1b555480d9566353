"""Command line: `python -m app doctor` checks a deployment; `python -m app serve` runs the BFF."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="check settings, Redis and the shop; print the admin values to register")
    serve = commands.add_parser("serve", help="run the BFF with uvicorn (the Docker image's command)")
    serve.add_argument("--host", default=os.environ.get("BFF_HOST", "0.0.0.0"))  # noqa: S104 - a server
    serve.add_argument("--port", type=int, default=int(os.environ.get("BFF_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("BFF_WORKERS", "1")))
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from app.doctor import run_doctor

        return asyncio.run(run_doctor())

    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=20,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
