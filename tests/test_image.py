"""The image, built and run by a real Docker engine: a login through the stand-in, the session across a restart
of the BFF's container, draining on `docker stop`, uid 10001 on a read-only root, two workers' metrics summed
there; then the same through `docker compose` with docker-compose.host.yml.

The engine is the running one, else a dockerd this module starts (root only) and stops. Every container uses the
host's network, here only loopback. With our own engine (a machine like CI's, which reaches no registry) the base
images are built here from Debian packages (devkit/base_images.py, cached between runs); with a running one (a
developer's) they are the defaults of the Dockerfile and docker-compose.yml. BFF_IMAGE_BASES=local|registry
chooses either way.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.base_images import REDIS, apt_mirror, cached, import_base, python_base, rootfs_tarball, trusted_ca_bundle
from devkit.docker_engine import Engine, EngineError, docker_engine, why_no_engine
from devkit.pip_index import BUILD_ARGS, pip_build_args
from devkit.redis_server import free_port
from tests.helpers import EMAIL, ROOT, Launcher, Shop, bff_environment, browser, eventually, gql, login, shop_at

pytestmark = pytest.mark.slow

BFF_TAG = "customer-account-bff:image-test"
COMPOSE_TAG = "customer-account-bff:compose-test"
REGISTRY_REDIS = "redis:7-alpine"  # docker-compose.yml's
GRACE = 25  # docker-compose.yml's stop_grace_period; `docker stop -t` gets the same
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Images:
    bff: str
    redis: str
    build_args: dict[str, str]  # PYTHON_IMAGE (empty: the Dockerfile's default) and the host's pip indexes


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    reason = why_no_engine()
    if reason is not None:
        pytest.skip(reason)
    with docker_engine() as engine:
        yield engine


def base_images(engine: Engine) -> tuple[str | None, str]:
    """The python base (None: the Dockerfile's default) and the Redis image, built, imported or pulled."""
    choice = os.environ.get("BFF_IMAGE_BASES") or ("local" if engine.owned else "registry")
    if choice == "registry":
        try:
            engine.docker("pull", REGISTRY_REDIS, timeout=600)
        except EngineError as error:
            pytest.fail(f"{error}\nNo registry? BFF_IMAGE_BASES=local builds the bases here with debootstrap.")
        return None, REGISTRY_REDIS
    mirror = apt_mirror()
    python = python_base(trusted_ca_bundle())
    missing = [base for base in (python, REDIS) if not cached(base, mirror).exists()]
    if missing and shutil.which("debootstrap") is None:
        pytest.skip("no registry, and no debootstrap to build base images with (apt-get install debootstrap)")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two debootstraps side by side: ~40 s instead of ~70 s
        list(pool.map(lambda base: rootfs_tarball(base, mirror), missing))
    return import_base(engine, python, mirror), import_base(engine, REDIS, mirror)


@pytest.fixture(scope="module")
def images(engine: Engine) -> Iterator[Images]:
    python, redis = base_images(engine)
    # The host's pip indexes stay served for the module: compose builds again (from the engine's cache).
    with pip_build_args() as pip_args:
        # Every arg docker-compose.host.yml passes, empty when unset as compose passes them, so that compose's
        # build of the same files is all cache hits.
        build_args = {name: pip_args.get(name, "") for name in BUILD_ARGS.values()} | {"PYTHON_IMAGE": python or ""}
        flags = [flag for name, value in build_args.items() for flag in ("--build-arg", f"{name}={value}")]
        engine.docker("build", "--network", "host", *flags, "-t", BFF_TAG, str(ROOT), timeout=900)
        yield Images(BFF_TAG, redis, build_args)


# --- Containers -----------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def inspect(engine: Engine, container: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(engine.docker("inspect", container))
    return found[0]


def logs(engine: Engine, container: str) -> str:
    try:
        return engine.docker("logs", "--tail", "30", container)
    except EngineError as error:
        return str(error)


def wait_ready(engine: Engine, container: str, url: str) -> None:
    """Until the BFF in `container` answers GET /readyz with 200; fails with its logs if it exits or stalls."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = inspect(engine, container)["State"]
        assert state["Running"], f"the BFF container exited ({state['ExitCode']}):\n{logs(engine, container)}"
        assert time.monotonic() < deadline, f"/readyz not 200 within {READY_TIMEOUT}s:\n{logs(engine, container)}"
        time.sleep(0.1)


def assert_unprivileged_on_a_read_only_root(engine: Engine, container: str) -> None:
    details = inspect(engine, container)
    assert details["HostConfig"]["ReadonlyRootfs"] is True
    status = engine.docker("exec", container, "cat", "/proc/1/status")  # pid 1: the server itself
    ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines() if line.startswith(("Uid", "Gid"))}
    assert ids == {"Uid": ["10001"] * 4, "Gid": ["10001"] * 4}
    # /tmp is writable by anyone, so only the read-only root can refuse this.
    with pytest.raises(EngineError, match="Read-only file system"):
        engine.docker("exec", container, "python", "-c", "open('/tmp/probe', 'w')")
    # The image's HEALTHCHECK, run as Docker would (Docker's first run comes only after its 15 s interval).
    check = details["Config"]["Healthcheck"]["Test"]
    assert check[0] == "CMD"
    engine.docker("exec", container, *check[1:])


async def signed_in_as(client: httpx.AsyncClient, url: str) -> str | None:
    body = (await client.get(f"{url}/auth/session")).json()
    return str(body["customer"]["email"]) if body["authenticated"] else None


async def assert_stop_drains(
    engine: Engine, shop: Shop, client: httpx.AsyncClient, url: str, container: str, stop: Callable[[], object]
) -> None:
    """`stop` the container while a GraphQL call is in flight: the call completes, the server exits 0, in time."""
    await shop.knob("delay_graphql", count=1, seconds=1.5)
    in_flight = asyncio.create_task(gql(client, at=url))

    async def reached_shopify() -> bool:
        return bool((await shop.stats())["graphql_requests"])

    await eventually(reached_shopify, what="the call reached Shopify")
    started = time.monotonic()
    await asyncio.to_thread(stop)
    took = time.monotonic() - started
    finished = await in_flight
    assert finished.status_code == 200, finished.text
    assert "customer" in finished.json()["data"]
    state = inspect(engine, container)["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 0, f"exit code {state['ExitCode']} after a stop:\n{logs(engine, container)}"
    assert took < GRACE, f"the stop took {took:.1f}s, over the {GRACE}s grace period (so it was killed)"


# --- docker run -------------------------------------------------------------------------------------


@dataclass
class Stack:
    bff: str  # the BFF's container
    url: str
    shop_url: str


@contextmanager
def running_stack(engine: Engine, images: Images, launcher: Launcher, **env: str) -> Iterator[Stack]:
    """Redis and the BFF (with `env` on top of its settings) in containers on the host's network, the stand-in in
    this process."""
    bff_port, redis_port = free_port(), free_port()
    shop = launcher.shop([bff_port])
    redis, bff = unique("bff-test-redis"), unique("bff-test")
    settings = {
        **bff_environment(bff_port, shop.url),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "BFF_HOST": "127.0.0.1",
        "BFF_PORT": str(bff_port),
        **env,
    }
    env_file = launcher.workdir / f"{bff}.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    try:
        run = ["run", "--detach", "--network", "host"]
        redis_args = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", ""]
        engine.docker(*run, "--name", redis, images.redis, *redis_args, "--appendonly", "no")
        engine.docker(*run, "--name", bff, "--read-only", "--env-file", str(env_file), images.bff)
        url = f"http://127.0.0.1:{bff_port}"
        wait_ready(engine, bff, url)
        yield Stack(bff, url, shop.url)
    finally:
        for container in (bff, redis):
            try:
                engine.docker("rm", "--force", "--volumes", container)
            except EngineError:
                pass  # never started


@pytest.fixture
def stack(engine: Engine, images: Images, launcher: Launcher) -> Iterator[Stack]:
    with running_stack(engine, images, launcher) as running:
        yield running


def test_image_runs_as_10001_on_a_read_only_root_and_passes_its_healthcheck(engine: Engine, stack: Stack) -> None:
    assert_unprivileged_on_a_read_only_root(engine, stack.bff)


async def test_image_login_survives_a_restart_of_the_container(engine: Engine, stack: Stack) -> None:
    async with browser() as client:
        await login(client, at=stack.url)
        assert await signed_in_as(client, stack.url) == EMAIL
        engine.docker("restart", "--time", str(GRACE), stack.bff, timeout=GRACE + 30)
        wait_ready(engine, stack.bff, stack.url)
        assert await signed_in_as(client, stack.url) == EMAIL
        assert (await gql(client, at=stack.url)).status_code == 200


async def test_image_drains_on_docker_stop_and_exits_0(engine: Engine, stack: Stack) -> None:
    async with browser() as client, shop_at(stack.shop_url) as shop:
        await login(client, at=stack.url)
        stop = ["stop", "--time", str(GRACE), stack.bff]
        await assert_stop_drains(engine, shop, client, stack.url, stack.bff, lambda: engine.docker(*stop, timeout=60))


async def refused_by(url: str) -> str:
    """A POST /graphql without CSRF proof, on a connection of its own; the request-id prefix of the worker
    that refused it (app.logs.RequestLog: one random prefix per process)."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/graphql", json={"query": "{ customer { id } }"})
    assert response.status_code == 403, response.text
    return response.headers["x-request-id"].rsplit("-", 1)[0]


async def test_image_with_two_workers_on_a_read_only_root_counts_both_in_its_metrics(
    engine: Engine, images: Images, launcher: Launcher
) -> None:
    metrics = free_port()
    listener = {"BFF_WORKERS": "2", "BFF_METRICS_LISTENER": f"127.0.0.1:{metrics}"}
    with running_stack(engine, images, launcher, **listener) as stack:
        # The workers' metrics directory, made by `serve` where a read-only root still lets it write.
        shm = engine.docker("exec", stack.bff, "ls", "/dev/shm").split()  # noqa: S108 - the container's
        assert len([name for name in shm if name.startswith("bff-metrics-")]) == 1, shm
        workers: set[str] = set()
        sent = 0
        while len(workers) < 2:
            assert sent < 400, f"all {sent} requests reached one worker"
            workers.update(await asyncio.gather(*(refused_by(stack.url) for _ in range(20))))
            sent += 20
        scraped = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        assert f'bff_requests_rejected_total{{code="csrf_failed"}} {float(sent)}' in scraped.splitlines()


# --- docker compose -----------------------------------------------------------------------------------


def compose_command(engine: Engine) -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    try:
        engine.docker("compose", "version", timeout=30)
    except EngineError:
        return None
    return ["docker", "compose"]


async def test_compose_with_the_host_override_keeps_sessions_and_stops_cleanly(
    engine: Engine, images: Images, launcher: Launcher, tmp_path: Path
) -> None:
    command = compose_command(engine)
    if command is None:
        pytest.skip("docker compose is not installed (apt-get install docker-compose)")
    bff_port, redis_port = free_port(), free_port()
    shop = launcher.shop([bff_port])
    # Exactly these variables: none of a developer's exported settings, no `.env` of the checkout.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        **bff_environment(bff_port, shop.url),
        "BFF_PORT": str(bff_port),
        "REDIS_PORT": str(redis_port),
        "BFF_IMAGE": COMPOSE_TAG,
        "REDIS_IMAGE": images.redis,
        **images.build_args,
    }
    empty = tmp_path / "empty.env"
    empty.write_text("")
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.host.yml")]
    compose = [*command, "--project-name", unique("bff-image-test"), *files, "--env-file", str(empty)]
    url = f"http://127.0.0.1:{bff_port}"

    def run(*args: str, timeout: float = 120) -> str:
        return engine.run([*compose, *args], env=env, cwd=tmp_path, timeout=timeout)

    try:
        run("up", "--detach", "--build", timeout=900)
        bff = run("ps", "-q", "bff").strip()
        wait_ready(engine, bff, url)
        assert_unprivileged_on_a_read_only_root(engine, bff)
        async with browser() as client, shop_at(shop.url) as knobs:
            await login(client, at=url)
            assert await signed_in_as(client, url) == EMAIL
            run("restart", "bff", timeout=GRACE + 30)
            wait_ready(engine, bff, url)
            assert await signed_in_as(client, url) == EMAIL
            await assert_stop_drains(engine, knobs, client, url, bff, lambda: run("stop", "bff", timeout=GRACE + 30))
    finally:
        run("down", "--volumes", "--remove-orphans")
