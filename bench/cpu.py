"""CPU accounting from Linux /proc: a process's CPU time, and how busy the whole machine was.

The benchmark shares two cores with everything else on the machine, so each run records how much CPU
went to processes that are not part of it ("other load"): a run with other load is not a clean figure.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_seconds(pid: int) -> float | None:
    """User + system CPU seconds `pid` has used so far, or None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may contain spaces) start after ")"; utime, stime are 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores have spent not idle since boot, or None without /proc."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    ticks = [int(v) for v in first[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICKS


def children_seconds() -> float:
    """CPU seconds used by this process's finished children (wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU used by each watched pid, by our finished children and by the machine, between start and stop."""

    pids: dict[str, int]
    _start: dict[str, float | None] | None = None
    per_process: dict[str, float] | None = None
    other_cores: float | None = None  # average cores busy with processes that are not ours

    def start(self) -> CpuWindow:
        self._start = self._sample()
        return self

    def stop(self, seconds: float) -> CpuWindow:
        assert self._start is not None
        end = self._sample()
        delta = {k: end[k] - v for k, v in self._start.items() if v is not None and end[k] is not None}  # type: ignore[operator]
        self.per_process = {name: delta[name] for name in self.pids if name in delta}
        if "_machine" in delta and seconds > 0:
            ours = sum(self.per_process.values()) + delta.get("_children", 0.0) + delta.get("_self", 0.0)
            self.other_cores = max(0.0, (delta["_machine"] - ours) / seconds)
        return self

    def _sample(self) -> dict[str, float | None]:
        sample: dict[str, float | None] = {name: process_seconds(pid) for name, pid in self.pids.items()}
        sample["_machine"] = machine_busy_seconds()
        sample["_children"] = children_seconds()
        sample["_self"] = process_seconds(os.getpid())
        return sample
