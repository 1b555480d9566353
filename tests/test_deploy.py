"""Deployment: the compose file, the Dockerfile, and the image's start command run outside Docker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.shops import SHOP_KEYS, Shops, load_configuration
from devkit.redis_server import free_port
from tests.helpers import (
    ROOT,
    ConfigError,
    Launcher,
    Process,
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


DEFAULT_FILES = ("docker-compose.yml", "docker-compose.override.yml")  # what `docker compose` reads by default
Port = tuple[str, int, int]  # host address, published port, container port
EVERYWHERE = "0.0.0.0"  # noqa: S104 - what compose prints for a port published on every interface


@pytest.fixture
def compose(tmp_path: Path) -> Iterator[Compose]:
    """`docker-compose ... config` with exactly the variables given: no inherited ones, no project `.env`.
    `files=None` passes no `-f`, as a person types it in the checkout (so the env file's COMPOSE_FILE counts)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose); compose file not checked")
    empty = tmp_path / "empty.env"
    empty.write_text("")

    def config(
        variables: dict[str, str],
        *args: str,
        env_file: Path = empty,
        files: tuple[str, ...] | None = DEFAULT_FILES,
    ) -> subprocess.CompletedProcess[str]:
        chosen = [flag for name in files for flag in ("-f", str(ROOT / name))] if files is not None else []
        command = [binary, *chosen, "--env-file", str(env_file), *args, "config"]
        cwd = tmp_path if files is not None else ROOT
        return run(command, cwd=cwd, env={"HOME": str(tmp_path), **variables}, inherit_env=False)

    yield config


def published(service: dict[str, Any]) -> set[Port]:
    """A service's published ports, from either form `config` prints (`ip:published:target/tcp` or a mapping)."""
    ports: set[Port] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, str):
            *address, host_port, target = entry.removesuffix("/tcp").split(":")
            ports.add((address[0] if address else EVERYWHERE, int(host_port), int(target)))
        else:
            ports.add((entry.get("host_ip") or EVERYWHERE, int(entry["published"]), int(entry["target"])))
    return ports


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
    assert set(services) == {"bff", "redis", "shopify", "demo"}
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
    assert bff["read_only"] is True
    assert bff["build"]["target"] == "runtime"
    assert redis["image"] == "redis:7-alpine"
    assert redis["command"][-2:] == ["--appendonly", "yes"]
    assert "redis-data:/data:rw" in redis["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert services["shopify"]["profiles"] == ["dev"]
    assert services["demo"]["profiles"] == ["dev"]


def test_compose_publishes_only_the_bff_and_on_loopback(compose: Compose) -> None:
    services = load_yaml(compose(PRODUCTION_VALUES).stdout)["services"]
    # Nothing on 9000 (the stand-in's port is the dev profile's), Redis never: only the BFF, on this host.
    assert {name: published(service) for name, service in services.items()} == {
        "bff": {("127.0.0.1", 8000, 8000)},
        "redis": set(),
        "shopify": set(),
        "demo": set(),
    }
    result = compose({**PRODUCTION_VALUES, "BFF_PUBLISH": "0.0.0.0:8080"})
    assert published(load_yaml(result.stdout)["services"]["bff"]) == {(EVERYWHERE, 8080, 8000)}


@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_refuses_to_start_without_a_required_setting(compose: Compose, missing: str) -> None:
    values = {name: value for name, value in PRODUCTION_VALUES.items() if name != missing}
    result = compose(values)
    assert result.returncode == 1
    assert missing in result.stderr


def test_compose_dev_profile_runs_the_stand_in_with_settings_the_app_accepts(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the docs have it: `docker compose --env-file compose.dev.env up`, no -f, no --profile.
    result = compose({}, env_file=ROOT / "compose.dev.env", files=None)
    assert result.returncode == 0, result.stderr
    services = load_yaml(result.stdout)["services"]
    bff, shop = services["bff"]["environment"], services["shopify"]
    # One network namespace: http://localhost:9000 is the stand-in for the BFF and (published) for the browser.
    assert shop["network_mode"] == "service:bff"
    assert published(services["bff"]) == {
        ("127.0.0.1", 8000, 8000),
        ("127.0.0.1", 9000, 9000),
        ("127.0.0.1", 3000, 3000),
    }
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


async def test_compose_dev_profile_serves_the_demo_where_login_and_logout_land(
    compose: Compose, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = load_yaml(compose({}, env_file=ROOT / "compose.dev.env", files=None).stdout)["services"]
    bff, demo = services["bff"]["environment"], services["demo"]
    assert demo["network_mode"] == "service:bff"
    assert demo["build"]["target"] == "dev"
    settings = load_container_settings(bff, monkeypatch)
    # Where a login returns without return_to, and where the shop's logout sends the browser: the demo's origin.
    assert settings.default_return_to == "http://localhost:3000/"
    assert settings.bff_post_logout_redirect_url == "http://localhost:3000/"
    command = demo["command"]
    assert command[:3] == ["python", "-m", "devkit.demo_server"]
    assert command[command.index("--port") + 1] == "3000"
    # The compose service's own command and environment, on a free port of this host: the page is served,
    # pointed at the BFF and the stand-in.
    port = free_port()
    args = [*command[1 : command.index("--host")], "--host", "127.0.0.1", "--port", str(port)]
    with Process("demo", python(*args), port=port, workdir=tmp_path, env=demo["environment"]) as page:
        page.wait_ok("/")
        config = httpx.get(f"{page.url}/config.js", timeout=5).text
    assert 'BFF_URL = "http://localhost:8000"' in config
    assert "http://localhost:9000/api/" in config


def test_compose_host_override_publishes_nothing_and_keeps_everything_on_loopback(compose: Compose) -> None:
    result = compose(
        {},
        "--profile",
        "dev",
        env_file=ROOT / "compose.dev.env",
        files=("docker-compose.yml", "docker-compose.host.yml"),
    )
    assert result.returncode == 0, result.stderr
    services = load_yaml(result.stdout)["services"]
    assert {name: published(service) for name, service in services.items()} == {name: set() for name in services}
    assert services["bff"]["network_mode"] == "host"
    assert services["bff"]["environment"]["BFF_HOST"] == "127.0.0.1"
    assert services["redis"]["command"][:3] == ["redis-server", "--bind", "127.0.0.1"]
    for name in ("shopify", "demo"):
        command = services[name]["command"]
        assert command[command.index("--host") + 1] == "127.0.0.1", name
        assert services[name]["build"]["network"] == "host", name


def test_compose_proxy_file_puts_nginx_in_front_and_trusts_only_it(
    compose: Compose, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = ("docker-compose.yml", "deploy/docker-compose.proxy.yml")
    refused = compose(PRODUCTION_VALUES, files=files)
    assert refused.returncode == 1 and "BFF_TLS_DIR" in refused.stderr
    result = compose({**PRODUCTION_VALUES, "BFF_TLS_DIR": str(tmp_path)}, files=files)
    assert result.returncode == 0, result.stderr
    services = load_yaml(result.stdout)["services"]
    # 80 and 443 only, to nginx's ports in the shared namespace; the BFF's own 8000 is not published.
    assert published(services["bff"]) == {(EVERYWHERE, 80, 8080), (EVERYWHERE, 443, 8443)}
    proxy = services["proxy"]
    assert proxy["network_mode"] == "service:bff"
    assert f"{ROOT / 'deploy' / 'nginx.conf'}:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert f"{tmp_path}:/etc/nginx/tls:ro" in proxy["volumes"]
    assert proxy["read_only"] is True
    environment = services["bff"]["environment"]
    assert environment["BFF_TRUSTED_PROXIES"] == "127.0.0.1"
    assert [str(net) for net in load_container_settings(environment, monkeypatch).trusted_proxies] == ["127.0.0.1/32"]
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    # nginx reaches the BFF where it listens in the namespace, names the client it sees (replacing what the
    # client sent), and caps the request line and headers.
    assert "server 127.0.0.1:8000;" in conf
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    assert "large_client_header_buffers 4 8k;" in conf
    assert "listen 8443 ssl http2;" in conf and "listen 8080;" in conf


def nginx_conf_for_this_host(workdir: Path, *, bff_port: int, https_port: int, http_port: int) -> Path:
    """deploy/nginx.conf with only its host-specific parts moved: ports, the BFF's port, the certificate and
    the scratch files. Each is replaced exactly as often as it appears, so nothing else differs."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    replacements = [
        ("/tmp/", f"{workdir}/", 6),  # noqa: S108 - the pid file and buffers, moved into the test's own directory
        ("listen [::]:8443 ssl http2;\n", "", 1),  # this machine may have no IPv6
        ("listen [::]:8080;\n", "", 1),
        ("listen 8443 ssl", f"listen 127.0.0.1:{https_port} ssl", 1),
        ("listen 8080;", f"listen 127.0.0.1:{http_port};", 1),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{bff_port};", 1),
        ("/etc/nginx/tls/", f"{workdir}/tls/", 2),
    ]
    for old, new, count in replacements:
        assert text.count(old) == count, f"deploy/nginx.conf: {old!r} appears {text.count(old)}x, not {count}x"
        text = text.replace(old, new)
    (workdir / "tls").mkdir()
    certificate = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days",
        "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(workdir / "tls" / "privkey.pem"), "-out", str(workdir / "tls" / "fullchain.pem"),
    ]  # fmt: skip
    made = run(certificate, cwd=workdir)
    assert made.returncode == 0, made.stderr
    path = workdir / "nginx.conf"
    path.write_text(text)
    return path


def from_address(address: str, certificate: Path) -> httpx.AsyncClient:
    """A client connecting from `address` (any of 127.0.0.0/8 is this host), trusting our certificate."""
    trusted = ssl.create_default_context(cafile=str(certificate))
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=trusted)
    return httpx.AsyncClient(transport=transport, timeout=5)


async def test_nginx_front_proxy_caps_headers_and_names_the_client_it_sees(
    launcher: Launcher, redis_url: str, tmp_path: Path
) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx); deploy/nginx.conf not run")
    bff_port, https_port, http_port = free_port(), free_port(), free_port()
    shop = launcher.shop([bff_port])
    # As deploy/docker-compose.proxy.yml sets it; two logins a minute per client, to see whose bucket is whose.
    bff = launcher.bff(bff_port, shop.url, redis_url, BFF_TRUSTED_PROXIES="127.0.0.1", BFF_RATE_LIMIT_LOGIN="2/minute")
    conf = nginx_conf_for_this_host(tmp_path, bff_port=bff_port, https_port=https_port, http_port=http_port)
    checked = run([nginx, "-t", "-q", "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    proxy = Process("nginx", [nginx, "-e", "stderr", "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                    port=https_port, workdir=tmp_path)  # fmt: skip
    bff.wait_ok("/readyz")
    url = f"https://127.0.0.1:{https_port}"
    certificate = tmp_path / "tls" / "fullchain.pem"
    with proxy:
        async with from_address("127.0.0.2", certificate) as client, from_address("127.0.0.3", certificate) as other:

            async def serving() -> bool:
                try:
                    return (await client.get(f"{url}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(serving, timeout=10, what="nginx serving the BFF's /healthz")
            # Over the caps: nginx refuses before the BFF sees anything (no request id of the BFF's).
            too_long_header = await client.get(f"{url}/healthz", headers={"X-Padding": "a" * 9000})
            assert too_long_header.status_code == 400
            assert "x-request-id" not in too_long_header.headers
            too_long_line = await client.get(f"{url}/healthz", params={"q": "a" * 9000})
            assert too_long_line.status_code == 414
            assert "x-request-id" not in too_long_line.headers

            # The BFF rate-limits the client nginx saw, whatever X-Forwarded-For the client sent...
            async def login_started(browser: httpx.AsyncClient, claimed: str) -> bool:
                response = await browser.get(f"{url}/auth/login", headers={"X-Forwarded-For": claimed})
                return response.is_redirect and response.headers["location"].startswith(shop.url)

            assert [await login_started(client, f"203.0.113.{n}") for n in (1, 2, 3)] == [True, True, False]
            # ... and another client has a bucket of its own: the BFF trusts nginx to name it.
            assert await login_started(other, "203.0.113.1") is True


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
        # The dev image's demo storefront: its page and its server, not the rest of devkit/.
        ("demo/index.html", False),
        ("devkit/demo_server.py", False),
        ("devkit/dev.py", True),
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


# --- deploy/docker-compose.shops.yml: several shops -----------------------------------------------


SHOPS_FILES = ("deploy/docker-compose.shops.yml",)
SHOPS_MOUNT = "/etc/bff/shops.toml"
# What deploy/shops.example.toml's env: references name, as an operator would write them in BFF_SHOPS_SECRETS.
SHOP_SECRETS = {
    "SNOWBOARDS_CLIENT_SECRET": "snowboards-9f8e7d6c5b4a",
    "SNOWBOARDS_STOREFRONT_TOKEN": "shpat_snowboards_0a1b2c3d",
    "SNOWBOARDS_WEBHOOK_SECRET": "whsec-snowboards-5e6f7a8b",
    "SURFBOARDS_CLIENT_SECRET": "surfboards-1a2b3c4d5e6f",
}


def per_shop_variables() -> set[str]:
    """The variables a shops file replaces: the BFF refuses to start with one of them in its environment."""
    return {field.upper() for field in SHOP_KEYS.values()}


def shops_values(tmp_path: Path, secrets: dict[str, str] = SHOP_SECRETS) -> dict[str, str]:
    """Compose's variables for the shops file: the example shops file, and a secrets env file written here."""
    secrets_file = tmp_path / "shops.env"
    secrets_file.write_text("".join(f"{name}={value}\n" for name, value in secrets.items()))
    return {
        "BFF_SHOPS": str(ROOT / "deploy" / "shops.example.toml"),
        "BFF_SHOPS_SECRETS": str(secrets_file),
        "BFF_SESSION_SECRET": PRODUCTION_VALUES["BFF_SESSION_SECRET"],
    }


def load_container_configuration(environment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings | Shops:
    """As load_container_settings, through app.shops.load_configuration (what `serve` calls), with the shops file
    the container sees at BFF_SHOPS_FILE read from the host file mounted there."""
    for name in os.environ:
        if name.startswith(("SHOPIFY_", "BFF_", "REDIS_URL")):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        if value is not None:
            monkeypatch.setenv(name, str(value))
    monkeypatch.chdir(ROOT / "tests")  # no `.env` here
    return load_configuration()


def mounted_source(service: dict[str, Any], target: str) -> str:
    (volume,) = [v for v in service.get("volumes", []) if isinstance(v, dict) and v.get("target") == target]
    assert volume["type"] == "bind" and volume["read_only"] is True, volume
    source: str = volume["source"]
    return source


def test_compose_shops_file_runs_the_bff_and_redis_with_the_shops_file_mounted_read_only(
    compose: Compose, tmp_path: Path
) -> None:
    values = shops_values(tmp_path)
    result = compose(values, files=SHOPS_FILES)
    assert result.returncode == 0, result.stderr
    services = load_yaml(result.stdout)["services"]
    assert set(services) == {"bff", "redis"}
    bff = services["bff"]
    assert mounted_source(bff, SHOPS_MOUNT) == values["BFF_SHOPS"]
    assert bff["environment"]["BFF_SHOPS_FILE"] == SHOPS_MOUNT
    # The same image, Redis and wiring as docker-compose.yml's single shop.
    single = load_yaml(compose(PRODUCTION_VALUES).stdout)["services"]
    assert services["redis"] == single["redis"]
    for key in ("build", "image", "read_only", "depends_on", "restart", "stop_grace_period"):
        assert bff[key] == single["bff"][key], key
    assert bff["environment"]["REDIS_URL"] == single["bff"]["environment"]["REDIS_URL"]


def test_compose_shops_file_publishes_only_the_bff_and_on_loopback(compose: Compose, tmp_path: Path) -> None:
    values = shops_values(tmp_path)
    services = load_yaml(compose(values, files=SHOPS_FILES).stdout)["services"]
    assert {name: published(service) for name, service in services.items()} == {
        "bff": {("127.0.0.1", 8000, 8000)},
        "redis": set(),
    }
    moved = compose({**values, "BFF_PUBLISH": "10.0.0.5:8080"}, files=SHOPS_FILES)
    assert published(load_yaml(moved.stdout)["services"]["bff"]) == {("10.0.0.5", 8080, 8000)}


def test_compose_shops_file_passes_the_deployment_settings_and_no_per_shop_one(
    compose: Compose, tmp_path: Path
) -> None:
    # Every per-shop variable set where compose reads its variables (a single shop's leftovers in the shell)...
    leftovers = dict.fromkeys(per_shop_variables(), "leftover") | {"BFF_LOG_LEVEL": "debug"}
    result = compose({**shops_values(tmp_path), **leftovers}, files=SHOPS_FILES)
    assert result.returncode == 0, result.stderr
    environment = load_yaml(result.stdout)["services"]["bff"]["environment"]
    # ... reaches the container as none, where the BFF would refuse to start naming it.
    assert set(environment) & per_shop_variables() == set()
    # Every deployment-level variable of .env.example does, and the shops' secrets from BFF_SHOPS_SECRETS.
    assert env_example_names() - per_shop_variables() <= set(environment)
    assert environment["BFF_LOG_LEVEL"] == "debug"
    assert {name: environment[name] for name in SHOP_SECRETS} == SHOP_SECRETS


@pytest.mark.parametrize("missing", ["BFF_SHOPS", "BFF_SHOPS_SECRETS", "BFF_SESSION_SECRET"])
def test_compose_shops_file_refuses_to_start_without_a_required_setting(
    compose: Compose, tmp_path: Path, missing: str
) -> None:
    values = {name: value for name, value in shops_values(tmp_path).items() if name != missing}
    result = compose(values, files=SHOPS_FILES)
    assert result.returncode == 1
    assert missing in result.stderr


def test_compose_shops_file_and_the_example_shops_make_a_configuration_the_app_accepts(
    compose: Compose, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bff = load_yaml(compose(shops_values(tmp_path), files=SHOPS_FILES).stdout)["services"]["bff"]
    environment = {**bff["environment"], "BFF_SHOPS_FILE": mounted_source(bff, SHOPS_MOUNT)}
    configuration = load_container_configuration(environment, monkeypatch)
    assert isinstance(configuration, Shops)
    assert configuration.ids == ("snowboards", "surfboards")
    surfboards = configuration.by_id("surfboards")
    assert surfboards.shopify_client_secret.get_secret_value() == SHOP_SECRETS["SURFBOARDS_CLIENT_SECRET"]
    assert surfboards.bff_dev_mode is False
    assert surfboards.redis_url == "redis://redis:6379/0"


def test_compose_shops_file_with_a_per_shop_variable_among_the_secrets_stops_the_bff_naming_it(
    compose: Compose, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The secrets file is passed whole: a single shop's variable copied into it reaches the container.
    values = shops_values(tmp_path, {**SHOP_SECRETS, "SHOPIFY_CLIENT_SECRET": "a1b2c3d4e5f6"})
    bff = load_yaml(compose(values, files=SHOPS_FILES).stdout)["services"]["bff"]
    environment = {**bff["environment"], "BFF_SHOPS_FILE": mounted_source(bff, SHOPS_MOUNT)}
    with pytest.raises(ConfigError, match="SHOPIFY_CLIENT_SECRET: set per shop in BFF_SHOPS_FILE"):
        load_container_configuration(environment, monkeypatch)
