"""`python -m bench.routing`: the CPU the shop router (app/shop_routing.py) adds to a request, alone.

A multi-shop BFF (BFF_SHOPS_FILE) puts `ShopRouter` in front of each shop's stack; everything behind it is
the single-shop BFF's code. This calls the router built from a shops file of N shops (bench/shops.py, the
routes `load_shops` gives) with a request for the LAST shop, in front of an app that does nothing, and
the same do-nothing app called directly: the difference is the routing's own cost, in nanoseconds per
request, without the network, the upstream, Redis or the rest of the BFF, whose noise (tens of µs on a
shared machine) would hide it. Each figure is the lowest of several repeats, as periodic costs do not
belong to so small a piece of code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.shop_routing import ShopRouter
from bench.shops import new_shops_config, shop_id


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    """The inner app: returns at once, so only what is in front of it is timed."""


async def _receive() -> Message:
    return {"type": "http.disconnect"}


async def _send(message: Message) -> None:
    pass


def request_scope(host: str, cookie_bytes: int = 200) -> Scope:
    """A `POST /graphql` scope with the headers wrk sends (Host first) and a session cookie's size."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", host.encode()),
            (b"content-type", b"application/json"),
            (b"cookie", b"__bff_session=" + b"x" * cookie_bytes),
            (b"x-csrf", b"1"),
            (b"content-length", b"48"),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


def router_for(count: int, where: Path) -> tuple[ShopRouter, str]:
    """The router of a `count`-shop file, every shop's stack the do-nothing app; and the last shop's Host."""
    config = new_shops_config(count, 8000, "http://127.0.0.1:9", "redis://127.0.0.1:6379/0", where)
    shops = config.shops()
    router = ShopRouter(
        shops.routes,
        {shop_id(n): _nothing for n in range(1, count + 1)},
        deployment=_nothing,
        unknown=_nothing,
    )
    return router, config.host


async def _per_call_ns(app: ASGIApp, scope: Scope, calls: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for _ in range(calls):
            await app(scope, _receive, _send)
        best = min(best, (time.perf_counter_ns() - started) / calls)
    return best


@dataclass
class RoutingCost:
    """Nanoseconds per request: the do-nothing app called directly, and through the router of N shops."""

    direct_ns: float
    routed_ns: dict[int, float] = field(default_factory=dict)  # shops in the file -> ns per request
    calls: int = 0
    repeats: int = 0

    def added_ns(self, count: int) -> float:
        """What the router of `count` shops adds to a request."""
        return self.routed_ns[count] - self.direct_ns


async def measure(counts: list[int], *, calls: int = 200_000, repeats: int = 7) -> RoutingCost:
    """The router's cost for each number of shops in `counts`."""
    with tempfile.TemporaryDirectory() as where:
        direct = await _per_call_ns(_nothing, request_scope("127.0.0.1:8000"), calls, repeats)
        cost = RoutingCost(direct, calls=calls, repeats=repeats)
        for count in counts:
            router, host = router_for(count, Path(where))
            cost.routed_ns[count] = await _per_call_ns(router, request_scope(host), calls, repeats)
    return cost


async def main(counts: list[int], calls: int, repeats: int) -> int:
    cost = await measure(counts, calls=calls, repeats=repeats)
    print(f"the inner app called directly: {cost.direct_ns:6.0f} ns per request (lowest of {repeats} x {calls:,})")
    for count, routed in cost.routed_ns.items():
        print(f"through the router, {count:>3} shops:  {routed:6.0f} ns  (routing {cost.added_ns(count):+5.0f} ns)")
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, action="append", help="shops in the file; repeat (default 1, 2, 50)")
    parser.add_argument("--calls", type=int, default=200_000, help="requests per repeat (default 200,000)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats; the lowest is kept (default 7)")
    args = parser.parse_args()
    return asyncio.run(main(args.shops or [1, 2, 50], args.calls, args.repeats))


if __name__ == "__main__":
    sys.exit(cli())
