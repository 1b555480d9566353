"""`make dev` and `make doctor` as a developer runs them (real processes), and colour only on a terminal."""

from __future__ import annotations

import io
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.logs import configure_logging
from app.shops import Shops, load_configuration
from devkit.dev import banner, colour_enabled, shops_banner
from devkit.dev_shops import DevShops, without_shop_variables
from devkit.dev_stack import DevStack
from devkit.redis_server import free_port
from mock_shopify.shops_file import load_shops_file
from tests.helpers import python, run

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def dev_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Free ports for every part, and the secrets file in the test's own directory."""
    return {
        "DEV_BFF_PORT": str(free_port()),
        "DEV_BFF_IP_PORT": str(free_port()),
        "DEV_SHOP_PORT": str(free_port()),
        "DEV_DEMO_PORT": str(free_port()),
        "DEV_STATE_DIR": str(tmp_path / "state"),
        "NO_COLOR": "1",
        **extra,
    }


def closed_port() -> int:
    """A port nothing listens on (bound, never listened, so nothing else takes it meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_make_dev_stops_with_one_line_when_its_redis_does_not_answer(tmp_path: Path) -> None:
    port = closed_port()
    url = f"redis://127.0.0.1:{port}/0"
    result = run(python("-m", "devkit.dev"), cwd=tmp_path, env=dev_env(tmp_path, REDIS_URL=url), timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"python -m devkit.dev: Redis at {url} (REDIS_URL) does not answer PING: "
        f"Error 111 connecting to 127.0.0.1:{port}. Connection refused."
    ]
    assert "Demo storefront" not in result.stdout  # no URL to open for a stack that cannot work


def test_make_doctor_checks_the_dev_stack_starting_the_stand_in(tmp_path: Path, redis_url: str) -> None:
    env = dev_env(tmp_path, REDIS_URL=redis_url)
    result = run(python("-m", "devkit.dev", "--doctor"), cwd=tmp_path, env=env, timeout=90)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    settings load (development mode)" in result.stdout
    # The dev stack's own values: its callback, the stand-in it started, the Redis it was given.
    assert f"Callback URI:      http://localhost:{env['DEV_BFF_PORT']}/auth/callback" in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("FAIL")], result.stdout


def test_dev_banner_lists_every_url() -> None:
    stack = DevStack(bff_port=8000, bff_ip_port=8001, shop_port=9000, demo_port=3000, state_dir=Path("."))
    text = banner(stack, "redis://:hunter2@127.0.0.1:6379/0", colour=False)
    for url in (
        "http://localhost:3000/",
        "http://127.0.0.1:3000/",
        "http://localhost:8000",
        "http://127.0.0.1:8001",
        "http://localhost:8000/docs",
        "http://localhost:8000/metrics",
        "http://localhost:9000",
        "http://localhost:9000/_mock/stats",
        "redis://:***@127.0.0.1:6379/0",
    ):
        assert re.search(rf"\s{re.escape(url)}(\s|$)", text, re.M), (url, text)
    assert "hunter2" not in text


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A pseudo-terminal: (a text stream on its terminal end, the fd to read what was written)."""
    reader, writer = os.openpty()
    stream = open(writer, "w", buffering=1)
    try:
        yield stream, reader
    finally:
        stream.close()
        os.close(reader)


def console_line(stream: io.TextIOBase) -> None:
    configure_logging("info", "console", stream=stream)  # type: ignore[arg-type]
    try:
        logging.getLogger("bff.test").warning("hello")
    finally:
        configure_logging("info", "json")


def test_console_logs_have_no_colour_codes_in_a_file_or_pipe() -> None:
    out = io.StringIO()
    console_line(out)
    assert "hello" in out.getvalue()
    assert not ANSI.search(out.getvalue())


def test_console_logs_are_coloured_on_a_terminal_unless_no_color(
    terminal: tuple[io.TextIOWrapper, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, reader = terminal
    console_line(stream)
    assert ANSI.search(os.read(reader, 4096).decode())

    monkeypatch.setenv("NO_COLOR", "1")
    console_line(stream)
    written = os.read(reader, 4096).decode()
    assert "hello" in written
    assert not ANSI.search(written)


def test_dev_output_is_coloured_only_on_a_terminal_without_no_color(
    terminal: tuple[io.TextIOWrapper, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream, _ = terminal
    assert colour_enabled(stream)
    assert not colour_enabled(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_enabled(stream)


# --- make dev-shops ----------------------------------------------------------------------------------


@pytest.fixture
def dev_shops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DevShops:
    """`make dev-shops`' default ports, its state (secrets and both shops files) in the test's own directory."""
    for name in ("DEV_BFF_PORT", "DEV_SHOP_PORT", "DEV_SHOP2_PORT", "DEV_DEMO_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEV_STATE_DIR", str(tmp_path / "state"))
    return DevShops.from_env()


def bff_configuration(shops: DevShops, monkeypatch: pytest.MonkeyPatch) -> Shops:
    """What the BFF makes of `make dev-shops`' files and environment, read as `python -m app` reads them."""
    creds = shops.secrets()
    shops.write_files(creds)
    env = without_shop_variables(os.environ) | shops.bff_environment(creds, "redis://127.0.0.1:6379/0")
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(shops.state_dir)  # where devkit runs the BFF: no checkout .env
    configuration = load_configuration()
    assert isinstance(configuration, Shops)
    return configuration


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def test_dev_shops_file_gives_the_bff_one_shop_per_host_name(
    dev_shops: DevShops, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = bff_configuration(dev_shops, monkeypatch)

    assert {(r.shop_id, r.host, r.prefix) for r in configuration.routes} == {
        ("snowboards", "localhost:8000", ""),
        ("surfboards", "127.0.0.1:8000", ""),
    }


def test_dev_shops_files_give_the_bff_and_the_stand_in_the_same_app_per_shop(
    dev_shops: DevShops, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = bff_configuration(dev_shops, monkeypatch)
    standin = {s.name: s for s in load_shops_file(dev_shops.standin_shops_file, host="127.0.0.1")}

    seen = {}
    for shop_id in configuration.ids:
        bff, shop = configuration.by_id(shop_id), standin[shop_id].config
        seen[shop_id] = {
            "shop": shop.shop_name,
            "same origin": bff.shop_origin == shop.base_url,
            "same credentials": (bff.shopify_client_id, secret(bff.shopify_client_secret)) == shop.credentials[0],
            "callback registered": bff.redirect_uri in shop.redirect_uris,
            "logout registered": bff.bff_post_logout_redirect_url in shop.logout_uris,
            "same storefront token": secret(bff.shopify_storefront_token) == shop.storefront_private_token,
            "same webhook secret": secret(bff.shopify_webhook_secret) == shop.webhook_secret,
        }
    names = ("same origin", "same credentials", "callback registered", "logout registered")
    checks = dict.fromkeys((*names, "same storefront token", "same webhook secret"), True)
    assert seen == {"snowboards": {"shop": "Snowboards", **checks}, "surfboards": {"shop": "Surfboards", **checks}}


def test_dev_shops_secrets_are_generated_once_per_shop(dev_shops: DevShops) -> None:
    first = dev_shops.secrets()

    assert dev_shops.secrets() == first
    assert first["snowboards"]["client_secret"] != first["surfboards"]["client_secret"]


def test_dev_shops_bff_file_holds_no_secret(dev_shops: DevShops) -> None:
    creds = dev_shops.secrets()
    dev_shops.write_files(creds)
    text = dev_shops.bff_shops_file.read_text()

    secret_values = [v for shop in ("snowboards", "surfboards") for k, v in creds[shop].items() if k != "client_id"]
    assert [v for v in secret_values if v in text] == []
    assert "env:SNOWBOARDS_CLIENT_SECRET" in text


def test_dev_shops_banner_lists_both_storefronts_of_one_bff(dev_shops: DevShops) -> None:
    text = shops_banner(dev_shops, "redis://127.0.0.1:6379/0", colour=False)

    assert "Two shops of one BFF" in text
    for url in (
        "http://localhost:3000/",
        "http://127.0.0.1:3000/",
        "http://localhost:8000",
        "http://127.0.0.1:8000",
        "http://localhost:9000",
        "http://127.0.0.1:9100",
    ):
        assert re.search(rf"\s{re.escape(url)}(\s|$)", text, re.M), (url, text)


def test_make_doctor_shops_checks_every_shop(tmp_path: Path, redis_url: str) -> None:
    env = dev_env(tmp_path, REDIS_URL=redis_url, DEV_SHOP2_PORT=str(free_port()))
    result = run(python("-m", "devkit.dev", "--shops", "--doctor"), cwd=tmp_path, env=env, timeout=90)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "(2 shops from" in result.stdout
    assert 'Shop "snowboards"' in result.stdout
    assert 'Shop "surfboards"' in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("FAIL")], result.stdout
