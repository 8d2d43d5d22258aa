"""Target 8: /metrics with per-layer series on, 10 runs x 5 networks x 100 layers (5,000
`alphawatch_layer_alpha` series), answers in < 50 ms (median of 50 scrapes).

Two figures: scrapes while the ledger is unchanged (the usual case: a scrape every 15 s, a
checkpoint every few minutes; the ledger's part of the body is then reused), and scrapes
each right after a change to the ledger (everything rebuilt and re-encoded).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from common import Daemon, median
from synthetic import fill, result

RUNS, NETWORKS, LAYERS = 10, 5, 100


def run(base: Path, scrapes: int = 50) -> dict[str, Any]:
    state = base / "state" / "ledger.sqlite3"
    state.parent.mkdir(parents=True)
    runs = []
    for r in range(RUNS):
        name = f"run{r}"
        (base / name).mkdir()
        runs.append({"watch": str(base / name), "name": name})
        fill(state, name, 3,
             lambda step, name=name: result(f"/{name}/step_{step}.pt", step, NETWORKS, LAYERS))
    limit = RUNS * NETWORKS * LAYERS
    d = Daemon(base, {"runs": runs, "metrics": {"per_layer": True, "per_layer_limit": limit}})
    try:
        _, body = d.get("/metrics")
        series = sum(line.startswith("alphawatch_layer_alpha{") for line in body.splitlines())
        times = [d.get("/metrics")[0] for _ in range(scrapes)]
        changed = []
        for i in range(max(10, scrapes // 5)):
            with sqlite3.connect(state) as other:  # any commit to the ledger invalidates
                other.execute("INSERT OR REPLACE INTO meta VALUES ('bench', ?)", (str(i),))
            changed.append(d.get("/metrics")[0])
    finally:
        d.stop()
    return {"median_ms": 1000 * median(times), "max_ms": 1000 * max(times), "layer_series": series,
            "changed_median_ms": 1000 * median(changed), "bytes": len(body),
            "met": median(times) < 0.050 and series == limit}
