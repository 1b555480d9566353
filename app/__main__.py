"""Command line: `serve` runs the BFF, `doctor` checks a deployment, `end-sessions` logs a customer out
everywhere, `allowlist` builds a GraphQL allowlist from `.graphql` files."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

# Seconds `serve` lets in-flight requests finish after SIGTERM; orchestrators' grace periods allow for it
# (docker-compose.yml's stop_grace_period, deploy/kubernetes/deployment.yaml's terminationGracePeriodSeconds).
DRAIN_SECONDS = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="check settings, Redis and the shop; print the admin values to register")
    serve = commands.add_parser("serve", help="run the BFF with uvicorn (the Docker image's command)")
    serve.add_argument("--host", default=os.environ.get("BFF_HOST", "0.0.0.0"))  # noqa: S104 - a server
    serve.add_argument("--port", type=int, default=None, help="default: BFF_PORT, else 8000")
    serve.add_argument("--workers", type=int, default=None, help="default: BFF_WORKERS, else 1")
    end = commands.add_parser("end-sessions", help="end every session of one customer (log out everywhere)")
    who = end.add_mutually_exclusive_group(required=True)
    who.add_argument("--sub", help="the customer's `sub` claim, as /auth/session shows it")
    who.add_argument(
        "--customer-id", help="the customer's Shopify id: gid://shopify/Customer/<n>, or <n> as the admin shows it"
    )
    end.add_argument("--shop", help="with BFF_SHOPS_FILE: the shop's id in the file (required there)")
    allow = commands.add_parser("allowlist", help="print an allowlist (JSON) for BFF_GRAPHQL_ALLOWLIST")
    allow.add_argument("files", nargs="+", type=Path, help="the front end's .graphql files")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from app.doctor import run_doctor

        return asyncio.run(run_doctor())
    if args.command == "end-sessions":
        customer_id = None
        if args.customer_id is not None:
            from app.webhooks import customer_gid

            customer_id = customer_gid(args.customer_id)
            if customer_id is None:
                print("error: --customer-id must be gid://shopify/Customer/<n> or <n>", file=sys.stderr)  # noqa: T201
                return 2
        from app.config import ConfigError

        try:
            ended = asyncio.run(_end_sessions(args.sub, customer_id, args.shop))
        except ConfigError as exc:
            print(exc, file=sys.stderr)  # noqa: T201
            return 2
        print(f"ended {ended} session(s) of {customer_id or args.sub}")  # noqa: T201
        return 0
    if args.command == "allowlist":
        from app.graphql_policy import build_allowlist

        try:
            print(json.dumps(build_allowlist(args.files), indent=2))  # noqa: T201
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)  # noqa: T201
            return 1
        return 0

    # Read here, not as argparse defaults: a bad value is one line naming the variable, never a traceback.
    port = args.port if args.port is not None else _number_from_env("BFF_PORT", "8000", parser)
    workers = args.workers if args.workers is not None else _number_from_env("BFF_WORKERS", "1", parser)
    return _serve(args.host, port, workers)


def _number_from_env(name: str, default: str, parser: argparse.ArgumentParser) -> int:
    value = os.environ.get(name, default).strip()
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        parser.exit(2, f"invalid configuration:\n  {name} must be a whole number >= 1, got {value!r}\n")
    return int(value)


def _serve(host: str, port: int, workers: int) -> int:
    from app.config import ConfigError
    from app.shops import deployment_settings, load_configuration

    try:
        # uvicorn's own limits come from the settings; each worker loads them again in create_app.
        settings = deployment_settings(load_configuration())
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # noqa: T201 - the operator reads the variable's name, not a traceback
        return 2  # like any other usage error
    try:
        metrics_dir = _multiprocess_metrics_dir(workers)
    except OSError as exc:
        print(  # noqa: T201
            f"invalid configuration:\n  BFF_WORKERS={workers} needs a writable directory for the workers' metrics "
            f"(set PROMETHEUS_MULTIPROC_DIR to an empty one): {exc}",
            file=sys.stderr,
        )
        return 2
    # uvicorn re-raises the SIGTERM it handled once drained; make that a clean exit (0, not 143) so
    # orchestrators do not report a graceful stop as a crash.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        _run_uvicorn(host, port, workers, settings.bff_max_connections, settings.bff_keepalive_timeout)
    finally:
        if metrics_dir is not None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _run_uvicorn(host: str, port: int, workers: int, max_connections: int, keepalive_timeout: int) -> None:
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        server_header=False,
        access_log=False,  # app.logs.RequestLog writes one line per request, without query strings
        timeout_graceful_shutdown=DRAIN_SECONDS,
        # uvicorn answers 503 by itself once its open connections, the asking one included, reach the
        # limit: one more, so BFF_MAX_CONNECTIONS connections are served and the next one is refused.
        limit_concurrency=max_connections + 1,
        timeout_keep_alive=keepalive_timeout,
    )


def _multiprocess_metrics_dir(workers: int) -> str | None:
    """With several workers, a fresh private PROMETHEUS_MULTIPROC_DIR for their metrics (app/metrics.py), which
    the caller removes when the server stops; None when one worker needs none, or the operator gave one (used as
    it is, and left in place)."""
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    # /dev/shm first: memory-backed, and writable in a container whose root filesystem is read-only (Docker's
    # and Kubernetes' runtimes mount it), where the temp dir is not. mkdtemp makes it 0700: only we read it.
    shm = "/dev/shm"  # noqa: S108 - a private directory is made inside it, not a fixed path
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None
    path = tempfile.mkdtemp(prefix="bff-metrics-", dir=base)
    # Set before uvicorn starts the workers: each reads it when it first imports prometheus_client.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


async def _end_sessions(sub: str | None, customer_id: str | None, shop: str | None) -> int:
    from app.config import ConfigError
    from app.crypto import TokenCipher
    from app.shops import Shops, load_configuration
    from app.store.connections import RedisConnections
    from app.store.sessions import SessionStore

    configuration = load_configuration()
    if isinstance(configuration, Shops):
        if shop is None:
            raise ConfigError(
                f"error: BFF_SHOPS_FILE lists shops; name one with --shop ({', '.join(configuration.ids)})"
            )
        try:
            settings = configuration.by_id(shop)
        except KeyError:
            raise ConfigError(
                f"error: no shop {shop!r} in {configuration.source} ({', '.join(configuration.ids)})"
            ) from None
    elif shop is not None:
        raise ConfigError("error: --shop needs BFF_SHOPS_FILE (this deployment serves one shop)")
    else:
        settings = configuration
    redis = RedisConnections(settings.redis_url, max_connections=4)
    try:
        store = SessionStore(
            redis,
            TokenCipher(settings.token_keys),
            idle_timeout=settings.bff_session_idle_timeout,
            absolute_lifetime=settings.bff_session_absolute_lifetime,
            prefix=settings.bff_redis_prefix,  # this deployment's (and shop's) sessions only
        )
        if customer_id is not None:
            return await store.end_customer(customer_id) or 0
        assert sub is not None
        return await store.end_all(sub)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    sys.exit(main())
