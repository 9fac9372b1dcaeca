"""What every benchmark computes the same way: percentiles, a timed call's p50/p95, a process's CPU time."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0.5 = p50, 0.95 = p95) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """``fn`` once to warm caches, then ``runs`` times: (p50 ms, p95 ms, what the last run returned)."""
    fn()
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 0.5), percentile(samples, 0.95), result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads (chDB's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
