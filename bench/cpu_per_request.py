"""`python -m bench.cpu_per_request`: CPU microseconds per `POST /graphql`, BFF and bare proxy side by side.

Requests per second on this shared 2-core machine move with whatever else runs; the CPU a process spends
per request moves much less, so this is the figure to compare before and after a change to the hot path.
It starts Redis, the minimal upstream, the bare aiohttp proxy and the BFF (bench/servers.py, as `make
bench` does), drives each with wrk in alternating rounds and reports, per concurrency, the median and the
lowest CPU µs per request of each process (user + system, from /proc). Then, optionally, a py-spy profile
of the BFF at c32 (bench/profiling.py).

`--against REF` also runs the BFF as committed at git REF (exported to bench/out/), on the same Redis and
upstream, and measures both BFFs back to back in every round: the per-round ratio of the two is what a
change did, since both met the same background load.

At c1 every request pays its own event-loop wakeups; at c32 wakeups are shared by the requests that are
ready together, and a starved process batches more, so c32 figures drift lower when the machine is busy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import bff as bench_bff
from bench import profiling
from bench.cpu import CpuWindow
from bench.run import OUT, check, new_session
from bench.servers import ROOT, Server, uvicorn_args
from bench.upstream import GRAPHQL_PATH
from bench.wrk import run_wrk
from devkit.redis_server import free_port, start_redis


@dataclass
class Cell:
    """Every round's CPU µs/request of one process for one target at one concurrency."""

    per_round: list[float] = field(default_factory=list)
    other_load: list[float] = field(default_factory=list)

    def line(self, label: str) -> str:
        rounds = self.per_round
        return (
            f"  {label:<22} median {statistics.median(rounds):6.0f}  min {min(rounds):6.0f}  "
            f"max {max(rounds):6.0f} µs/req  (other load {statistics.median(self.other_load):.2f} cores)"
        )


def _round(url: str, pid: int, *, connections: int, seconds: float, cookie: str | None) -> tuple[float, float, int]:
    run_wrk(url, connections=connections, seconds=1, cookie=cookie)  # pools and caches warm
    window = CpuWindow({"target": pid}).start()
    result = run_wrk(url, connections=connections, seconds=seconds, cookie=cookie)
    window.stop(result.seconds)
    if result.errors or not result.requests:
        raise RuntimeError(f"{url}: {result.errors} errors in {result.requests} requests")
    used = (window.per_process or {}).get("target", 0.0)
    return used * 1e6 / result.requests, window.other_cores or 0.0, result.requests


def _export(ref: str) -> Path:
    """The tree of git `ref`, unpacked under bench/out/ (no worktree, no change to the repository); a
    directory is taken as it is (a throwaway experiment)."""
    if Path(ref).is_dir():
        return Path(ref).resolve()
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True)
    where = OUT / f"checkout-{sha.stdout.strip()}"
    if not where.exists():
        where.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def _profile(bff: Server, url: str, cookie: str, seconds: int) -> str:
    if profiling.py_spy() is None:
        return "profile skipped: py-spy is not installed\n"
    out = OUT / "cpu-profile.speedscope.json"
    recorder = profiling.record(bff.pid, out, seconds=seconds)
    run_wrk(url, connections=32, seconds=seconds + 1, cookie=cookie)
    _, stderr = recorder.communicate(timeout=60)
    if recorder.returncode != 0 or not out.exists():
        return f"py-spy failed: {stderr.decode(errors='replace').strip()[:300]}\n"
    return profiling.render_text(profiling.summarise(out, top=25))


async def main(
    *,
    rounds: int,
    seconds: float,
    concurrencies: list[int],
    profile_seconds: int,
    against: str | None,
    cache: bool = False,
) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    redis = start_redis()
    with ExitStack() as stack:
        stack.callback(redis.cleanup)
        up_port, proxy_port, bff_port = free_port(), free_port(), free_port()
        up_origin = f"http://127.0.0.1:{up_port}"
        config = bench_bff.new_config(bff_port, up_origin, redis.url)
        # BFF_SESSION_CACHE=on for both BFFs: the path without a Redis round trip in the steady state.
        extra = {"BFF_SESSION_CACHE": "on" if cache else "off"}
        servers = [
            Server("upstream", up_port, uvicorn_args("bench.upstream:create_app", up_port),
                   {"BENCH_UPSTREAM_ORIGIN": up_origin}),
            Server("bare-proxy", proxy_port, uvicorn_args("bench.bare_proxy:create_app", proxy_port),
                   {"BENCH_PROXY_TARGET": up_origin + GRAPHQL_PATH}),
            Server("bff", bff_port, uvicorn_args("app.main:create_app", bff_port), {**config.env(), **extra}),
        ]  # fmt: skip
        if against is not None:
            # The same secret and Redis: one session cookie is valid on both BFFs.
            old = replace(config, port=free_port())
            servers.append(
                Server(
                    "bff-baseline",
                    old.port,
                    uvicorn_args("app.main:create_app", old.port),
                    {**old.env(), **extra},
                    _export(against),
                )
            )
        for server in servers:
            stack.callback(server.stop)
            server.start()
        proxy, bff = servers[1], servers[2]
        cookie = await new_session(config)
        targets = {"bare proxy": (proxy, proxy.url + "/graphql", None), "BFF": (bff, bff.url + "/graphql", cookie)}
        if against is not None:
            targets[f"BFF@{against}"] = (servers[3], servers[3].url + "/graphql", cookie)
        for name, (_, url, auth) in targets.items():
            check(name, url, auth)
        cells: dict[tuple[int, str], Cell] = {}
        for n in range(rounds):
            # Alternating targets within a round: both meet the same background load.
            for connections in concurrencies:
                # Every other round in reverse, so no target always runs first after a pause.
                for name in list(targets)[:: -1 if n % 2 else 1]:
                    server, url, auth = targets[name]
                    us, other, requests = _round(url, server.pid, connections=connections, seconds=seconds, cookie=auth)
                    cell = cells.setdefault((connections, name), Cell())
                    cell.per_round.append(us)
                    cell.other_load.append(other)
                    print(f"round {n + 1} c{connections:<3} {name:<10} {us:6.0f} µs/req ({requests} requests)")
        print("\nCPU per request (user + system of the target process), over", rounds, "round(s):")
        for connections in concurrencies:
            print(f"c{connections}:")
            for name in targets:
                print(cells[connections, name].line(name))
            bff_us = statistics.median(cells[connections, "BFF"].per_round)
            proxy_us = statistics.median(cells[connections, "bare proxy"].per_round)
            print(f"  BFF / bare proxy CPU (medians): {bff_us / proxy_us:.2f}x (+{bff_us - proxy_us:.0f} µs)")
            if against is not None:
                ours, theirs = cells[connections, "BFF"].per_round, cells[connections, f"BFF@{against}"].per_round
                ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
                print(
                    f"  BFF / BFF@{against}, per round: median {statistics.median(ratios):.3f}"
                    f"  (range {ratios[0]:.3f} .. {ratios[-1]:.3f})"
                )
        if profile_seconds:
            print("\nBFF profile at c32:\n" + _profile(bff, bff.url + "/graphql", cookie, profile_seconds))
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_per_request", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target and concurrency (default 3)")
    parser.add_argument("--seconds", type=float, default=4, help="seconds per wrk run (default 4)")
    parser.add_argument("-c", "--connections", type=int, action="append", help="concurrency; repeat (default 1, 32)")
    parser.add_argument("--profile", type=int, default=5, metavar="SECONDS", help="py-spy seconds; 0 skips (default 5)")
    parser.add_argument("--against", metavar="REF", help="also measure the BFF as committed at this git ref")
    parser.add_argument("--cache", action="store_true", help="run the BFF(s) with BFF_SESSION_CACHE=on")
    args = parser.parse_args()
    return asyncio.run(
        main(
            rounds=args.rounds,
            seconds=args.seconds,
            concurrencies=args.connections or [1, 32],
            profile_seconds=args.profile,
            against=args.against,
            cache=args.cache,
        )
    )


if __name__ == "__main__":
    sys.exit(cli())
