"""The daemon's performance targets (issue 12, targets 6-9, and issue 10's failure 7), measured
on real `alphawatch run` processes. Prints one table; `--json FILE` also writes the figures.

    .venv/bin/python bench/daemon/run.py                  # everything (about 20 minutes)
    .venv/bin/python bench/daemon/run.py --quick          # shorter windows, 20,000 rows (about 5)
    .venv/bin/python bench/daemon/run.py --cases latency,scrape

Cases: latency (target 6), idle (7), scrape (8), neighbour (9), history (failure 7).
Figures taken on a busy machine are inflated: say so next to them, and re-run on an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import history  # noqa: E402
import idle  # noqa: E402
import latency  # noqa: E402
import neighbour  # noqa: E402
import scrape  # noqa: E402

CASES = {
    "latency": ("6 latency: SAC checkpoint renamed in -> on /metrics (median of 20)",
                lambda base, quick: latency.run(base, repeat=5 if quick else 20),
                lambda r: f"median {r['median_s']:.2f} s, max {r['max_s']:.2f} s (complete after "
                          f"{r['complete_median_s']:.2f} s, analysis {r['analysis_median_s']:.2f} s)",
                "<= quiet period + 1 s = 3.0 s"),
    "idle": ("7 idle: daemon + warm worker, a scrape every 15 s",
             lambda base, quick: idle.run(base, seconds=20.0 if quick else 60.0),
             lambda r: f"{r['core_pct']:.2f}% of one core over {r['seconds']:g} s (main "
                       f"{r['main_core_pct']:.2f}%, worker {r['worker_core_pct']:.2f}%); main RSS "
                       f"{r['main_rss_mb']:.0f} MB", "< 1% of a core, main RSS < 150 MB"),
    "scrape": ("8 scrape: per-layer on, 10 runs x 5 networks x 100 layers",
               lambda base, quick: scrape.run(base, scrapes=20 if quick else 50),
               lambda r: f"median {r['median_ms']:.1f} ms (max {r['max_ms']:.1f} ms) with the ledger "
                         f"unchanged, {r['changed_median_ms']:.1f} ms right after a change; "
                         f"{r['layer_series']} layer series, {r['bytes'] // 1024} KiB", "< 50 ms median"),
    "neighbour": ("9 neighbour: CPU training loop, a checkpoint analyzed every 30 s",
                  lambda base, quick: neighbour.run(base, cycles=4 if quick else 10),
                  lambda r: f"{r['steps_per_s']:.0f} steps/s; while the daemon analyzed "
                            f"({100 * r['busy_fraction']:.1f}% of each 30 s) the loop ran at "
                            f"{100 * r['rate_ratio_while_analyzing']:.0f}% of its speed: loss "
                            f"{r['loss_pct']:.2f}% over {r['checkpoints']} checkpoints (at most "
                            f"{100 * r['busy_fraction']:.1f}% even had it stopped)", "loss <= 10%"),
    "history": ("failure 7: a new checkpoint and a scrape with a long history",
                lambda base, quick: history.run(base, rows=20_000 if quick else 100_000),
                lambda r: f"{r['rows']:,} rows: main CPU {1000 * r['main_cpu_per_checkpoint_s']:.0f} ms per "
                          f"checkpoint, scrape median {r['scrape_median_ms']:.1f} ms",
                "< 100 ms CPU, < 50 ms scrape"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--quick", action="store_true", help="shorter windows and histories")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    load = os.getloadavg()[0]
    print(f"alphawatch daemon benchmarks on {os.cpu_count()} cores, load average {load:.1f} at start"
          f"{' (contended: figures inflated)' if load > 0.5 * (os.cpu_count() or 1) else ''}\n")
    figures: dict[str, Any] = {}
    rows = []
    for name in chosen:
        title, measure, describe, target = CASES[name]
        with tempfile.TemporaryDirectory(prefix=f"alphawatch-bench-{name}-") as folder:
            started = time.monotonic()
            result = measure(Path(folder), args.quick)
        result["bench_seconds"] = round(time.monotonic() - started, 1)
        figures[name] = result
        rows.append((title, describe(result), target, "yes" if result["met"] else "NO"))
        print(f"{title}\n  {rows[-1][1]}  [target {target}: {rows[-1][3]}]", flush=True)
    print("\n| case | figure | target | met |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"load_average_start": load, "figures": figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
