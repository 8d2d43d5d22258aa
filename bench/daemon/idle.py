"""Target 7: over 60 s with nothing to do (a scrape every 15 s, as Prometheus would), the
whole daemon (main process + warm worker) uses < 1% of one core, and the main process's
resident memory stays < 150 MB. A few checkpoints are analyzed first, so it is warm."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common import Daemon, cpu_seconds, place, rss_mb, sac_checkpoint_bytes


def run(base: Path, seconds: float = 60.0) -> dict[str, Any]:
    watch = base / "ckpts"
    watch.mkdir(parents=True)
    d = Daemon(base, {"runs": [{"watch": str(watch), "name": "sac"}]})
    try:
        d.wait_event("worker_ready", 180)
        for i in range(3):
            place(watch, f"step_{i + 1}.pt", sac_checkpoint_bytes(step=i + 1, seed=i))
        d.wait_event("checkpoint_analyzed", 120, count=3)
        time.sleep(5)  # the last quiet periods and log lines settle
        pids = {"main": d.proc.pid, "worker": d.worker_pid()}
        start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        began = time.monotonic()
        next_scrape = began
        while (now := time.monotonic()) < began + seconds:
            if now >= next_scrape:
                d.get("/metrics")
                next_scrape += 15.0
            time.sleep(min(0.5, began + seconds - now))
        elapsed = time.monotonic() - began
        used = {name: cpu_seconds(pid) - start[name] for name, pid in pids.items()}
        main_rss = rss_mb(pids["main"])
    finally:
        d.stop()
    core_pct = 100 * sum(used.values()) / elapsed
    return {"seconds": round(elapsed, 1), "core_pct": core_pct,
            "main_core_pct": 100 * used["main"] / elapsed, "worker_core_pct": 100 * used["worker"] / elapsed,
            "main_rss_mb": main_rss, "met": core_pct < 1.0 and main_rss < 150}
