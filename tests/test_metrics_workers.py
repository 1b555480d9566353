"""/metrics with several workers in one process tree (BFF_WORKERS=2): every worker's requests are counted, in
a metrics directory of the server's own that goes away with it. Real `python -m app serve` processes."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import httpx

from devkit.redis_server import free_port
from tests.helpers import CUSTOMER_QUERY, Launcher, Process


def rejected_csrf(text: str) -> float:
    """`bff_requests_rejected_total{code="csrf_failed"}` in a scrape, 0 when absent."""
    for line in text.splitlines():
        if line.startswith('bff_requests_rejected_total{code="csrf_failed"} '):
            return float(line.split()[-1])
    return 0.0


async def refused_without_csrf(url: str) -> str:
    """One refused POST /graphql on a connection of its own; the answering worker's request-id prefix."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/graphql", json=CUSTOMER_QUERY)
    assert response.status_code == 403, response.text
    # app.logs.RequestLog: a random prefix per process, then a counter.
    return response.headers["x-request-id"].rsplit("-", 1)[0]


def worker_environments(server: Process) -> list[dict[str, str]]:
    """The environment of each child process of `server` (uvicorn's workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != server.pid:
                continue
            raw = (entry / "environ").read_bytes()
        except (OSError, ValueError):
            continue  # exited meanwhile
        found.append(dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item))
    return found


async def test_metrics_count_the_requests_of_every_worker(launcher: Launcher, redis_url: str) -> None:
    metrics_port = free_port()
    deployment = launcher.deployment(
        redis_url, bffs=1, BFF_WORKERS="2", BFF_METRICS_LISTENER=f"127.0.0.1:{metrics_port}"
    )
    (server,) = deployment.bffs
    # Concurrent fresh connections, in rounds, until both workers have answered some (the kernel picks one per
    # connection); each is one refusal counted by the worker that answered it.
    workers: set[str] = set()
    sent = 0
    while len(workers) < 2:
        assert sent < 400, f"all {sent} requests reached one worker:\n{server.output()[-2000:]}"
        workers.update(await asyncio.gather(*(refused_without_csrf(server.url) for _ in range(20))))
        sent += 20

    # The listener is bound by one worker; each scrape, on a fresh connection, tells the total of both.
    for _ in range(3):
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scraped.status_code == 200
        assert rejected_csrf(scraped.text) == sent
    # The worker that could not bind the listener says why, and warns of nothing: its metrics are served.
    assert "served by another worker" in server.output()
    assert "not started (BFF_METRICS_LISTENER)" not in server.output()

    # The directory is the server's own, private, shared by both workers, and removed when it stops.
    directories = {env.get("PROMETHEUS_MULTIPROC_DIR") for env in worker_environments(server)}
    assert len(directories) == 1 and None not in directories, directories
    directory = Path(str(directories.pop()))
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert directory.stat().st_uid == os.getuid()
    assert server.stop() == 0
    assert not directory.exists()
