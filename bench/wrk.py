"""Drive load with wrk (bench/post.lua) and parse the summary line its `done()` prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post.lua")
_MARKER = "BENCH_RESULT "


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run. Latencies in milliseconds; `errors` counts socket errors and non-2xx/3xx answers."""

    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    return found


def wrk_version() -> str:
    out = subprocess.run([wrk_binary(), "--version"], capture_output=True, text=True, check=False)
    words = (out.stdout or out.stderr).split()
    return words[1] if len(words) > 1 else "?"


def parse(output: str, connections: int) -> WrkResult:
    line = next((ln for ln in output.splitlines() if ln.startswith(_MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    raw = json.loads(line.removeprefix(_MARKER))
    return WrkResult(
        connections=connections,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50"] / 1000,
        p90_ms=raw["p90"] / 1000,
        p99_ms=raw["p99"] / 1000,
        max_ms=raw["max"] / 1000,
        errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"] + raw["status"],
        non_2xx=raw["status"],
    )


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    cookie: str | None = None,
    body: str | None = None,
    host: str | None = None,
) -> WrkResult:
    """One `wrk -t1 -c<connections>` run of POSTs against `url`; `host` replaces the Host header (which shop of
    a multi-shop BFF the requests are for)."""
    env = {**os.environ, "BENCH_COOKIE": cookie or ""}
    if body is not None:
        env["BENCH_BODY"] = body
    # -t1: a single load thread leaves as much of the 2 cores as possible to the servers under test.
    args = [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        *(["-H", f"Host: {host}"] if host else []),
        "-s",
        str(SCRIPT),
        url,
    ]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout, connections)
