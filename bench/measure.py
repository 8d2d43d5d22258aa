"""Process-level measurements for the bench: resident memory now and at peak, resettable."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MiB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak() -> None:
    """Start a new peak-RSS window: writing 5 to clear_refs resets VmHWM (Linux >= 4.0)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, how far peak RSS rose above the RSS at the call's start in MiB, result).

    Growth, not the peak itself: what else the process holds at that moment (the model
    prepared for plain WeightWatcher, 0.8 GB for the 7B case's two blocks) is not the
    call's memory.
    """
    reset_peak()
    before = status_mb("VmRSS")
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, status_mb("VmHWM") - before, out
