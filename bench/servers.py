"""Child processes the benchmark starts (uvicorn apps, the Shopify stand-in) and stops by pid."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devkit.redis_server import wait_port

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "bench" / "out" / "logs"


def uvicorn_args(target: str, port: int) -> list[str]:
    """The server stack every HTTP process under test shares: one uvicorn worker, uvloop, httptools."""
    return [
        "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


@dataclass
class Server:
    """One child Python process listening on `port`; its output goes to bench/out/logs/<name>.log."""

    name: str
    port: int
    args: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = ROOT  # another checkout runs that checkout's code (its directory comes first on sys.path)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def start(self, timeout: float = 20.0) -> Server:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_port(self.port, timeout=timeout)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; see {self.log}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
