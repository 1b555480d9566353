"""`python -m bench.session_cache`: one BFF with BFF_SESSION_CACHE off, then on, against the same upstream.

Prints, for each: req/s and latency (wrk -t1), the BFF's CPU per request, Redis round trips per request
(MONITOR, handshakes excluded), and for the cache the process memory per cached session (tracemalloc).
The machine is shared: CPU per request is the steadier figure; runs alternate off/on so both see the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tracemalloc
from contextlib import ExitStack

from app.store.pipelined import Endpoint
from app.store.session_cache import Limit, SessionCache
from app.store.sessions import Session, session_key, session_prefix
from bench import bff as bench_bff
from bench.cpu import CpuWindow
from bench.redis_usage import command_usage
from bench.servers import Server, uvicorn_args
from bench.wrk import run_wrk
from devkit.redis_server import free_port, start_redis


async def new_session(config: bench_bff.BffConfig) -> str:
    """A logged-in session stored through the project's SessionStore; its signed cookie."""
    settings = config.settings()
    async with bench_bff.bff_services(settings, config.redis_url) as (services, _):
        session = await services.sessions.create(bench_bff.fake_session())
    return bench_bff.session_cookie(settings, session.sid)


def bytes_per_session(count: int = 5000) -> float:
    """Process memory one cached session takes: its decoded Session (as `load` builds it from the JSON), its
    entry and key, and its two rate-limit counters."""
    cache = SessionCache(Endpoint(), prefixes=[session_prefix("bff:")], idle_timeout=3600, max_entries=count)
    cache.live = True  # never connected: only the bookkeeping of `end` is measured
    records = []
    for _ in range(count):
        session = bench_bff.fake_session()
        records.append((session.sid, session.to_json()))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for sid, record in records:
        limits = (
            Limit(f"bff:rl:graphql:1:{sid}", 300, 60_000, 60_000),
            Limit(f"bff:rl:customer:1:{sid[:16]}", 1200, 60_000, 60_000),
        )
        key = session_key(sid)  # as the store builds it for every request
        token = cache.begin(key, limits)
        session = Session(sid=sid, generation=0, ttl_ms=3_600_000, **json.loads(record))
        cache.end(key, token, (session, 2**41, 3_600_000))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / count


async def main(seconds: int, connections: int, rounds: int) -> None:
    redis = start_redis()
    try:
        with ExitStack() as stack:
            up_port = free_port()
            up_origin = f"http://127.0.0.1:{up_port}"
            upstream = Server("upstream", up_port, uvicorn_args("bench.upstream:create_app", up_port),
                              {"BENCH_UPSTREAM_ORIGIN": up_origin})  # fmt: skip
            upstream.start()
            stack.callback(upstream.stop)
            assert redis.proc is not None
            redis_pid = redis.proc.pid
            bffs = {}
            for mode in ("off", "on"):
                port = free_port()
                config = bench_bff.new_config(port, up_origin, redis.url)
                env = {**config.env(), "BFF_SESSION_CACHE": mode}
                bff = Server(f"bff-cache-{mode}", port, uvicorn_args("app.main:create_app", port), env)
                bff.start()
                stack.callback(bff.stop)
                bffs[mode] = (bff, await new_session(config))
            print(f"wrk -t1 -c{connections} -d{seconds}s, {rounds} round(s), alternating:", flush=True)
            for _ in range(rounds):
                for mode, (bff, cookie) in bffs.items():
                    url = bff.url + "/graphql"
                    run_wrk(url, connections=connections, seconds=1, cookie=cookie)  # warm-up
                    window = CpuWindow({"bff": bff.pid, "redis": redis_pid}).start()
                    result = run_wrk(url, connections=connections, seconds=seconds, cookie=cookie)
                    window.stop(result.seconds)
                    used = window.per_process or {}
                    cpu = {name: used.get(name, 0.0) * 1e6 / max(1, result.requests) for name in ("bff", "redis")}
                    print(
                        f"  cache {mode:<3} {result.rps:8,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
                        f"  p99 {result.p99_ms:6.2f} ms  CPU us/request: BFF {cpu['bff']:4.0f}"
                        f" Redis {cpu['redis']:3.0f}  errors {result.errors}"
                        f"  other load {window.other_cores or 0:.2f} cores",
                        flush=True,
                    )
            for mode, (bff, cookie) in bffs.items():
                usage = await command_usage(redis.url, bff.url + "/graphql", cookie)
                print(f"  cache {mode:<3} Redis round trips per request: {usage.request_round_trips:.3f}"
                      f" {usage.round_trips}")  # fmt: skip
    finally:
        redis.cleanup()
    print(f"process memory per cached session: {bytes_per_session():,.0f} bytes (tracemalloc)")


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.session_cache", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.connections, args.rounds))


if __name__ == "__main__":
    cli()
