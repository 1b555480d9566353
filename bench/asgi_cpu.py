"""`python -m bench.asgi_cpu`: the CPU an app's own code spends per `POST /graphql`, without an HTTP server.

Each app under test (the BFF, the bare proxy, optionally the BFF of another git ref) runs in a worker
process of its own that calls the ASGI app directly, N requests at a time with C in flight, against the
real upstream stand-in and a real Redis, and reports the CPU seconds (user + system, `time.process_time`)
each batch took. The apps take turns batch by batch, so they meet the same background load, and the
figures are medians over the batches, with the median of the per-batch ratios for the A/B comparison.
A batch must be long enough to include its share of the periodic costs (a full garbage collection came
every few thousand requests): a minimum over short batches would hide exactly those.
uvicorn's own share is the same for every app and is left out, so this isolates what the app adds.

`--shops N` also measures the BFF serving N shops from a BFF_SHOPS_FILE (bench/shops.py), its requests for
the last shop of the file by their Host header: its difference from the single-shop BFF is what routing
among shops (and whatever else a multi-shop deployment does per request) costs, without network noise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

# The worker is started with the tree under test first on sys.path, and imports this file by path, so a
# checkout of an older commit (which may not have this module) runs its own `app` under the same driver;
# hence also the imports inside main(): the worker needs nothing from bench/ but what every commit has.
_WORKER = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_asgi_cpu', sys.argv[1])\n"
    "module = sys.modules['_asgi_cpu'] = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "module.worker(sys.argv[2])\n"
)
BODY = b'{"query":"query { customer { id firstName } }"}'


async def _drive(app: Any, headers: list[tuple[bytes, bytes]], requests: int, connections: int) -> int:
    """Send `requests` POSTs, `connections` at a time; returns how many were not answered 200."""
    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    failed = 0
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def one() -> None:
        nonlocal failed
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await never
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal failed
            if message["type"] == "http.response.start" and message["status"] != 200:
                failed += 1

        await app(dict(scope_base), receive, send)

    async def loop(count: int) -> None:
        for _ in range(count):
            await one()

    share, extra = divmod(requests, connections)
    await asyncio.gather(*(loop(share + (i < extra)) for i in range(connections)))
    return failed


async def _serve(app: Any, headers: list[tuple[bytes, bytes]], out: TextIO) -> None:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    print(json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:  # blocking between batches: nothing else needs the loop meanwhile
        command = json.loads(line)
        before = time.process_time()
        failed = await _drive(app, headers, command["requests"], command["connections"])
        used = time.process_time() - before
        print(json.dumps({"cpu": used, "failed": failed}), file=out, flush=True)
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await lifespan


def worker(spec: str) -> None:
    """Run inside a worker process: `spec` is JSON {kind, env, cookie, host (optional)}."""
    import uvloop

    config = json.loads(spec)
    # The replies go out on the original stdout; the app's own log lines (stdout) go to stderr instead.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    os.environ.update(config["env"])
    module = importlib.import_module("app.main" if config["kind"] == "bff" else "bench.bare_proxy")
    host = config.get("host") or "127.0.0.1:8000"
    headers = [(b"host", host.encode()), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(BODY)).encode()))
    if config.get("cookie"):
        headers += [(b"cookie", config["cookie"].encode()), (b"x-csrf", b"1")]
    uvloop.run(_serve(module.create_app(), headers, out))


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[str]

    def batch(self, requests: int, connections: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"requests": requests, "connections": connections}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if reply["failed"]:
            raise RuntimeError(f"{self.name}: {reply['failed']} of {requests} requests failed")
        return float(reply["cpu"]) * 1e6 / requests


def _start_worker(
    name: str, kind: str, env: dict[str, str], cookie: str | None, cwd: Path, host: str | None = None
) -> Worker:
    spec = json.dumps({"kind": kind, "env": env, "cookie": cookie, "host": host})
    proc = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(Path(__file__).resolve()), spec],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line or not json.loads(line).get("ready"):
        raise RuntimeError(f"{name} did not start")
    return Worker(name, proc)


async def main(
    *,
    batches: int,
    requests: int,
    concurrencies: list[int],
    against: str | None,
    cache: bool = False,
    shops: int | None = None,
) -> int:
    from bench import bff as bench_bff
    from bench.cpu_per_request import _export
    from bench.run import OUT, new_session
    from bench.servers import ROOT, Server, uvicorn_args
    from bench.shops import new_shops_config
    from bench.upstream import GRAPHQL_PATH
    from devkit.redis_server import free_port, start_redis

    redis = start_redis()
    with ExitStack() as stack:
        stack.callback(redis.cleanup)
        up_port = free_port()
        origin = f"http://127.0.0.1:{up_port}"
        upstream = Server("upstream", up_port, uvicorn_args("bench.upstream:create_app", up_port),
                          {"BENCH_UPSTREAM_ORIGIN": origin})  # fmt: skip
        stack.callback(upstream.stop)
        upstream.start()
        config = bench_bff.new_config(free_port(), origin, redis.url)
        cookie = await new_session(config)
        # BFF_SESSION_CACHE=on for both BFFs: the path without a Redis round trip in the steady state.
        extra = {"BFF_SESSION_CACHE": "on" if cache else "off"}
        workers = [
            _start_worker("bare proxy", "proxy", {"BENCH_PROXY_TARGET": origin + GRAPHQL_PATH}, None, ROOT),
            _start_worker("BFF", "bff", {**config.env(), **extra}, cookie, ROOT),
        ]
        if against is not None:
            env = {**replace(config, port=free_port()).env(), **extra}
            workers.append(_start_worker(f"BFF@{against}", "bff", env, cookie, _export(against)))
        shops_name = f"BFF, {shops} shops"
        if shops is not None:
            multi = new_shops_config(shops, free_port(), origin, redis.url, OUT)
            env = {**multi.env(), **extra}
            workers.append(_start_worker(shops_name, "bff", env, await new_session(multi), ROOT, multi.host))
        for w in workers:
            stack.callback(w.proc.kill)
        for connections in concurrencies:
            for w in workers:
                w.batch(requests, connections)  # warm: pools, caches, imports
            figures: dict[str, list[float]] = {w.name: [] for w in workers}
            for n in range(batches):
                for w in workers[:: -1 if n % 2 else 1]:
                    figures[w.name].append(w.batch(requests, connections))
            print(f"c{connections}, {batches} batches of {requests} requests, CPU µs per request:")
            for name, values in figures.items():
                print(f"  {name:<16} median {statistics.median(values):6.1f}  min {min(values):6.1f}")
            bff, proxy = statistics.median(figures["BFF"]), statistics.median(figures["bare proxy"])
            print(f"  BFF - bare proxy: +{bff - proxy:.1f} µs ({bff / proxy:.2f}x)")
            if against is not None:
                old = statistics.median(figures[f"BFF@{against}"])
                ratios = sorted(a / b for a, b in zip(figures["BFF"], figures[f"BFF@{against}"], strict=True))
                print(
                    f"  BFF vs BFF@{against}: {old:.1f} → {bff:.1f} µs; per-batch ratio median "
                    f"{statistics.median(ratios):.3f} (quartiles {ratios[len(ratios) // 4]:.3f} .. "
                    f"{ratios[3 * len(ratios) // 4]:.3f})"
                )
            if shops is not None:
                multi_us = statistics.median(figures[shops_name])
                ratios = sorted(a / b for a, b in zip(figures[shops_name], figures["BFF"], strict=True))
                print(
                    f"  {shops_name} vs BFF: {bff:.1f} → {multi_us:.1f} µs ({multi_us - bff:+.1f}); per-batch ratio "
                    f"median {statistics.median(ratios):.3f} (quartiles {ratios[len(ratios) // 4]:.3f} .. "
                    f"{ratios[3 * len(ratios) // 4]:.3f})"
                )
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.asgi_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12, help="batches per app and concurrency (default 12)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per batch (default 2000)")
    parser.add_argument("-c", "--connections", type=int, action="append", help="in flight; repeat (default 1, 32)")
    parser.add_argument("--against", metavar="REF", help="also measure the BFF as committed at this git ref")
    parser.add_argument("--cache", action="store_true", help="run the BFF(s) with BFF_SESSION_CACHE=on")
    parser.add_argument("--shops", type=int, metavar="N", help="also measure the BFF serving N shops (BFF_SHOPS_FILE)")
    args = parser.parse_args()
    return asyncio.run(
        main(
            batches=args.batches,
            requests=args.requests,
            concurrencies=args.connections or [1, 32],
            against=args.against,
            cache=args.cache,
            shops=args.shops,
        )
    )


if __name__ == "__main__":
    sys.exit(cli())
