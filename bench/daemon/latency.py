"""Target 6: a SAC-sized checkpoint renamed into the watched folder is visible on /metrics
within the quiet period + 1 s (median of 20), with the default settings (quiet period 2 s).

Also split into its parts from the daemon's own log: until `checkpoint_complete` (noticing
it and its quiet period), then until `checkpoint_analyzed` (the worker), then the scrape.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import Daemon, median, metric_value, place, sac_checkpoint_bytes, wait_for

QUIET = 2.0  # the default watch.quiet_period_seconds


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def run(base: Path, repeat: int = 20) -> dict[str, Any]:
    watch = base / "ckpts"
    watch.mkdir(parents=True)
    blobs = [sac_checkpoint_bytes(step=(i + 1) * 1000, seed=i) for i in range(repeat)]
    d = Daemon(base, {"runs": [{"watch": str(watch), "name": "sac"}]})
    try:
        d.wait_event("worker_ready", 180)
        total, noticed, analyzed = [], [], []
        for i, blob in enumerate(blobs):
            step = (i + 1) * 1000
            placed = place(watch, f"step_{step}.pt", blob)

            def visible(step: int = step) -> bool:
                return metric_value(d.get("/metrics")[1], "alphawatch_checkpoint_step", run="sac") == step

            wait_for(visible, 120, f"step {step} on /metrics", interval=0.05)
            total.append(time.time() - placed)
            complete = d.wait_event("checkpoint_complete", 10, count=i + 1)
            done = d.wait_event("checkpoint_analyzed", 10, count=i + 1)
            noticed.append(_ts(complete) - placed)
            analyzed.append(_ts(done) - _ts(complete))
            time.sleep(0.5)
    finally:
        d.stop()
    return {"median_s": median(total), "max_s": max(total), "target_s": QUIET + 1.0,
            "met": median(total) <= QUIET + 1.0, "complete_median_s": median(noticed),
            "analysis_median_s": median(analyzed), "repeat": repeat}
