"""Failure 7's targets: with 100,000 checkpoints already in the ledger, one more costs the
daemon's main process < 0.1 s of CPU, and a scrape answers in < 50 ms.

The history is real results: one SAC checkpoint is analyzed here, and its result is stored
100,000 times with its alphas nudged (distinct weights, distinct fingerprints). The daemon
then analyzes 20 new SAC checkpoints; its main process's CPU over that time, less what it
uses idle over the same span, divided by 20, is the cost of one.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Daemon, cpu_seconds, median, place, sac_checkpoint_bytes
from synthetic import fill


def _template() -> dict[str, Any]:
    from alphawatch.analysis.options import AnalysisOptions
    from alphawatch.pipeline import analyze_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "step_1.pt"
        path.write_bytes(sac_checkpoint_bytes(step=1, seed=0))
        return dict(analyze_file(path, AnalysisOptions()))


def _nudged(template: dict[str, Any], step: int) -> dict[str, Any]:
    res = copy.deepcopy(template)
    res["path"], res["step"] = f"/history/step_{step}.pt", step
    for net in res["networks"].values():
        for layer in net["layers"]:
            if layer["alpha"] is not None:
                layer["alpha"] += step * 1e-7
    return res


def run(base: Path, rows: int = 100_000, new: int = 20, scrapes: int = 20) -> dict[str, Any]:
    watch = base / "ckpts"
    watch.mkdir(parents=True)
    state = base / "state" / "ledger.sqlite3"
    state.parent.mkdir(parents=True)
    template = _template()
    began = time.monotonic()
    fill(state, "sac", rows, lambda step: _nudged(template, step))
    filled_s = time.monotonic() - began
    blobs = [sac_checkpoint_bytes(step=rows + i + 1, seed=1000 + i) for i in range(new)]
    d = Daemon(base, {"runs": [{"watch": str(watch), "name": "sac"}]})
    try:
        d.wait_event("worker_ready", 180)
        time.sleep(3)
        main = d.proc.pid
        idle0, t0 = cpu_seconds(main), time.monotonic()
        time.sleep(10)
        idle_rate = (cpu_seconds(main) - idle0) / (time.monotonic() - t0)
        c0, t0 = cpu_seconds(main), time.monotonic()
        for i, blob in enumerate(blobs):
            place(watch, f"step_{rows + i + 1}.pt", blob)
            d.wait_event("checkpoint_analyzed", 300, count=i + 1)
        busy = cpu_seconds(main) - c0 - idle_rate * (time.monotonic() - t0)
        times = [d.get("/metrics")[0] for _ in range(scrapes)]
    finally:
        d.stop()
    per_checkpoint = busy / new
    return {"rows": rows, "fill_s": round(filled_s, 1), "main_cpu_per_checkpoint_s": per_checkpoint,
            "scrape_median_ms": 1000 * median(times),
            "met": per_checkpoint < 0.1 and median(times) < 0.050}
