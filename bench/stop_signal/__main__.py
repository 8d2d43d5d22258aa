"""`python -m bench.stop_signal` (or `make signal-study`): the whole study, one command.

    python -m bench.stop_signal                 # full study: train (cached), analyze, score, report
    python -m bench.stop_signal --smoke         # tiny plan, every code path, < 1 minute
    python -m bench.stop_signal --train-only    # only fill the cache

Outputs: `--out` (default bench/stop_signal/results/) gets report.md, outcomes.csv and one PNG
per run. Training runs and analyses are cached under `--cache` (default .signal-cache/),
keyed by their configuration, so a rerun only re-scores the rules.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench.stop_signal import plan
from bench.stop_signal.run import prepare_all

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stop_signal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tiny CI plan instead of the full study")
    parser.add_argument("--jobs", type=int, default=2, help="training processes at a time (default 2)")
    parser.add_argument("--cache", type=Path, default=REPO / ".signal-cache")
    parser.add_argument("--out", type=Path, default=None,
                        help="report folder (default bench/stop_signal/results, smoke: <cache>/smoke-report)")
    parser.add_argument("--train-only", action="store_true", help="train and analyze, write no report")
    parser.add_argument("--only", default="", help="comma-separated families to include (debugging)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = plan.smoke_plan() if args.smoke else plan.full_plan()
    if args.only:
        specs = [s for s in specs if s.family in args.only.split(",")]
    started, load_before = time.monotonic(), os.getloadavg()
    print(f"signal study: {len(specs)} runs, {args.jobs} jobs, cache {args.cache}", flush=True)
    timings = prepare_all(specs, args.cache, args.jobs, log=lambda line: print(line, flush=True))
    wall = time.monotonic() - started
    print(f"trained/analyzed in {wall:.0f}s (load average before {load_before[0]:.1f}, "
          f"after {os.getloadavg()[0]:.1f})", flush=True)
    if args.train_only:
        return 0
    from bench.stop_signal.report import write_report

    results = REPO / "bench" / "stop_signal" / "results"
    out = args.out or (args.cache / "smoke-report" if args.smoke else results)
    write_report(specs, timings, args.cache, out, smoke=args.smoke, wall_s=wall,
                 load=(load_before, os.getloadavg()))
    print(f"report: {out / 'report.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
