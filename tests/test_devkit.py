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

from app.logs import configure_logging
from devkit.dev import banner, colour_enabled
from devkit.dev_stack import DevStack
from devkit.redis_server import free_port
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
