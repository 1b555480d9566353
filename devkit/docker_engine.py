"""A Docker engine to build and run the image with: the one already running, or a dockerd of our own.

Ours (root only) keeps everything under one temporary directory (data, exec state, pid file, socket), so it never
meets the machine's engine or another run's. It makes no bridge and touches no iptables: containers get the host's
network (loopback, here) or none. It is stopped by its pid, and its directory removed. Every failure names its
cause: the command, its exit code and the tail of what it printed (for dockerd, its log).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "unix:///var/run/docker.sock"
START_TIMEOUT = 60.0


class EngineError(RuntimeError):
    """A docker command or the engine itself failed; the message says which and why."""


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Engine:
    """A Docker engine at `host`; `proc` and `workdir` are set when we started it (and so must stop it)."""

    host: str
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (our environment by default) pointed at this engine, with the classic builder: BuildKit's
        would fetch its frontend image from a registry."""
        engine = {"DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "1"}
        return {**(os.environ if base is None else base), **engine}

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float = 120,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run a command against this engine (docker, compose) with `env` (else ours); its stdout, or EngineError
        with its output."""
        try:
            done = subprocess.run(  # noqa: S603 - our own tools and arguments
                list(args), env=self.env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            captured = error.stdout or ""
            output = captured if isinstance(captured, str) else captured.decode(errors="replace")
            raise EngineError(f"`{' '.join(args[:3])}` did not finish within {timeout:.0f}s:\n{tail(output)}") from None
        if done.returncode != 0:
            output = tail(done.stderr + "\n" + done.stdout)
            raise EngineError(f"`{' '.join(args[:3])}` failed (exit {done.returncode}):\n{output}")
        return done.stdout

    def docker(self, *args: str, timeout: float = 120) -> str:
        return self.run(["docker", *args], timeout=timeout)

    def answers(self) -> bool:
        try:
            self.docker("version", "--format", "{{.Server.Version}}", timeout=10)
        except EngineError:
            return False
        return True

    def log(self) -> str:
        path = self.workdir / "dockerd.log" if self.workdir else None
        return tail(path.read_text(errors="replace")) if path and path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the dockerd we started, by its pid (it stops its containers and its containerd first)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.workdir is not None:
            # dockerd leaves its network namespace mounted (exec/netns/default), which would keep rmtree out.
            for mount_point in mounts_under(self.workdir):
                subprocess.run(["umount", mount_point], capture_output=True, check=False)  # noqa: S603, S607
            shutil.rmtree(self.workdir, ignore_errors=True)


def mounts_under(directory: Path) -> list[str]:
    """Mount points inside `directory`, deepest first."""
    prefix = f"{directory}/"
    with open("/proc/self/mounts") as table:
        points = [line.split()[1] for line in table if line.split()[1].startswith(prefix)]
    return sorted(points, key=len, reverse=True)


def running_engine() -> Engine | None:
    """The engine DOCKER_HOST (or the default socket) points at, if one answers there."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return None
    engine = Engine(host)
    return engine if engine.answers() else None


def why_no_engine() -> str | None:
    """Why no engine can be had here (a one-line reason to skip), or None."""
    if shutil.which("docker") is None:
        return "the docker client is not installed (apt-get install docker.io)"
    if running_engine() is not None:
        return None
    if shutil.which("dockerd") is None:
        return "no Docker engine is running and dockerd is not installed (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "no Docker engine is running, and starting one needs root"
    return None


def start_engine() -> Engine:
    """A dockerd of our own under a new temporary directory; returns once it answers, else EngineError."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineError("dockerd is not installed (apt-get install docker.io)")
    workdir = Path(tempfile.mkdtemp(prefix="bff-dockerd-"))
    engine = Engine(f"unix://{workdir / 'docker.sock'}", workdir=workdir)
    # In case dockerd joins the machine's containerd instead of starting its own. Letters and digits only:
    # containerd refuses a name with `_` (which mkdtemp's suffix may hold) next to a `-` or at its end.
    namespace = "bff-" + "".join(c for c in workdir.name if c.isascii() and c.isalnum())
    args = [
        dockerd, "--data-root", str(workdir / "data"), "--exec-root", str(workdir / "exec"),
        "--pidfile", str(workdir / "dockerd.pid"), "--host", engine.host,
        "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
        "--containerd-namespace", namespace, "--containerd-plugins-namespace", f"{namespace}-plugins",
        "--shutdown-timeout", "10",
    ]  # fmt: skip
    with (workdir / "dockerd.log").open("wb") as log:
        engine.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    deadline = time.monotonic() + START_TIMEOUT
    while not engine.answers():
        if engine.proc.poll() is not None:
            message = f"dockerd failed to start (exit {engine.proc.returncode}):\n{engine.log()}"
            engine.stop()
            raise EngineError(message)
        if time.monotonic() > deadline:
            message = f"dockerd did not answer on {engine.host} within {START_TIMEOUT:.0f}s:\n{engine.log()}"
            engine.stop()
            raise EngineError(message)
        time.sleep(0.1)
    return engine


@contextmanager
def docker_engine() -> Iterator[Engine]:
    """The running engine, else one of our own, stopped on the way out even when the body fails."""
    engine = running_engine() or start_engine()
    try:
        yield engine
    finally:
        engine.stop()
