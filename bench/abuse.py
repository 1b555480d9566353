"""One customer attacking with costly GraphQL documents while another uses the store: does the victim notice?

The attack document is the one that stalled a worker before the inspection bounds (issue 11): 60 KB of deep
nesting and thousands of directives, which the BFF used to parse and print in full for the depth check.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from bench.bff import GRAPHQL_BODY
from bench.logins import log_in


def attack_body(size: int = 60_000) -> str:
    nesting = "{ a " * 200 + "}" * 200
    directives = "@skip(if: false) " * ((size - len(nesting) - 40) // 17)
    return json.dumps({"query": f"query {{ customer {directives} {{ id }} }} {nesting}"})


@dataclass(frozen=True, slots=True)
class AbuseResult:
    victim_requests: int
    attackers: int
    alone_median_ms: float
    attacked_median_ms: float
    attacked_p90_ms: float
    attack_requests: int
    attack_statuses: dict[int, int]
    attack_body_bytes: int
    attack_rate: float | None  # requests/s the attacker was paced at; None: as fast as answers come (a flood)

    @property
    def slowdown(self) -> float:
        return self.attacked_median_ms / self.alone_median_ms

    @property
    def within_2x(self) -> bool:
        return self.slowdown <= 2.0


async def _victim(http: aiohttp.ClientSession, url: str, cookie: str, requests: int) -> list[float]:
    headers = {"Cookie": cookie, "X-CSRF": "1", "Content-Type": "application/json"}
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        async with http.post(url, data=GRAPHQL_BODY, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status  # the victim stays inside its own limit
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _attack(
    url: str, cookie: str, body: str, attackers: int, rate: float | None, running: Any, stop: Any, out: Any
) -> None:
    """The attacker, in a process of its own: its event loop must not slow the victim's client down, or the
    benchmark would measure the load generator instead of the BFF."""

    async def main() -> Counter[int]:
        statuses: Counter[int] = Counter()
        headers = {"Cookie": cookie, "X-CSRF": "1", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            interval = attackers / rate if rate else 0.0

            async def loop() -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    async with http.post(url, data=body, headers=headers) as response:
                        await response.read()
                        statuses[response.status] += 1
                    if interval:
                        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

            tasks = [asyncio.ensure_future(loop()) for _ in range(attackers)]
            await asyncio.sleep(0.5)  # full speed before the victim measures
            running.set()
            await asyncio.gather(*tasks)
        return statuses

    out.put(dict(asyncio.run(main())))


async def abuse(
    bff_url: str, *, victim_requests: int = 100, attackers: int = 8, rate: float | None = None
) -> AbuseResult:
    """The victim's sequential /graphql latency alone, then with `attackers` concurrent attack loops running in
    another process, together at most `rate` requests/s (None: each loop sends as soon as it has its answer).

    The victim's own requests (warm-up included) stay under the default 300/minute session limit.
    """
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as browser:
        victim = await log_in(browser, bff_url, f"victim-{rate}@example.com")
        attacker = await log_in(browser, bff_url, f"attacker-{rate}@example.com")
    url = f"{bff_url}/graphql"
    body = attack_body()
    spawn = multiprocessing.get_context("spawn")
    running, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        await _victim(http, url, victim, 10)  # warm-up
        alone = await _victim(http, url, victim, victim_requests)
        process = spawn.Process(target=_attack, args=(url, attacker, body, attackers, rate, running, stop, out))
        process.start()
        try:
            if not await asyncio.to_thread(running.wait, 30):
                raise RuntimeError("the attacker process did not start")
            attacked = await _victim(http, url, victim, victim_requests)
        finally:
            stop.set()
        statuses: dict[int, int] = await asyncio.to_thread(out.get, True, 30)
        await asyncio.to_thread(process.join, 10)
    return AbuseResult(
        victim_requests=victim_requests,
        attackers=attackers,
        alone_median_ms=statistics.median(alone),
        attacked_median_ms=statistics.median(attacked),
        attacked_p90_ms=statistics.quantiles(attacked, n=10)[-1],
        attack_requests=sum(statuses.values()),
        attack_statuses=statuses,
        attack_body_bytes=len(body),
        attack_rate=rate,
    )
