"""Render the benchmark's figures and its verdicts against the targets as markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.abuse import AbuseResult
from bench.logins import LoginRate
from bench.profiling import Profile
from bench.redis_usage import CommandUsage, SessionMemory
from bench.routing import RoutingCost
from bench.shops import process_name, target_name
from bench.stampede import StampedeResult
from bench.wrk import WrkResult

TARGETS = ("upstream", "bare proxy", "BFF", "BFF, cache on")
BUSY = 0.25  # cores of other load above which a run is flagged


@dataclass(frozen=True, slots=True)
class Run:
    """One wrk run against one target, with the CPU our processes and everything else used meanwhile."""

    target: str
    wrk: WrkResult
    cpu_us_per_request: dict[str, float]  # process name -> CPU microseconds per request
    other_cores: float | None  # average cores busy with processes that are not the benchmark's
    warmup_errors: int = 0  # errors during the 1 s warm-up at the same concurrency, not in `wrk`


@dataclass
class Results:
    machine: dict[str, str]
    rounds: int = 1
    seconds_per_run: int = 5
    runs: list[Run] = field(default_factory=list)
    commands: CommandUsage | None = None
    commands_cached: CommandUsage | None = None  # the same, BFF_SESSION_CACHE=on
    memory: SessionMemory | None = None
    logins: LoginRate | None = None
    stampede: StampedeResult | None = None
    abuse: AbuseResult | None = None  # the attacker paced (the target)
    flood: AbuseResult | None = None  # the attacker as fast as it gets answers
    profile: Profile | None = None
    profile_note: str = ""
    seconds: float = 0.0
    bff_errors: dict[str, int] = field(default_factory=dict)  # "503 session_store_unavailable" -> count
    shop_counts: tuple[int, ...] = ()  # the multi-shop BFFs measured too (bench/shops.py)
    routing: RoutingCost | None = None  # the shop router alone (bench/routing.py)

    def run(self, target: str, connections: int) -> Run:
        """The best of the rounds (other load on a shared machine only ever lowers a figure)."""
        runs = [r for r in self.runs if r.target == target and r.wrk.connections == connections]
        return max(runs, key=lambda r: r.wrk.rps)

    def concurrencies(self) -> list[int]:
        return sorted({r.wrk.connections for r in self.runs})

    def targets(self) -> tuple[str, ...]:
        return (*TARGETS, *(target_name(n) for n in self.shop_counts))


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def _cpu(run: Run, *names: str) -> str:
    return ", ".join(f"{n} {run.cpu_us_per_request[n]:.0f}" for n in names if n in run.cpu_us_per_request)


def _throughput(res: Results) -> list[str]:
    lines = [
        "| target | conns | req/s | p50 ms | p90 ms | p99 ms | errors | CPU µs/req | other load |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    involved = {
        "upstream": ("upstream",),
        "bare proxy": ("proxy", "upstream"),
        "BFF": ("bff", "upstream", "redis"),
        "BFF, cache on": ("bff-cache", "upstream", "redis"),
        **{target_name(n): (process_name(n), "upstream", "redis") for n in res.shop_counts},
    }
    for c in res.concurrencies():
        for target in res.targets():
            r = res.run(target, c)
            w = r.wrk
            other = "?" if r.other_cores is None else f"{r.other_cores:.2f}"
            latency = f"{w.p50_ms:.2f} | {w.p90_ms:.2f} | {w.p99_ms:.2f}"
            errors = f"{w.errors} ({w.non_2xx} non-2xx)" if w.errors else "0"
            if r.warmup_errors:
                errors += f" + {r.warmup_errors} in warm-up"
            lines.append(
                f"| {target} | {c} | {w.rps:,.0f} | {latency} | {errors} | {_cpu(r, *involved[target])} | {other} |"
            )
    multi = bool(res.shop_counts)
    lines += [
        "",
        "| BFF | conns | BFF / bare proxy | BFF / upstream | added p50 vs proxy | added p99 vs proxy "
        "| added p50 vs upstream | BFF CPU per request vs proxy |" + (" vs the one-shop BFF |" if multi else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if multi else ""),
    ]
    shops = ((target_name(n), process_name(n)) for n in res.shop_counts)
    bffs = (("BFF", "bff"), ("BFF, cache on", "bff-cache"), *shops)
    for target, process in bffs:
        for c in res.concurrencies():
            up, proxy, bff = res.run("upstream", c), res.run("bare proxy", c), res.run(target, c)
            bff_cpu, proxy_cpu = bff.cpu_us_per_request.get(process), proxy.cpu_us_per_request.get("proxy")
            cpu = f"{bff_cpu:.0f} vs {proxy_cpu:.0f} µs (+{bff_cpu - proxy_cpu:.0f})" if bff_cpu and proxy_cpu else "?"
            line = (
                f"| {target} | {c} | {bff.wrk.rps / proxy.wrk.rps:.2f}x | {bff.wrk.rps / up.wrk.rps:.0%} "
                f"| {bff.wrk.p50_ms - proxy.wrk.p50_ms:+.2f} ms | {bff.wrk.p99_ms - proxy.wrk.p99_ms:+.2f} ms "
                f"| {bff.wrk.p50_ms - up.wrk.p50_ms:+.2f} ms | {cpu} |"
            )
            if multi:
                line += f" {_versus_one_shop(res, target, process, c)} |"
            lines.append(line)
    if multi:
        lines += ["", _routing(res)]
    return lines


def _shop_cpu(res: Results, target: str, process: str, connections: int) -> float | None:
    return res.run(target, connections).cpu_us_per_request.get(process)


def _versus_one_shop(res: Results, target: str, process: str, connections: int) -> str:
    """A multi-shop BFF's req/s and CPU per request against the single-shop BFF's in the same rounds."""
    if target not in {target_name(n) for n in res.shop_counts}:
        return "—"
    ratio = res.run(target, connections).wrk.rps / res.run("BFF", connections).wrk.rps
    ours, one = _shop_cpu(res, target, process, connections), _shop_cpu(res, "BFF", "bff", connections)
    cpu = f", CPU {ours - one:+.0f} µs" if ours is not None and one is not None else ""
    return f"{ratio:.2f}x{cpu}"


def _routing(res: Results) -> str:
    """The routing's cost in a sentence: each multi-shop BFF against the single-shop one, every concurrency."""
    parts = []
    for n in res.shop_counts:
        target = target_name(n)
        ratios = "/".join(f"{res.run(target, c).wrk.rps / res.run('BFF', c).wrk.rps:.2f}" for c in res.concurrencies())
        extra = [
            ours - one
            for c in res.concurrencies()
            if (ours := _shop_cpu(res, target, process_name(n), c)) is not None
            and (one := _shop_cpu(res, "BFF", "bff", c)) is not None
        ]
        cpu = f", BFF CPU {min(extra):+.0f} to {max(extra):+.0f} µs per request" if extra else ""
        parts.append(f"{n} shops {ratios}x the single-shop BFF's req/s{cpu}")
    where = "/".join(f"c{c}" for c in res.concurrencies())
    alone = ""
    if res.routing is not None:
        r = res.routing
        added = ", ".join(f"{r.added_ns(n) / 1000:.2f} µs with {n}" for n in r.routed_ns)
        alone = (
            f" The router alone (`bench/routing.py`: `ShopRouter` in front of an app that does nothing, in-process, "
            f"lowest of {r.repeats} x {r.calls:,} requests for the file's last shop) adds {added} shop(s) "
            "(app/shop_routing.py looks the Host up in a dict: no scan of the shops)."
        )
    return (
        f"**Routing among shops** (`BFF_SHOPS_FILE`, requests for the last shop of the file by its Host header; "
        f"{where}): {'; '.join(parts)}. These whole-BFF differences include this shared machine's noise between runs "
        "(see *other load*; req/s moves most, CPU per request less); `python -m bench.asgi_cpu --shops 50` "
        f"compares the two BFFs in-process, without the network.{alone}"
    )


def _routing_target(res: Results) -> str | None:
    """The verdict on 'the cost of routing must be negligible' (issue 17): the router's own CPU per request
    among the most shops measured, against the one-shop BFF's whole CPU per request at c32."""
    if res.routing is None or not res.routing.routed_ns or 32 not in res.concurrencies():
        return None
    most = max(res.routing.routed_ns)
    one = _shop_cpu(res, "BFF", "bff", 32)
    if not one:
        return None
    added = res.routing.added_ns(most) / 1000
    share = added / one
    whole = ""
    if most in res.shop_counts:
        run, single = res.run(target_name(most), 32), res.run("BFF", 32)
        ours = run.cpu_us_per_request.get(process_name(most))
        cpu = f"{ours - one:+.0f} µs CPU, " if ours is not None else ""
        ratio = run.wrk.rps / single.wrk.rps
        whole = f"; the whole {most}-shop BFF vs the one-shop one at c32: {cpu}{ratio:.2f}x req/s"
    return (
        f"| routing among {most} shops negligible: the router's own CPU ≤ 1% of the one-shop BFF's per request "
        f"(c32) | {added:.2f} of {one:.0f} µs ({share:.2%}){whole} | {_verdict(share <= 0.01)} |"
    )


def _targets(res: Results) -> list[str]:
    lines = ["| target | figure | verdict |", "|---|---|---|"]
    if res.runs:
        for target in ("BFF", "BFF, cache on"):
            for conns, floor in ((32, 0.8), *((c, 0.75) for c in res.concurrencies() if c != 32)):
                ratio = res.run(target, conns).wrk.rps / res.run("bare proxy", conns).wrk.rps
                lines.append(
                    f"| {target} ≥ {floor:.2f}x the bare aiohttp proxy at c{conns} | {ratio:.2f}x "
                    f"| {_verdict(ratio >= floor)} |"
                )
        bff = {c: res.run("BFF", c).wrk for c in res.concurrencies()}
        best, last = max(w.rps for w in bff.values()), bff[max(bff)]
        errors = sum(r.wrk.errors + r.warmup_errors for r in res.runs if r.target == "BFF")
        ok = last.rps >= 0.8 * best and errors == 0
        figures = " → ".join(f"{w.rps:,.0f}" for w in bff.values())
        logged = "; ".join(f"{n} x {code}" for code, n in res.bff_errors.items())
        lines.append(
            f"| no collapse c8 → c128 (c128 ≥ 80% of the best, no errors in any run or warm-up) | {figures} req/s, "
            f"{errors} errors{f' (BFF log: {logged})' if logged else ''} | {_verdict(ok)} |"
        )
    routing_row = _routing_target(res)
    if routing_row:
        lines.append(routing_row)
    if res.commands:
        trips = res.commands.request_round_trips
        ok = abs(trips - 1) < 0.005 and res.commands.failed == 0
        lines.append(f"| exactly one Redis round trip per steady-state request | {trips:.3f} | {_verdict(ok)} |")
    if res.commands_cached:
        trips = res.commands_cached.request_round_trips
        ok = trips < 0.05 and res.commands_cached.failed == 0
        lines.append(
            f"| with BFF_SESSION_CACHE=on: no round trip where the copy is current (flushes and heartbeats only) "
            f"| {trips:.3f} | {_verdict(ok)} |"
        )
    if res.memory:
        per = res.memory.bytes_per_session
        lines.append(f"| < 1.5 KB Redis memory per session | {per:,.0f} B | {_verdict(per < 1536)} |")
    if res.logins:
        rate = res.logins.per_second
        lines.append(f"| ≥ 200 logins/s through the full code flow | {rate:,.1f}/s | {_verdict(rate >= 200)} |")
    if res.stampede:
        s = res.stampede
        ok = s.refresh_grants == 1 and s.all_ok
        lines.append(
            f"| exactly one refresh per stampede | {s.refresh_grants} refresh grant(s), "
            f"{s.statuses.get(200, 0)}/{s.requests} answered 200 | {_verdict(ok)} |"
        )
    if res.abuse:
        a = res.abuse
        lines.append(
            f"| victim median under a costly-document attack ({a.attack_rate or 0:.0f}/s) ≤ 2x alone | "
            f"{a.alone_median_ms:.1f} → "
            f"{a.attacked_median_ms:.1f} ms ({a.slowdown:.1f}x) | {_verdict(a.within_2x)} |"
        )
    return lines


def _redis(res: Results) -> list[str]:
    lines: list[str] = []
    if res.commands:
        c = res.commands
        lines += [
            f"Over {c.requests:,} `/graphql` requests (8 concurrent, after a warm-up; {c.failed} not 200), counted "
            "with `INFO commandstats` deltas and split with `MONITOR` into commands a client sent (round trips) "
            "and commands a Lua script ran:",
            "",
            "| command | calls/request | sent by a client | run inside Lua |",
            "|---|---:|---:|---:|",
        ]
        for name in sorted(set(c.per_command) | set(c.round_trips) | set(c.in_scripts)):
            lines.append(
                f"| {name} | {c.per_command.get(name, 0):.3f} | {c.round_trips.get(name, 0):.3f} "
                f"| {c.in_scripts.get(name, 0):.3f} |"
            )
        lines.append("")
    if res.memory:
        m = res.memory
        parts = ", ".join(f"`{prefix}:*` {size:,.0f} B" for prefix, size in m.by_prefix.items())
        lines.append(
            f"Memory: {m.sessions:,} sessions created through `SessionStore` with Shopify-sized tokens "
            f"(`shcat_`/`shcrt_` + 43 characters, an RS256 ID token of about 900 bytes, a customer id and device as a "
            f"real login stores them), each then read once "
            f"through the hot path: **{m.bytes_per_session:,.0f} bytes per session** (`MEMORY USAGE` of every key: "
            f"{parts}); the stored record alone is {m.record_bytes:,.0f} bytes "
            f"({m.decode_us:.1f} µs of CPU to decode); `used_memory` grew by "
            f"{m.used_memory_per_session:,.0f} bytes per session."
        )
    return lines


def _logins(res: Results) -> list[str]:
    lines: list[str] = []
    if res.logins:
        lo = res.logins
        cpu = ", ".join(f"{name} {ms:.1f} ms" for name, ms in lo.cpu_ms_per_login.items())
        lines.append(
            f"Full authorization-code logins against the strict stand-in (`python -m mock_shopify`), "
            f"{lo.concurrency} browsers at a time (aiohttp): GET /auth/login → authorize page → POST the login form → "
            f"GET /auth/callback. **{lo.per_second:.1f} logins/s** ({lo.logins} logins in {lo.seconds:.1f} s, "
            f"{lo.failed} failed). CPU per login: {cpu}. The stand-in's RS256 signing and the BFF's ID-token "
            "verification run on the same cores."
        )
    if res.stampede:
        s = res.stampede
        lines += [
            "",
            f"Refresh stampede: one session whose access token has expired, {s.requests} concurrent `/graphql` "
            f"requests (each on its own connection): all answered in **{s.seconds * 1000:.0f} ms** (statuses "
            f"{s.statuses}); the same burst with a fresh token took {s.baseline_seconds * 1000:.0f} ms; "
            f"**{s.refresh_grants} refresh grant(s)** counted by the stand-in.",
        ]
    return lines


def _abuse(res: Results) -> list[str]:
    a, f = res.abuse, res.flood
    if a is None:
        return ["Not run."]
    lines = [
        "A BFF with the default `/graphql` limits (`BFF_RATE_LIMIT_GRAPHQL=300/minute` per session, "
        "`BFF_RATE_LIMIT_GRAPHQL_CUSTOMER=1200/minute` per customer) and two logged-in customers. The victim "
        f"sends {a.victim_requests} small `/graphql` requests one after another; then again while the attacker, "
        f"in a process of its own (so its client does not slow the victim's), runs {a.attackers} loops of a "
        f"{a.attack_body_bytes:,}-byte document (deep nesting and thousands of directives), {a.attack_rate or 0:.0f} "
        f"requests/s in all. Victim median **{a.alone_median_ms:.1f} ms alone, {a.attacked_median_ms:.1f} ms "
        f"under attack** (p90 {a.attacked_p90_ms:.1f} ms; {a.slowdown:.1f}x). The attacker's "
        f"{a.attack_requests:,} requests were answered {a.attack_statuses} (400 is `query_too_large`, refused "
        "before parsing; 429 is the session's or the customer's rate limit).",
    ]
    if f is not None:
        lines += [
            "",
            f"The same attacker unpaced, each loop sending as soon as it has its answer (a flood: the front "
            f"proxy's request-rate cap is what stops this one): {f.attack_requests:,} requests, answered "
            f"{f.attack_statuses}; victim median {f.alone_median_ms:.1f} → {f.attacked_median_ms:.1f} ms "
            f"({f.slowdown:.1f}x). On two shared cores the flood takes a core whatever each answer costs.",
        ]
    return lines


def _profile(res: Results) -> list[str]:
    if res.profile is None:
        return [res.profile_note or "Not recorded."]
    p = res.profile
    lines = [
        res.profile_note,
        "",
        "| # | own | total | function | file | main caller |",
        "|---:|---:|---:|---|---|---|",
    ]
    for i, e in enumerate(p.top_own, 1):
        lines.append(f"| {i} | {e.own:.1%} | {e.total:.1%} | `{e.function}` | {e.where} | {e.caller} |")
    lines += ["", "BFF code (app/), by inclusive time:", "", "| total | own | function | file |", "|---:|---:|---|---|"]
    lines += [f"| {e.total:.1%} | {e.own:.1%} | `{e.function}` | {e.where} |" for e in p.top_app]
    lines += ["", "Own time by component: " + ", ".join(f"{n} {s:.0%}" for n, s in p.components.items()) + "."]
    return lines


def _header(res: Results) -> list[str]:
    m = res.machine
    lines = [
        "# Benchmark results",
        "",
        f"`make bench` on {m['platform']}, Python {m['python']}, **{m['cpus']} CPU cores shared by everything**: "
        "wrk (one thread), the upstream, the proxy under test and Redis all run on them, so the figures compare "
        f"the targets with each other; they are not capacity figures. {m['versions']}. Load average at the "
        f"start: {m['load']}. The run took {res.seconds:.0f} s.",
    ]
    busy = [r for r in res.runs if r.other_cores is not None and r.other_cores > BUSY]
    if busy:
        worst = max(r.other_cores or 0 for r in busy)
        lines += [
            "",
            f"> **Noisy machine**: during {len(busy)} of {len(res.runs)} wrk runs, processes outside the benchmark "
            f"used more than {BUSY} of a core (up to {worst:.2f}; column *other load*). Those figures are "
            "lower bounds; rerun `make bench` on a quiet machine before drawing conclusions.",
        ]
    return lines


def _shops_note(res: Results) -> str:
    if not res.shop_counts:
        return ""
    counts = " and ".join(str(n) for n in res.shop_counts)
    return (
        f"*BFF, N shops*: the same BFF with `BFF_SHOPS_FILE` listing N = {counts} shops (`bench/shops.py`: one "
        "upstream and client for all, public URLs `http://127.0.0.<n+1>:PORT`, loopback addresses, so the "
        "production mode of the one-shop BFF at `http://127.0.0.1:PORT`, no `BFF_DEV_MODE`), wrk sending "
        "`Host` of the file's last shop and a session made with that shop's settings (its Redis prefix and "
        "derived cookie and record keys). "
    )


def render(res: Results) -> str:
    out = [
        *_header(res),
        "",
        "## Targets",
        "",
        *_targets(res),
        "",
        "## Throughput and latency",
        "",
        f"`POST /graphql` with a 48-byte GraphQL body: `wrk -t1 -cN -d{res.seconds_per_run}s` after a 1 s warm-up at "
        f"the same concurrency, best of {res.rounds} round(s). *upstream*: the minimal raw-ASGI Customer Account API "
        "stand-in (`bench/upstream.py`, ~1 KB answer); *bare proxy*: raw ASGI + one shared `aiohttp.ClientSession`, "
        "no auth (`bench/bare_proxy.py`), the floor for any Python proxy here; *BFF*: `app.main:create_app` with a "
        "real Redis session (signed cookie + `X-CSRF: 1`; the per-session rate limit raised, still counted), "
        "with `BFF_SESSION_CACHE=off` (every request reads Redis once); *BFF, cache on*: the same with "
        "`BFF_SESSION_CACHE=on`, serving the same session, as deployed by default on a plain `redis://` URL. "
        f"{_shops_note(res)}"
        f"All {len(res.targets())}: uvicorn, one worker, uvloop, httptools, no access log. *CPU µs/req*: user+system "
        "CPU of each process during the run divided by the requests. *other load*: cores busy with processes "
        "outside the benchmark.",
        "",
        *_throughput(res),
        "",
        "## Redis",
        "",
        *_redis(res),
        "",
        "## Logins and refresh",
        "",
        *_logins(res),
        "",
        "## Abuse",
        "",
        *_abuse(res),
        "",
        "## Profile",
        "",
        *_profile(res),
        "",
    ]
    return "\n".join(out)
