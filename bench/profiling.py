"""Sample a server under load with py-spy (optional) and summarise where its CPU time goes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.servers import ROOT

_PREFIXES = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], str(ROOT))
# Where a frame's own time is charged in the per-component split; first match wins.
_COMPONENTS = (
    ("app/", "app (the BFF)"),
    ("redis/", "redis-py"),
    ("aiohttp/", "aiohttp"),
    ("yarl/", "aiohttp"),
    ("multidict/", "aiohttp"),
    ("starlette/", "starlette"),
    ("fastapi/", "fastapi"),
    ("uvicorn/", "uvicorn"),
    ("itsdangerous/", "itsdangerous"),
    ("cryptography/", "cryptography"),
    ("prometheus_client/", "prometheus_client"),
    ("asyncio/", "asyncio"),
    ("json/", "json"),
)
Key = tuple[str, str]  # (function, file)


@dataclass(frozen=True, slots=True)
class Entry:
    function: str
    where: str  # the function's file, relative to site-packages, the stdlib or the project
    own: float  # share of active samples with this function on top
    total: float  # share of active samples with this function anywhere on the stack
    caller: str = ""  # the most frequent caller while it was on top, for own-time entries


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    top_own: list[Entry]
    top_app: list[Entry]  # functions in app/, by inclusive time
    components: dict[str, float]  # own time per library
    speedscope: Path


def py_spy() -> str | None:
    """py-spy from PATH or next to this interpreter; the profile is skipped without it."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def _short(path: str) -> str:
    for prefix in _PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) :].lstrip("/")
    return path


def _component(path: str) -> str:
    short = _short(path)
    return next((name for prefix, name in _COMPONENTS if short.startswith(prefix)), "other")


def record(pid: int, out: Path, *, seconds: int, rate: int = 100) -> subprocess.Popen[bytes]:
    """Start `py-spy record` on `pid` in the background (speedscope JSON); wait on the returned process.

    Blocking sampling (the default) at 100 Hz cost the BFF under 5% of its throughput here, and keeps
    stacks whole; --nonblocking left about 40% of the samples with truncated stacks.
    """
    binary = py_spy()
    assert binary is not None
    args = [binary, "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate), "-f", "speedscope", "-o", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarise(path: Path, *, top: int = 10) -> Profile:
    """Own and inclusive time per function from a py-spy speedscope file (idle samples excluded)."""
    doc = json.loads(path.read_text())
    frames = [(f["name"], f["file"]) for f in doc["shared"]["frames"]]
    own: Counter[Key] = Counter()
    total: Counter[Key] = Counter()
    callers: defaultdict[Key, Counter[Key]] = defaultdict(Counter)
    samples = 0
    for profile in doc["profiles"]:
        for stack in profile["samples"]:
            if not stack:
                continue
            samples += 1
            leaf = frames[stack[-1]]
            own[leaf] += 1
            caller = next((frames[i] for i in reversed(stack[:-1]) if frames[i] != leaf), None)
            if caller is not None:
                callers[leaf][caller] += 1
            # py-spy has one frame per (function, line); a function counts once per sample.
            for key in {frames[i] for i in stack}:
                total[key] += 1

    def entry(key: Key, *, with_caller: bool = False) -> Entry:
        caller = ""
        if with_caller and callers[key]:
            (name, file), _ = callers[key].most_common(1)[0]
            caller = f"{name} ({_short(file)})"
        return Entry(key[0], _short(key[1]), own[key] / samples, total[key] / samples, caller)

    components: Counter[str] = Counter()
    for (_, file), count in own.items():
        components[_component(file)] += count
    app_keys = [key for key, _ in total.most_common() if _short(key[1]).startswith("app/")]
    return Profile(
        samples=samples,
        top_own=[entry(key, with_caller=True) for key, _ in own.most_common(top)],
        top_app=[entry(key) for key in app_keys[:top]],
        components={name: count / samples for name, count in components.most_common()},
        speedscope=path,
    )


def render_text(profile: Profile) -> str:
    lines = [f"{profile.samples} active samples (idle excluded) from {profile.speedscope.name}", ""]
    lines.append("Top functions by own time (caller = most frequent caller while on top):")
    for e in profile.top_own:
        lines.append(f"  {e.own:6.1%} own {e.total:6.1%} total  {e.function}  ({e.where})  <- {e.caller}")
    lines += ["", "BFF code (app/) by inclusive time:"]
    lines += [f"  {e.total:6.1%} total {e.own:6.1%} own  {e.function}  ({e.where})" for e in profile.top_app]
    lines += ["", "Own time by component:"]
    lines += [f"  {share:6.1%}  {name}" for name, share in profile.components.items()]
    return "\n".join(lines) + "\n"
