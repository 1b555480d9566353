"""Deployment: the compose file, the Dockerfile, and the image's start command run outside Docker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from tests.helpers import (
    ROOT,
    ConfigError,
    Launcher,
    Settings,
    browser,
    eventually,
    gql,
    load_settings,
    load_yaml,
    login,
    python,
    run,
    shop_at,
)

REQUIRED = (
    "SHOPIFY_SHOP_DOMAIN",
    "SHOPIFY_CLIENT_ID",
    "SHOPIFY_CLIENT_SECRET",
    "BFF_PUBLIC_URL",
    "BFF_POST_LOGOUT_REDIRECT_URL",
    "BFF_SESSION_SECRET",
)
Compose = Callable[..., subprocess.CompletedProcess[str]]
PRODUCTION_VALUES = {
    "SHOPIFY_SHOP_DOMAIN": "shop.example.com",
    "SHOPIFY_CLIENT_ID": "2f0c8e4a-client",
    "SHOPIFY_CLIENT_SECRET": "a1b2c3d4e5f6",
    "BFF_PUBLIC_URL": "https://account-bff.example.com",
    "BFF_POST_LOGOUT_REDIRECT_URL": "https://www.example.com/",
    "BFF_SESSION_SECRET": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978",
}


# --- docker-compose.yml ---------------------------------------------------------------------------


@pytest.fixture
def compose(tmp_path: Path) -> Iterator[Compose]:
    """`docker-compose ... config` with exactly the variables given: no inherited ones, no project `.env`."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose); compose file not checked")
    empty = tmp_path / "empty.env"
    empty.write_text("")

    def config(variables: dict[str, str], *args: str, env_file: Path = empty) -> subprocess.CompletedProcess[str]:
        # The two files `docker compose` reads by default in the checkout.
        files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.override.yml")]
        command = [binary, *files, "--env-file", str(env_file), *args, "config"]
        return run(command, cwd=tmp_path, env={"HOME": str(tmp_path), **variables}, inherit_env=False)

    yield config


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def load_container_settings(environment: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the app would build inside the container from this resolved `environment`."""
    for name in os.environ:
        if name.startswith(("SHOPIFY_", "BFF_", "REDIS_URL")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        if value is not None:  # null: passed through but unset, so not in the container at all
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT / "tests")  # no `.env` here
    return load_settings()


def test_compose_file_is_valid_and_wires_bff_to_redis(compose: Compose, monkeypatch: pytest.MonkeyPatch) -> None:
    result = compose({**PRODUCTION_VALUES, "BFF_LOG_LEVEL": "debug"})
    assert result.returncode == 0, result.stderr
    services = load_yaml(result.stdout)["services"]
    assert set(services) == {"bff", "redis", "shopify"}
    bff, redis = services["bff"], services["redis"]
    environment = bff["environment"]
    assert env_example_names() <= set(environment), "every variable of .env.example reaches the container"
    assert environment["BFF_LOG_LEVEL"] == "debug"  # optional ones are passed through when set
    assert environment["BFF_DEV_MODE"] is None  # ... and left to the app's default when not
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    settings = load_container_settings(environment, monkeypatch)
    assert settings.bff_dev_mode is False
    assert settings.bff_session_secret.get_secret_value() == PRODUCTION_VALUES["BFF_SESSION_SECRET"]
    assert bff["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert {"published": 8000, "target": 8000} in bff["ports"]
    assert bff["read_only"] is True
    assert bff["build"]["target"] == "runtime"
    assert redis["image"] == "redis:7-alpine"
    assert redis["command"][-2:] == ["--appendonly", "yes"]
    assert "redis-data:/data:rw" in redis["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert services["shopify"]["profiles"] == ["dev"]


@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_refuses_to_start_without_a_required_setting(compose: Compose, missing: str) -> None:
    values = {name: value for name, value in PRODUCTION_VALUES.items() if name != missing}
    result = compose(values)
    assert result.returncode == 1
    assert missing in result.stderr


def test_compose_dev_profile_runs_the_stand_in_with_settings_the_app_accepts(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = compose({}, "--profile", "dev", env_file=ROOT / "compose.dev.env")
    assert result.returncode == 0, result.stderr
    services = load_yaml(result.stdout)["services"]
    bff, shop = services["bff"]["environment"], services["shopify"]
    # One network namespace: http://localhost:9000 is the stand-in for the BFF and (published) for the browser.
    assert shop["network_mode"] == "service:bff"
    assert "127.0.0.1:9000:9000/tcp" in services["bff"]["ports"]
    assert shop["build"]["target"] == "dev"
    assert shop["command"][:3] == ["python", "-m", "mock_shopify"]
    assert shop["command"][shop["command"].index("--base-url") + 1] == bff["SHOPIFY_SHOP_DOMAIN"]
    assert shop["environment"] == {
        "MOCK_SHOPIFY_CLIENT_ID": bff["SHOPIFY_CLIENT_ID"],
        "MOCK_SHOPIFY_CLIENT_SECRET": bff["SHOPIFY_CLIENT_SECRET"],
        "MOCK_SHOPIFY_REDIRECT_URI": f"{bff['BFF_PUBLIC_URL']}/auth/callback",
        "MOCK_SHOPIFY_LOGOUT_URI": bff["BFF_POST_LOGOUT_REDIRECT_URL"],
        # The stand-in's customer webhooks reach the BFF, signed with the secret it checks.
        "MOCK_SHOPIFY_WEBHOOK_URL": f"{bff['BFF_PUBLIC_URL']}/webhooks/shopify",
        "MOCK_SHOPIFY_WEBHOOK_SECRET": bff["SHOPIFY_WEBHOOK_SECRET"],
    }
    assert load_container_settings(bff, monkeypatch).shop_origin == "http://localhost:9000"
    # The dev session secret is a placeholder on purpose: outside dev mode the BFF refuses to start with it.
    with pytest.raises(ConfigError, match="BFF_SESSION_SECRET"):
        load_container_settings({**bff, "BFF_DEV_MODE": "false"}, monkeypatch)


# --- Dockerfile and .dockerignore -----------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per stage name, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            stages[current] = []
        stages[current].append((keyword.upper(), rest.strip()))
    return stages


def instruction(stage: list[tuple[str, str]], keyword: str) -> str:
    values = [rest for kw, rest in stage if kw == keyword]
    assert len(values) == 1, f"one {keyword} expected, got {values}"
    return values[0]


def healthcheck_command() -> list[str]:
    check = instruction(dockerfile_stages()["runtime-base"], "HEALTHCHECK")
    command: list[str] = json.loads(check.split(" CMD ", 1)[1])
    return command


def test_dockerfile_runs_the_app_slim_and_unprivileged() -> None:
    stages = dockerfile_stages()
    text = (ROOT / "Dockerfile").read_text()
    assert list(stages)[-1] == "runtime", "the default target (last stage) is the runtime image"
    runtime_base = stages["runtime-base"]
    assert json.loads(instruction(runtime_base, "CMD")) == ["python", "-m", "app", "serve"]
    assert instruction(runtime_base, "EXPOSE") == "8000"
    assert "BFF_PORT=8000" in instruction(runtime_base, "ENV")
    # A numeric uid:gid, not root: Kubernetes' runAsNonRoot can only verify a number.
    assert instruction(runtime_base, "USER") == "10001:10001"
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]
    # Only app/ goes into the runtime image; the stand-in's source only into `dev`. Everything pip installs is
    # in the hash-checked lock (the build backend too), and the registry base is pinned by digest.
    assert ("RUN", "pip install --require-hashes -r runtime.lock") in stages["build"]
    assert ("RUN", "pip install --no-deps --no-build-isolation .") in stages["build"]
    assert re.search(r"^FROM \$\{PYTHON_IMAGE:-python:3\.12-slim@sha256:[0-9a-f]{64}\} AS base$", text, flags=re.M)
    assert not text.startswith("# syntax="), "a syntax line pulls an unpinned frontend image"
    assert ("COPY", "--from=build /opt/venv /opt/venv") in stages["runtime"]
    assert ("COPY", "--from=build /opt/venv /opt/venv") in stages["dev"]
    assert ("COPY", "mock_shopify /opt/standin/mock_shopify") in stages["dev"]
    assert not [rest for kw, rest in stages["build"] if kw == "COPY" and "mock_shopify" in rest]
    # `serve` is a real subcommand; the HEALTHCHECK itself is run against a live BFF further down.
    usage = run(python("-m", "app", "serve", "--help"), cwd=ROOT / "tests")
    assert usage.returncode == 0, usage.stderr


def dockerignored(path: str) -> bool:
    """Docker's rules: patterns are anchored at the context root (`**/` matches at any depth), a matched directory
    covers its contents, `!` re-includes, and the last matching pattern wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated, pattern = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            tail = pattern.removeprefix("**/")
            matched = any(fnmatch(part, tail) for part in parts)
        else:
            matched = any(fnmatch(prefix, pattern) for prefix in prefixes)
        if matched:
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".env", True),
        (".venv/bin/python", True),
        (".git/HEAD", True),
        (".dev/secrets.json", True),
        (".pytest_cache/README.md", True),
        ("tests/conftest.py", True),
        ("app/__pycache__/main.cpython-312.pyc", True),
        ("pyproject.toml", False),
        ("README.md", False),
        ("requirements/runtime.lock", False),
        ("requirements/dev.lock", True),
        ("app/main.py", False),
        ("mock_shopify/app.py", False),
    ],
)
def test_dockerignore_sends_only_what_the_build_copies(path: str, ignored: bool) -> None:
    assert dockerignored(path) is ignored


# --- The image's start command, outside Docker -----------------------------------------------------


def run_healthcheck(port: int, cwd: Path) -> int:
    """The Dockerfile's HEALTHCHECK command, run here against a BFF on `port`."""
    command = healthcheck_command()
    return run(python(*command[1:]), cwd=cwd, env={"BFF_PORT": str(port)}, timeout=10).returncode


class UncleanExit(AssertionError):
    """The server drained and stopped but reported failure (a nonzero exit code) to its supervisor."""


@pytest.mark.parametrize(
    "workers",
    [
        1,
        2,
    ],
)
async def test_image_command_serves_and_drains_on_sigterm(
    launcher: Launcher, redis_url: str, workers: int, tmp_path: Path
) -> None:
    deployment = launcher.deployment(redis_url, bffs=1, BFF_WORKERS=str(workers))  # /healthz and /readyz are 200
    (bff,) = deployment.bffs
    assert run_healthcheck(bff.port, tmp_path) == 0
    async with browser() as client, shop_at(deployment.shop.url) as shop:
        await login(client, at=bff.url)
        await shop.knob("delay_graphql", count=1, seconds=1.5)
        in_flight = asyncio.create_task(gql(client, at=bff.url))

        async def reached_shopify() -> bool:
            return bool((await shop.stats())["graphql_requests"])

        await eventually(reached_shopify, what="the call reached Shopify")
        bff.terminate()
        stopped_at = time.monotonic()
        await bff.wait_for_output("Shutting down", count=workers)

        # A single server closes its socket at once. With workers, the supervisor keeps the shared socket open
        # until they have drained: a new connection is queued, then reset, never served.
        refused = httpx.ConnectError if workers == 1 else httpx.ReadError
        with pytest.raises(refused):
            async with httpx.AsyncClient(timeout=5) as fresh:
                await fresh.get(f"{bff.url}/healthz")
        if workers == 1:
            assert not in_flight.done()

        finished = await in_flight
        assert finished.status_code == 200, finished.text
        assert "customer" in finished.json()["data"]
    returncode = await bff.exit_code(timeout=5)
    assert time.monotonic() - stopped_at < 5
    assert run_healthcheck(bff.port, tmp_path) == 1
    if returncode != 0:
        raise UncleanExit(f"exit code {returncode} after SIGTERM:\n{bff.output()[-2000:]}")
