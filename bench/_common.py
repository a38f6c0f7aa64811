"""Shared helpers for the benchmarks: percentiles and the one-JSON-line convention."""
from __future__ import annotations

import json
import platform
import resource
import sys


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def emit(figures: dict) -> None:
    """Print the figures as one JSON object on the last line (what tooling reads)."""
    figures = {"python": platform.python_version(), "machine": platform.machine(), **figures}
    print(json.dumps(figures, sort_keys=False))
