"""Every guarantee holds across processes (issue 16, target 2): what one BFF process changes, the others obey.

Two real BFF processes (`python -m app serve`), A and B, share the test Redis and one stand-in. In each test A
is warmed first (the session used there at least twice, so a process-local cache would hold it), the change
happens elsewhere (on B, through the webhook endpoint on B, or by the operator CLI), and A must obey it within
100 ms of the change's answer arriving. Today every request reads Redis, so these hold as they stand; they are
here to hold a process-local session cache to the same guarantees.

Both processes are parametrized over CACHE_MODES, extra environment variables for them: add
`{"BFF_SESSION_CACHE": "on"}` once that setting exists, and every test runs in both modes.

Each test was seen to fail against processes given a naive session cache from outside the repository (a
`sitecustomize` on their PYTHONPATH, as an extra mode): with copies kept for 30 s every test fails; with copies
kept for 30 ms the 100 ms tests pass and the limits still fail (that cache skipped the counting). A single-flight
refresh held in each process alone fails the stampede test (the second process presents the rotated refresh
token and logs the customer out).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mock_shopify.customers import customer_number
from tests.helpers import (
    CSRF,
    CUSTOMER_QUERY,
    Deployment,
    Launcher,
    Process,
    Shop,
    bff_environment,
    browser,
    login,
    python,
    run,
    shop_at,
)

pytestmark = pytest.mark.slow

# Extra environment for both processes, one entry per mode the whole module runs in.
CACHE_MODES: list[dict[str, str]] = [{}, {"BFF_SESSION_CACHE": "on"}]

WEBHOOK_SECRET = "whsec-xproc-8Hq2Lm5Vt9Rz3Wk7Pn1Cj4Fd6"
# Hour-long windows, since two processes can't share the injectable clock: a burst takes about a second, and
# one that straddles a window boundary (where a fixed window counts afresh) runs again. The per-session limit
# holds for every test of the module; the others send far fewer requests.
SESSION_LIMIT = 40
CUSTOMER_LIMIT = 60
STALE_FOR = 0.1  # seconds another process may go on answering from the state before a change


def mode_id(mode: dict[str, str]) -> str:
    """The test id of a cache mode: `defaults`, or `BFF_SESSION_CACHE=on`."""
    return ",".join(f"{name}={value}" for name, value in sorted(mode.items())) or "defaults"


def someone() -> str:
    """A customer of this test alone, so customer-wide state (limits, log out everywhere) never carries over
    between tests, or between runs against the same Redis."""
    return f"xproc-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class Pair:
    """Two BFF processes, A (warmed) and B (where things change), sharing the test Redis and one stand-in."""

    shop: Shop
    a: Process
    b: Process


@pytest.fixture(scope="module", params=CACHE_MODES, ids=mode_id)
def cache_mode(request: pytest.FixtureRequest) -> dict[str, str]:
    mode: dict[str, str] = request.param
    return mode


@pytest.fixture(scope="module")
def pair_processes(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, cache_mode: dict[str, str]
) -> Iterator[Deployment]:
    # Started once per module and mode: process start-up is most of these tests' time.
    launcher = Launcher(tmp_path_factory.mktemp("xproc"))
    env = {
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "BFF_RATE_LIMIT_GRAPHQL": f"{SESSION_LIMIT}/hour",
        "BFF_RATE_LIMIT_GRAPHQL_CUSTOMER": f"{CUSTOMER_LIMIT}/hour",
        # Every test signs in from 127.0.0.1, in each mode: the per-IP login budget is not what is tested here.
        "BFF_RATE_LIMIT_LOGIN": "10000/minute",
        **cache_mode,
    }
    try:
        yield launcher.deployment(redis_url, bffs=2, **env)
    finally:
        launcher.stop_all()


@pytest.fixture
async def pair(pair_processes: Deployment) -> AsyncIterator[Pair]:
    """The shared pair, its stand-in reset: no tokens, knobs, subscription or counters from an earlier test."""
    async with shop_at(pair_processes.shop.url) as shop:
        await shop.knob("reset")
        yield Pair(shop, *pair_processes.bffs)


# --- One browser session, and the check that a process obeys a change ----------------------------------


class Session:
    """One signed-in browser session, its cookie sent by value on every request: a BFF that clears the cookie
    in one answer still gets it on the next, so "refused" always means the BFF refused this session."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.cookie = client.cookies["bff_session"]

    @property
    def headers(self) -> dict[str, str]:
        # An explicit Cookie header wins over the client's jar.
        return {"Cookie": f"bff_session={self.cookie}"}

    async def gql(self, at: Process) -> httpx.Response:
        return await self.client.post(f"{at.url}/graphql", json=CUSTOMER_QUERY, headers={**CSRF, **self.headers})

    async def warm(self, at: Process) -> None:
        """Use the session on `at` twice, as a cache would need to hold it."""
        for _ in range(2):
            answer = await self.gql(at)
            assert answer.status_code == 200, answer.text

    async def logout(self, at: Process, *, everywhere: bool = False) -> None:
        headers = {**CSRF, **self.headers, "Accept": "application/json"}
        params = {"everywhere": "true"} if everywhere else {}
        out = await self.client.post(f"{at.url}/auth/logout", params=params, headers=headers)
        assert out.status_code == 200, out.text


@asynccontextmanager
async def signed_in(at: Process, email: str) -> AsyncIterator[Session]:
    async with browser() as client:
        await login(client, email, at=at.url)
        yield Session(client)


async def within_stale_window(check: Callable[[], Awaitable[bool]], *, since: float, what: str) -> None:
    """Poll `check` until true. Fails once a request sent STALE_FOR seconds or more after `since` (the
    monotonic time the change's answer arrived) still finds it false: an answer in flight before the
    deadline may still show the old state."""
    while True:
        sent = time.monotonic()
        if await check():
            return
        assert sent - since < STALE_FOR, f"{what}: not so {sent - since:.3f}s after the change"
        await asyncio.sleep(0.01)


async def refused_on(session: Session, at: Process, *, since: float) -> None:
    """`session` is refused by `at` within the stale window; until then it may only be served.

    /auth/session answers from the BFF's own state (it reaches Shopify only for a due token), so a process
    that still holds the ended session shows it there even where Shopify would refuse its token (the
    stand-in ends a deleted customer's tokens too).
    """

    async def refused() -> bool:
        status = await session.client.get(f"{at.url}/auth/session", headers=session.headers)
        assert status.status_code == 200, status.text
        answer = await session.gql(at)
        assert answer.status_code in (200, 401), answer.text
        return status.json()["authenticated"] is False and answer.status_code == 401

    await within_stale_window(refused, since=since, what=f"the ended session refused by {at.name}")


# --- Sessions ended elsewhere ------------------------------------------------------------------------------


async def test_a_logout_on_one_process_is_refused_by_the_other_within_100ms(pair: Pair) -> None:
    async with signed_in(pair.a, someone()) as session:
        await session.warm(pair.a)
        await session.logout(pair.b)
        await refused_on(session, pair.a, since=time.monotonic())


async def test_log_out_everywhere_on_one_process_ends_the_customers_other_sessions_on_the_other(pair: Pair) -> None:
    email = someone()
    async with signed_in(pair.a, email) as phone, signed_in(pair.a, email) as laptop:
        await phone.warm(pair.a)
        await laptop.warm(pair.a)
        await laptop.logout(pair.b, everywhere=True)
        since = time.monotonic()
        await refused_on(phone, pair.a, since=since)
        await refused_on(laptop, pair.a, since=since)


async def test_a_deleted_customer_delivered_to_one_process_is_refused_by_the_other_within_100ms(pair: Pair) -> None:
    email = someone()
    await pair.shop.knob("webhooks", url=f"{pair.b.url}/webhooks/shopify", secret=WEBHOOK_SECRET, attempts=1)
    async with signed_in(pair.a, email) as session:
        await session.warm(pair.a)
        # The knob answers once B answered the signed delivery.
        delivered = await pair.shop.knob("customers/delete", email=email)
        since = time.monotonic()
        assert delivered["delivery"]["statuses"] == [200]
        await refused_on(session, pair.a, since=since)


async def test_the_operators_end_sessions_is_refused_by_a_running_process_within_100ms(
    pair: Pair, redis_url: str, tmp_path: Path
) -> None:
    email = someone()
    async with signed_in(pair.a, email) as session:
        await session.warm(pair.a)
        env = {**bff_environment(pair.b.port, pair.shop.url), "REDIS_URL": redis_url}
        command = python("-m", "app", "end-sessions", "--customer-id", str(customer_number(email)))
        done = await asyncio.to_thread(run, command, cwd=tmp_path, env=env)
        since = time.monotonic()
        assert "ended 1 session(s)" in done.stdout, done.stdout + done.stderr
        await refused_on(session, pair.a, since=since)


# --- Refreshes ---------------------------------------------------------------------------------------------


async def token_used(shop: Shop) -> str:
    """The Authorization header of the stand-in's last GraphQL call."""
    authorization: str = (await shop.stats())["last_graphql_request"]["authorization"]
    return authorization


async def uses_the_token(session: Session, at: Process, shop: Shop, token: str) -> bool:
    """A call on `at` is served going to Shopify once, with `token`: not first with the old token, its 401
    and a second try. Never with a refresh of its own: Shopify rotates refresh tokens, so a second refresh
    would present a dead one and log the customer out."""
    calls = (await shop.stats())["graphql_requests"]
    answer = await session.gql(at)
    assert answer.status_code == 200, answer.text
    stats = await shop.stats()
    assert stats["grants"]["refresh_token"] == 1
    used: str = stats["last_graphql_request"]["authorization"]
    return stats["graphql_requests"] == calls + 1 and used == token


async def test_a_refresh_on_one_process_is_used_by_the_other(pair: Pair) -> None:
    async with signed_in(pair.a, someone()) as session:
        await session.warm(pair.a)
        before = await token_used(pair.shop)
        await pair.shop.knob("expire_access_tokens")  # dead at Shopify: the next call refreshes
        assert (await session.gql(pair.b)).status_code == 200
        since = time.monotonic()
        refreshed = await token_used(pair.shop)
        assert refreshed != before

        async def new_token_on_a() -> bool:
            return await uses_the_token(session, pair.a, pair.shop, refreshed)

        await within_stale_window(new_token_on_a, since=since, what=f"{pair.a.name} using B's refresh")


async def test_a_refresh_stampede_across_two_processes_refreshes_once(pair: Pair) -> None:
    async with signed_in(pair.a, someone()) as session:
        await session.warm(pair.a)
        await session.warm(pair.b)
        await pair.shop.knob("expire_access_tokens")
        await pair.shop.knob("delay_token", count=1, seconds=0.3)  # widen the race window
        stampede = await asyncio.gather(*(session.gql(bff) for _ in range(8) for bff in (pair.a, pair.b)))
        since = time.monotonic()
        assert [r.status_code for r in stampede] == [200] * 16
        # A lock or a check of the stored token held in one process alone would let each process refresh.
        assert (await pair.shop.stats())["grants"]["refresh_token"] == 1
        refreshed = await token_used(pair.shop)
        for bff in (pair.a, pair.b):

            async def new_token(bff: Process = bff) -> bool:
                return await uses_the_token(session, bff, pair.shop, refreshed)

            await within_stale_window(new_token, since=since, what=f"{bff.name} using the one refresh")


# --- Rate limits -------------------------------------------------------------------------------------------


def served(answers: list[httpx.Response]) -> int:
    """How many were served; every other answer must be the limit's 429."""
    refused = [r for r in answers if r.status_code != 200]
    assert all(r.status_code == 429 and r.json()["error"] == "rate_limited" for r in refused), refused[0].text
    return len(answers) - len(refused)


async def in_one_window(burst: Callable[[], Awaitable[int]]) -> int:
    """Run `burst` (it answers how many it got served), once more if it straddled the boundary of the
    hourly windows, where a fixed window counts afresh."""
    for _ in range(2):
        started = time.time()
        count = await burst()
        if int(started // 3600) == int(time.time() // 3600):
            return count
    raise AssertionError("two bursts in a row straddled an hour boundary")


async def test_the_per_session_limit_holds_across_two_processes(pair: Pair) -> None:
    async def burst() -> int:
        async with signed_in(pair.a, someone()) as session:
            # A gets the session's first two requests (warmed), then A and B take turns: twice the limit in
            # all, as many as two processes counting apart would serve.
            answers = [await session.gql(pair.a), await session.gql(pair.a)]
            while len(answers) < 2 * SESSION_LIMIT:
                answers += [await session.gql(pair.a), await session.gql(pair.b)]
            return served(answers)

    assert SESSION_LIMIT <= await in_one_window(burst) <= SESSION_LIMIT * 1.1


async def test_the_per_customer_limit_holds_across_two_processes(pair: Pair) -> None:
    async def burst() -> int:
        email = someone()
        async with signed_in(pair.a, email) as on_a, signed_in(pair.b, email) as on_b:
            # One session per process, taking turns; each stays under the per-session limit until the
            # customer's budget is spent, and counted apart the processes would serve up to 2 x 40 = 80.
            answers = [await on_a.gql(pair.a), await on_a.gql(pair.a)]
            while len(answers) < 100:
                answers += [await on_a.gql(pair.a), await on_b.gql(pair.b)]
            return served(answers)

    assert CUSTOMER_LIMIT <= await in_one_window(burst) <= CUSTOMER_LIMIT * 1.1


# --- Redis outage ------------------------------------------------------------------------------------------


def assert_store_down(answer: httpx.Response) -> None:
    """503 with the stable code, and the session cookie left alone."""
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "session_store_unavailable"
    assert "bff_session" not in answer.headers.get("set-cookie", "")


async def test_a_redis_outage_is_503_on_both_processes_and_logs_no_one_out(
    launcher: Launcher, cache_mode: dict[str, str]
) -> None:
    redis = launcher.redis()  # our own, to stop; the pair of the module keeps the shared one
    a, b = launcher.deployment(redis.url, bffs=2, **cache_mode).bffs
    async with signed_in(a, someone()) as session:
        await session.warm(a)
        await session.warm(b)
        redis.stop()
        since = time.monotonic()
        for bff in (a, b):

            async def unavailable(bff: Process = bff) -> bool:
                answer = await session.gql(bff)
                if answer.status_code == 200:
                    return False  # a copy from before the outage, for the stale window at most
                assert_store_down(answer)
                return True

            await within_stale_window(unavailable, since=since, what=f"503 from {bff.name}")
            assert_store_down(await session.client.get(f"{bff.url}/auth/session", headers=session.headers))

        redis.start()  # same port, same append-only file; neither process restarted
        for bff in (a, b):
            assert (await session.gql(bff)).status_code == 200
            status = await session.client.get(f"{bff.url}/auth/session", headers=session.headers)
            assert status.json()["authenticated"] is True
