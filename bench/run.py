"""`python -m bench.run` (`make bench`): start everything, measure, stop everything, write bench/results.md.

1. Redis, a minimal upstream, a bare aiohttp proxy and the BFF (alone, with its session cache, and serving 2
   and 50 shops from a BFF_SHOPS_FILE); wrk at c8/c32/c128 against each.
2. Redis commands per proxied request, and Redis memory per session.
3. A py-spy profile of the BFF under load (skipped when py-spy is not installed); the shop router's own cost
   per request, in-process (bench/routing.py).
4. The Shopify stand-in with a second BFF: logins per second, and a refresh stampede.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import httpx
from redis.asyncio import Redis

from bench import bff as bench_bff
from bench import profiling, routing
from bench.abuse import abuse
from bench.cpu import CpuWindow
from bench.logins import login_rate
from bench.redis_usage import command_usage, session_memory
from bench.report import Results, Run, render
from bench.servers import ROOT, Server, uvicorn_args
from bench.shops import ShopsConfig, new_shops_config, process_name, target_name
from bench.stampede import stampede
from bench.upstream import GRAPHQL_BODY, GRAPHQL_PATH
from bench.wrk import run_wrk, wrk_version
from devkit.redis_server import RedisProcess, free_port, start_redis

CONCURRENCIES = (8, 32, 128)
# The multi-shop BFFs measured beside the single-shop one: the cost of routing by Host among that many shops.
SHOP_COUNTS = (2, 50)
# The paced attacker: 200 costly documents a second, 40 times the default per-session limit, so what the
# victim feels is what each document costs the BFF; the unpaced run shows a flood, which the front proxy caps.
ATTACK_RATE = 200.0
WARMUP_SECONDS = 1
PROFILE_SECONDS = 5
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "results.md"
_FAILED = re.compile(r"request failed: (\d{3}) (\w+)")


def _start_all(stack: ExitStack, *servers: Server) -> None:
    for server in servers:
        stack.callback(server.stop)
        server.start()


def _machine(redis_version: str) -> dict[str, str]:
    packages = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "aiohttp", "redis")
    versions = ", ".join(f"{p} {version(p)}" for p in packages)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "versions": f"Redis server {redis_version}; {versions}; wrk {wrk_version()}",
        "load": load,
    }


def check(name: str, url: str, cookie: str | None, host: str | None = None) -> None:
    """One request before any load: the target answers 200 with the upstream's body, unchanged."""
    headers = {"Content-Type": "application/json", **({"Cookie": cookie, "X-CSRF": "1"} if cookie else {})}
    if host:
        headers["Host"] = host
    response = httpx.post(url, content=bench_bff.GRAPHQL_BODY, headers=headers)
    if response.status_code != 200 or response.content != GRAPHQL_BODY:
        raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:300]}")


def _measure(
    target: str, url: str, pids: dict[str, int], connections: int, seconds: int, cookie: str | None, host: str | None
) -> Run:
    warmup = run_wrk(url, connections=connections, seconds=WARMUP_SECONDS, cookie=cookie, host=host)  # pools grow
    window = CpuWindow(pids).start()
    result = run_wrk(url, connections=connections, seconds=seconds, cookie=cookie, host=host)
    window.stop(result.seconds)
    cpu = {name: used * 1e6 / result.requests for name, used in (window.per_process or {}).items() if result.requests}
    print(
        f"  {target:<14} c{connections:<4} {result.rps:8,.0f} req/s"
        f"  p50 {result.p50_ms:7.2f}  p99 {result.p99_ms:7.2f} ms"
        f"  errors {result.errors} (+{warmup.errors} in warm-up)  other load {window.other_cores or 0:.2f} cores",
        flush=True,
    )
    return Run(target, result, cpu, window.other_cores, warmup.errors)


def _logged_errors(server: Server) -> dict[str, int]:
    """The BFF's own count of failed requests by status and code, from its warning log lines."""
    found = _FAILED.findall(server.log.read_text(errors="replace"))
    return dict(Counter(f"{status} {code}" for status, code in found).most_common())


async def new_session(config: bench_bff.BffConfig | ShopsConfig) -> str:
    """A logged-in session stored through the project's SessionStore; returns its signed cookie. For a
    multi-shop BFF, the session is its target shop's: that shop's Redis prefix, record and cookie keys."""
    settings = config.settings()
    async with bench_bff.bff_services(settings, config.redis_url) as (services, _):
        session = await services.sessions.create(bench_bff.fake_session())
    return bench_bff.session_cookie(settings, session.sid)


def _profile(results: Results, bff: Server, url: str, cookie: str) -> None:
    if profiling.py_spy() is None:
        results.profile_note = "Skipped: py-spy is not installed (`.venv/bin/pip install py-spy`)."
        return
    out = OUT / "bff-profile.speedscope.json"
    recorder = profiling.record(bff.pid, out, seconds=PROFILE_SECONDS)
    load = run_wrk(url, connections=32, seconds=PROFILE_SECONDS + 1, cookie=cookie)
    _, stderr = recorder.communicate(timeout=60)
    if recorder.returncode != 0 or not out.exists():
        results.profile_note = f"py-spy failed: {stderr.decode(errors='replace').strip()[:300]}"
        return
    results.profile = profiling.summarise(out)
    (OUT / "bff-profile.txt").write_text(profiling.render_text(results.profile))
    results.profile_note = (
        f"py-spy, {PROFILE_SECONDS} s at 100 Hz on the BFF process while `wrk -c32` ran "
        f"({load.rps:,.0f} req/s meanwhile); {results.profile.samples:,} samples with the BFF on a CPU (idle "
        f"excluded). *own*: the function itself was running (time in C code it calls, e.g. a socket write, "
        f"counts as its own); *total*: it was on the stack. Full profile: `bench/out/{out.name}` (open in "
        "https://www.speedscope.app); text summary with callers: `bench/out/bff-profile.txt`."
    )


async def _proxy_benchmarks(results: Results, redis: RedisProcess, rounds: int, seconds: int) -> None:
    with ExitStack() as stack:
        up_port, proxy_port, bff_port = free_port(), free_port(), free_port()
        up_origin = f"http://127.0.0.1:{up_port}"
        upstream = Server("upstream", up_port, uvicorn_args("bench.upstream:create_app", up_port),
                          {"BENCH_UPSTREAM_ORIGIN": up_origin})  # fmt: skip
        proxy = Server("bare-proxy", proxy_port, uvicorn_args("bench.bare_proxy:create_app", proxy_port),
                       {"BENCH_PROXY_TARGET": up_origin + GRAPHQL_PATH})  # fmt: skip
        config = bench_bff.new_config(bff_port, up_origin, redis.url)
        bff = Server("bff", bff_port, uvicorn_args("app.main:create_app", bff_port), config.env())
        # The same BFF with its process-local session cache on (BFF_SESSION_CACHE: the default, auto, on redis://).
        cached_port = free_port()
        cached_env = {**config.env(), "BFF_SESSION_CACHE": "on"}
        cached = Server("bff-cache", cached_port, uvicorn_args("app.main:create_app", cached_port), cached_env)
        # The same BFF serving several shops (bench/shops.py): the load goes to the last shop of its file.
        multi = {count: new_shops_config(count, free_port(), up_origin, redis.url, OUT) for count in SHOP_COUNTS}
        shop_bffs = {
            count: Server(process_name(count), c.port, uvicorn_args("app.main:create_app", c.port), c.env())
            for count, c in multi.items()
        }
        _start_all(stack, upstream, proxy, bff, cached, *shop_bffs.values())
        cookie = await new_session(config)
        # Every process of ours is watched in every run, so none of its CPU is mistaken for other load.
        assert redis.proc is not None
        pids = {
            "bff": bff.pid,
            "bff-cache": cached.pid,
            "proxy": proxy.pid,
            "upstream": upstream.pid,
            "redis": redis.proc.pid,
            **{server.name: server.pid for server in shop_bffs.values()},
        }
        targets: dict[str, tuple[str, str | None, str | None]] = {  # name -> (url, cookie, Host header)
            "upstream": (upstream.url + GRAPHQL_PATH, None, None),
            "bare proxy": (proxy.url + "/graphql", None, None),
            "BFF": (bff.url + "/graphql", cookie, None),
            # One session on one Redis: the cached BFF serves the same cookie (same secrets, same prefix).
            "BFF, cache on": (cached.url + "/graphql", cookie, None),
        }
        for count, shops_config in multi.items():
            shop_cookie = await new_session(shops_config)
            targets[target_name(count)] = (shop_bffs[count].url + "/graphql", shop_cookie, shops_config.host)
        results.shop_counts = SHOP_COUNTS
        for name, (url, auth, host) in targets.items():
            check(name, url, auth, host)
        print(f"throughput: wrk -t1 -d{seconds}s, {rounds} round(s):", flush=True)
        # Concurrency outside, target inside: the figures a ratio compares are measured back to back.
        for _ in range(rounds):
            for connections in CONCURRENCIES:
                for name, (url, auth, host) in targets.items():
                    results.runs.append(_measure(name, url, pids, connections, seconds, auth, host))

        results.bff_errors = _logged_errors(bff)
        print("redis: commands per request, memory per session ...", flush=True)
        results.commands = await command_usage(redis.url, bff.url + "/graphql", cookie)
        results.commands_cached = await command_usage(redis.url, cached.url + "/graphql", cookie)
        # An empty database of its own: the memory measurement counts (and then flushes) every key in it.
        async with bench_bff.bff_services(config.settings(), redis.url.rsplit("/", 1)[0] + "/1") as (services, db):
            results.memory = await session_memory(services.sessions, db)
        print("profile ...", flush=True)
        _profile(results, bff, bff.url + "/graphql", cookie)
    print("routing: the shop router alone ...", flush=True)
    results.routing = await routing.measure([1, *SHOP_COUNTS], calls=100_000)
    for count in results.routing.routed_ns:
        print(f"  {count} shop(s): +{results.routing.added_ns(count):.0f} ns per request", flush=True)


async def _login_benchmarks(results: Results, redis: RedisProcess) -> None:
    with ExitStack() as stack:
        mock_port, bff_port, abuse_port = free_port(), free_port(), free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        mock_args = [
            "-m", "mock_shopify", "--port", str(mock_port), "--base-url", mock_url,
            "--client-id", bench_bff.CLIENT_ID, "--client-secret", bench_bff.CLIENT_SECRET,
            "--redirect-uri", f"http://127.0.0.1:{bff_port}/auth/callback",
            "--redirect-uri", f"http://127.0.0.1:{abuse_port}/auth/callback", "--logout-uri", "http://localhost:3000/",
            "--no-access-log",  # a log line per request is a cost of the stand-in's, not of logins
        ]  # fmt: skip
        mock = Server("mock-shopify", mock_port, mock_args)
        config = bench_bff.new_config(bff_port, mock_url, redis.url)
        bff = Server("bff-logins", bff_port, uvicorn_args("app.main:create_app", bff_port), config.env())
        # The abuse run meets the BFF as deployed: the default per-session and per-customer limits apply.
        abuse_env = bench_bff.new_config(abuse_port, mock_url, redis.url).env()
        abuse_env.pop("BFF_RATE_LIMIT_GRAPHQL")
        abuse_env.pop("BFF_RATE_LIMIT_GRAPHQL_CUSTOMER")
        abuse_bff = Server("bff-abuse", abuse_port, uvicorn_args("app.main:create_app", abuse_port), abuse_env)
        _start_all(stack, mock, bff, abuse_bff)
        print("logins ...", flush=True)
        await login_rate(bff.url, logins=20)  # warm-up: discovery, JWKS, imports
        assert redis.proc is not None
        window = CpuWindow({"bff": bff.pid, "stand-in": mock.pid, "redis": redis.proc.pid}).start()
        client_started = time.process_time()
        rate = await login_rate(bff.url, logins=400)
        client = time.process_time() - client_started
        window.stop(rate.seconds)
        done = max(1, rate.logins - rate.failed)
        cpu = {name: used * 1000 / done for name, used in (window.per_process or {}).items()}
        cpu["load generator"] = client * 1000 / done  # this process: the browsers share the cores measured
        results.logins = replace(rate, cpu_ms_per_login=cpu)
        print(f"  {rate.per_second:.1f} logins/s ({rate.failed} failed)", flush=True)
        print("refresh stampede ...", flush=True)
        results.stampede = await stampede(bff.url, mock_url, requests=100)
        s = results.stampede
        print(f"  {s.refresh_grants} refresh grant(s), statuses {s.statuses}, {s.seconds * 1000:.0f} ms", flush=True)
        print("abuse: a costly-document attack against another customer ...", flush=True)
        results.abuse = await abuse(abuse_bff.url, rate=ATTACK_RATE)
        results.flood = await abuse(abuse_bff.url)
        for a in (results.abuse, results.flood):
            print(f"  victim median {a.alone_median_ms:.1f} → {a.attacked_median_ms:.1f} ms", flush=True)


async def main(rounds: int, seconds: int, out: Path = RESULTS) -> int:
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    redis = start_redis()
    try:
        client = Redis.from_url(redis.url)
        redis_version = str((await client.info("server"))["redis_version"])
        await client.aclose()
        results = Results(machine=_machine(redis_version), rounds=rounds, seconds_per_run=seconds)
        await _proxy_benchmarks(results, redis, rounds, seconds)
        await _login_benchmarks(results, redis)
    finally:
        redis.cleanup()
    results.seconds = time.perf_counter() - started
    report = render(results)
    out.write_text(report)
    print("\n" + report)
    print(f"wrote {out} in {results.seconds:.0f} s")
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="wrk rounds per cell; the best is kept (default 2)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the report goes (default bench/results.md)")
    args = parser.parse_args()
    return asyncio.run(main(args.rounds, args.seconds, args.out))


if __name__ == "__main__":
    sys.exit(cli())
