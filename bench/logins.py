"""Full authorization-code logins through the BFF against the strict Shopify stand-in, as a browser does them."""

from __future__ import annotations

import asyncio
import html
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import httpx

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_ACTION = re.compile(r'<form method="post" action="([^"]+)">')


@dataclass(frozen=True, slots=True)
class LoginRate:
    logins: int
    failed: int
    concurrency: int
    seconds: float
    cpu_ms_per_login: dict[str, float] = field(default_factory=dict)  # process name -> CPU ms per login

    @property
    def per_second(self) -> float:
        return (self.logins - self.failed) / self.seconds if self.seconds else 0.0


def _expect(response: httpx.Response, status: int, step: str) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(f"{step}: expected {status}, got {response.status_code}: {response.text[:200]}")
    return response


async def log_in(client: httpx.AsyncClient, bff_url: str, email: str) -> str:
    """One login from a fresh browser; returns the `bff_session=...` cookie the BFF set."""
    client.cookies.clear()
    start = _expect(await client.get(f"{bff_url}/auth/login", params={"return_to": "/account"}), 302, "login")
    authorize_url = start.headers["location"]
    page = _expect(await client.get(authorize_url), 200, "authorize page")
    action = _ACTION.search(page.text)
    if action is None:
        raise RuntimeError("authorize page: no login form")
    form = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(page.text)}
    form["email"] = email
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    signed_in = _expect(await client.post(origin + html.unescape(action.group(1)), data=form), 302, "sign in")
    callback = _expect(await client.get(signed_in.headers["location"]), 302, "callback")
    if "login_error" in callback.headers["location"]:
        raise RuntimeError(f"callback: {callback.headers['location']}")
    value = client.cookies.get("bff_session")
    if value is None:
        raise RuntimeError("callback: no session cookie")
    return f"bff_session={value}"


async def _fetch(
    session: aiohttp.ClientSession, method: str, url: str, status: int, step: str, **options: object
) -> tuple[str, str]:
    """(the Location header, the body) of one answer that must have `status`."""
    async with session.request(method, url, allow_redirects=False, **options) as response:  # type: ignore[arg-type]
        text = await response.text()
        if response.status != status:
            raise RuntimeError(f"{step}: expected {status}, got {response.status}: {text[:200]}")
        return response.headers.get("location", ""), text


async def log_in_lean(session: aiohttp.ClientSession, bff_url: str, email: str) -> None:
    """`log_in` on aiohttp, the benchmark's browser: httpx costs the load generator about 1 ms of CPU per
    request, as much as the servers it measures, on the same two cores (DOCS-logins.md)."""
    session.cookie_jar.clear()
    authorize_url, _ = await _fetch(session, "GET", f"{bff_url}/auth/login?return_to=%2Faccount", 302, "login")
    _, page = await _fetch(session, "GET", authorize_url, 200, "authorize page")
    action = _ACTION.search(page)
    if action is None:
        raise RuntimeError("authorize page: no login form")
    form = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN.findall(page)}
    form["email"] = email
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    callback_url, _ = await _fetch(session, "POST", origin + html.unescape(action.group(1)), 302, "sign in", data=form)
    landed, _ = await _fetch(session, "GET", callback_url, 302, "callback")
    if "login_error" in landed:
        raise RuntimeError(f"callback: {landed}")
    if not any(cookie.key == "bff_session" for cookie in session.cookie_jar):
        raise RuntimeError("callback: no session cookie")


async def login_rate(bff_url: str, *, logins: int = 200, concurrency: int = 8, lean: bool = True) -> LoginRate:
    """`logins` complete logins, `concurrency` browsers at a time; a failed login is counted, not fatal.
    `lean`: the browsers are aiohttp sessions (`log_in_lean`), else httpx clients (`log_in`)."""
    failed = 0
    queue = iter(range(logins))

    async def browser() -> None:
        nonlocal failed
        if lean:
            # unsafe: keep cookies for an IP-address host (127.0.0.1), as a browser does.
            jar = aiohttp.CookieJar(unsafe=True)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as session:
                for n in queue:
                    try:
                        await log_in_lean(session, bff_url, f"bench{n}@example.com")
                    except (RuntimeError, aiohttp.ClientError, TimeoutError):
                        failed += 1
            return
        async with httpx.AsyncClient(follow_redirects=False, timeout=30) as client:
            for n in queue:
                try:
                    await log_in(client, bff_url, f"bench{n}@example.com")
                except (RuntimeError, httpx.HTTPError):
                    failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(browser() for _ in range(concurrency)))
    return LoginRate(logins, failed, concurrency, time.perf_counter() - started)


async def _main(logins: int, concurrency: int, profile: str | None, *, lean: bool, access_log: bool) -> None:
    """`python -m bench.logins`: only the login benchmark, with CPU per login per process (bench/run.py's setup)."""
    import subprocess
    from contextlib import ExitStack

    from bench import bff as bench_bff
    from bench.cpu import CpuWindow
    from bench.profiling import py_spy
    from bench.servers import LOG_DIR, Server, uvicorn_args
    from devkit.redis_server import free_port, start_redis

    redis = start_redis()
    try:
        with ExitStack() as stack:
            mock_port, bff_port = free_port(), free_port()
            mock_url = f"http://127.0.0.1:{mock_port}"
            mock_args = [
                "-m", "mock_shopify", "--port", str(mock_port), "--base-url", mock_url,
                "--client-id", bench_bff.CLIENT_ID, "--client-secret", bench_bff.CLIENT_SECRET,
                "--redirect-uri", f"http://127.0.0.1:{bff_port}/auth/callback", "--logout-uri", "http://localhost:3000/",
            ] + ([] if access_log else ["--no-access-log"])  # fmt: skip
            mock = Server("mock-shopify", mock_port, mock_args)
            config = bench_bff.new_config(bff_port, mock_url, redis.url)
            bff = Server("bff-logins", bff_port, uvicorn_args("app.main:create_app", bff_port), config.env())
            for server in (mock, bff):
                stack.callback(server.stop)
                server.start()
            await login_rate(bff.url, logins=20, concurrency=concurrency, lean=lean)
            assert redis.proc is not None
            pids = {"bff": bff.pid, "stand-in": mock.pid, "redis": redis.proc.pid}
            spies = []
            if profile and (spy := py_spy()):
                for name in ("bff", "stand-in"):
                    out = LOG_DIR.parent / f"{profile}-{name}.txt"
                    cmd = [spy, "record", "-p", str(pids[name]), "-r", "250", "-f", "raw", "-o", str(out), "-d", "60"]
                    spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            window = CpuWindow(pids).start()
            client_start = time.process_time()
            rate = await login_rate(bff.url, logins=logins, concurrency=concurrency, lean=lean)
            client = time.process_time() - client_start
            window.stop(rate.seconds)
            for spy_proc in spies:
                spy_proc.send_signal(2)
                spy_proc.wait(timeout=30)
            done = max(1, rate.logins - rate.failed)
            cpu = {name: used * 1000 / done for name, used in (window.per_process or {}).items()}
            cpu["load generator"] = client * 1000 / done
            print(f"{rate.per_second:.1f} logins/s, {rate.failed} failed, c{concurrency}, {rate.seconds:.2f} s")
            print("CPU ms per login: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
            print(f"other load: {window.other_cores or 0:.2f} cores")
    finally:
        redis.cleanup()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.logins")
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--httpx", action="store_true", help="httpx browsers instead of aiohttp ones")
    parser.add_argument("--access-log", action="store_true", help="the stand-in logs every request (its default)")
    parser.add_argument("--profile", help="py-spy raw profiles of both servers to bench/out/NAME-*.txt")
    ns = parser.parse_args()
    asyncio.run(_main(ns.logins, ns.concurrency, ns.profile, lean=not ns.httpx, access_log=ns.access_log))
