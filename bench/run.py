"""`make bench`: alphawatch against plain WeightWatcher on the same weights, in the same run.

    .venv/bin/python bench/run.py [--threads 2] [--repeat 3] [--scale] [--workdir DIR] [--only NAME]

Each case runs in a fresh child process (so its peak RSS is its own): WeightWatcher and
torch are imported and alphawatch warmed up first (as in the daemon's worker), that RSS is
"idle"; then alphawatch (load the checkpoint file + analyze_checkpoint) and plain
`WeightWatcher(model).analyze()` run alternately `--repeat` times and the best time of
each is kept. The table: case, alphawatch time, WeightWatcher time, ratio, max |dalpha|,
layers within 0.01 (of layers both fitted), whether every skip/fail decision was the same,
and alphawatch's peak RSS (idle, plus how far its call raised RSS). Inputs are built seeded
and deleted afterwards. `--scale` adds the multi-GB cases (disk space is checked first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TOLERANCE = 0.01


def _ww_rows(details: Any) -> dict[str, float]:
    return {f"{row.longname}.weight": float(row.alpha) for row in details.itertuples()}


def compare(ours: dict[str, Any], ww: dict[str, float], covers: Any = None) -> dict[str, Any]:
    """max |dalpha|, layers within TOLERANCE and decision agreement, keyed by full tensor key.

    `covers`: the keys WeightWatcher was run on, when it ran on part of the checkpoint.
    """
    mine: dict[str, dict[str, Any]] = {}
    for net in ours["networks"].values():
        for layer in net["layers"]:
            if covers is None or covers(layer["key"]):
                mine[layer["key"]] = layer
    deltas: list[float] = []
    mismatched: list[str] = []
    for key, layer in mine.items():
        theirs = ww.get(key)
        expected = "skipped" if theirs is None else ("failed" if theirs == -1 else "ok")
        if layer["status"] != expected:
            mismatched.append(f"{key}: ours {layer['status']}, WeightWatcher {expected}")
        elif expected == "ok":
            deltas.append(abs(layer["alpha"] - theirs))
    mismatched += [f"{key}: only WeightWatcher analyzed it" for key in ww if key not in mine]
    return {
        "layers": len(deltas),
        "within": sum(d <= TOLERANCE for d in deltas),
        "max_dalpha": max(deltas) if deltas else None,
        "decisions_same": not mismatched,
        "mismatched": mismatched[:5],
    }


def child(name: str, path: Path, threads: int, repeat: int, with_ww: bool = True) -> dict[str, Any]:
    """Runs inside the per-case process; returns the figures as a dict."""
    import torch
    from alphawatch import checkpoints
    from alphawatch.analysis import analyze_checkpoint, spectral
    from alphawatch.analysis.layers import CACHE
    from alphawatch.analysis.options import AnalysisOptions
    from cases import CASES
    from measure import status_mb, timed

    case = next(c for c in CASES if c.name == name)
    ww = spectral._weightwatcher()
    spectral._watcher()
    options = AnalysisOptions(threads=threads)
    warm = {"0.weight": torch.randn(64, 32), "2.weight": torch.randn(16, 64)}
    ckpt = checkpoints.Checkpoint("<warm-up>", "torch_zip", None, {"w": warm}, {"w": {}}, [])
    analyze_checkpoint(ckpt, options)
    idle = status_mb("VmRSS")

    def ours() -> dict[str, Any]:
        CACHE.clear()  # every run computes everything (the cache would make repeats free)
        return analyze_checkpoint(checkpoints.load(path), options)

    def plain() -> dict[str, float]:
        model = case.ww_model(path) if case.ww_times_load else prepared
        with spectral._contained():
            return _ww_rows(ww.WeightWatcher(model=model).analyze())

    prepared = None if case.ww_times_load or not with_ww else case.ww_model(path)
    t_ours, t_ww, rss_ours, rss_ww = [], [], [], []
    result: dict[str, Any] = {}
    ww_alphas: dict[str, float] = {}
    for _ in range(case.repeat or repeat):
        t, peak, result = timed(ours)
        t_ours.append(t)
        rss_ours.append(peak)
        if with_ww:
            t, peak, ww_alphas = timed(plain)
            t_ww.append(t)
            rss_ww.append(peak)
    return {
        "case": name,
        "alphawatch_s": min(t_ours),
        "weightwatcher_s": min(t_ww) * case.ww_scale if t_ww else None,
        "ww_extrapolated": case.ww_scale != 1.0,
        "idle_rss_mb": idle,
        "alphawatch_growth_mb": rss_ours[0],  # first run: nothing of WeightWatcher's retained yet
        "weightwatcher_growth_mb": max(rss_ww) if rss_ww else None,
        **(compare(result, ww_alphas, case.ww_covers) if with_ww else {}),
    }


def _row(r: dict[str, Any]) -> str:
    if r["weightwatcher_s"] is None:  # --no-weightwatcher: time and memory of alphawatch only
        return (
            f"| {r['case']} | {r['alphawatch_s']:.2f} s | not run | - | - | - | - "
            f"| idle {r['idle_rss_mb']:.0f} MB + {r['alphawatch_growth_mb']:.0f} MB |"
        )
    ratio = r["weightwatcher_s"] / r["alphawatch_s"]
    dalpha = "-" if r["max_dalpha"] is None else f"{r['max_dalpha']:.1e}"
    approx = "~" if r.get("ww_extrapolated") else ""
    return (
        f"| {r['case']} | {r['alphawatch_s']:.2f} s | {approx}{r['weightwatcher_s']:.2f} s "
        f"| {approx}{ratio:.1f}x | {dalpha} "
        f"| {r['within']}/{r['layers']} | {'yes' if r['decisions_same'] else 'NO'} "
        f"| idle {r['idle_rss_mb']:.0f} MB + {r['alphawatch_growth_mb']:.0f} MB |"
    )


HEADER = (
    "| case | alphawatch | WeightWatcher | ratio | max \\|dalpha\\| | layers within 0.01 | same skip/fail "
    "| alphawatch peak RSS |\n|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="analysis.threads")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", action="store_true", help="also the multi-GB cases (slow, needs disk)")
    parser.add_argument("--only", help="run only the case with this name")
    parser.add_argument("--no-weightwatcher", action="store_true", help="alphawatch only (time, memory)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        row = child(args.child, args.path, args.threads, args.repeat, not args.no_weightwatcher)
        print(json.dumps(row))
        return 0
    import torch
    from cases import CASES

    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load:.1f} at start, "
        f"alphawatch threads={args.threads}, best of {args.repeat}"
        + ("  (CONTENDED: other work was running)" if load > 0.5 else "")
    )
    print(HEADER)
    failed = False
    for case in CASES:
        if (case.opt_in and not args.scale) or (args.only and case.name != args.only):
            continue
        folder = Path(tempfile.mkdtemp(prefix="alphawatch-bench-", dir=args.workdir))
        try:
            free_gb = shutil.disk_usage(folder).free / 2**30
            if free_gb < case.needs_gb:
                need = f"needs {case.needs_gb:.0f} GB free in {folder}, {free_gb:.0f} GB free"
                print(f"| {case.name} | refused: {need} |")
                continue
            path = case.build(folder)
            env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
            proc = subprocess.run(
                [sys.executable, __file__, "--child", case.name, "--path", str(path),
                 "--threads", str(args.threads), "--repeat", str(args.repeat)]
                + (["--no-weightwatcher"] if args.no_weightwatcher else []),
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                failed = True
                print(f"| {case.name} | FAILED: {proc.stderr.strip().splitlines()[-1:]} |")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(_row(row), flush=True)
            for line in row.get("mismatched", []):
                print(f"    decision differs: {line}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
