"""Orchestration: train and analyze every run of a plan (cached), two at a time.

Cache layout (`--cache`, default `.signal-cache/`, gitignored), one folder per run:
`<name>-<key>/` holding `spec.json`, `checkpoints/` (checkpoints and ground-truth sidecars),
`analysis/` (one CheckpointResult per checkpoint) and `done.json` (written last, with the
training time). A folder without `done.json` is a run that was interrupted: it is wiped and
trained again. Every job runs in its own process with one torch thread, so `--jobs 2` keeps
two cores busy.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.stop_signal.plan import RunSpec


def run_dir(cache: Path, spec: RunSpec) -> Path:
    return cache / f"{spec.name}-{spec.key}"


def _one_thread() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def _train(spec: RunSpec, folder: Path) -> None:
    if spec.family in ("mlp", "cnn", "charlm"):
        from bench.stop_signal import train_supervised as trainer
    elif spec.family == "sac":
        from bench.stop_signal import train_rl as trainer  # type: ignore[no-redef]
    else:
        from bench.stop_signal import train_examples as trainer  # type: ignore[no-redef]
    trainer.train(spec, folder)


def prepare(spec: RunSpec, cache: Path) -> dict[str, Any]:
    """Train (unless cached) and analyze one run; returns its timings."""
    from bench.stop_signal.analyze import analyze_run

    folder = run_dir(cache, spec)
    done = folder / "done.json"
    timings: dict[str, Any] = {"run": spec.name, "trained": False}
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "spec.json").write_text(json.dumps(asdict(spec), indent=1))
        wall, cpu, before = time.monotonic(), time.process_time(), os.times()
        _train(spec, folder)
        after = os.times()  # the examples train in a child process: count its CPU time too
        children = (after.children_user - before.children_user
                    + after.children_system - before.children_system)
        done.write_text(json.dumps({"train_wall_s": time.monotonic() - wall,
                                    "train_cpu_s": time.process_time() - cpu + children,
                                    "loadavg": os.getloadavg()}))
        timings["trained"] = True
    timings.update(json.loads(done.read_text()))
    wall = time.monotonic()
    _results, analyze_cpu = analyze_run(spec.family, folder)
    timings.update(analyze_wall_s=time.monotonic() - wall, analyze_cpu_s=analyze_cpu)
    return timings


def prepare_all(specs: list[RunSpec], cache: Path, jobs: int, log: Any = print) -> list[dict[str, Any]]:
    """Every run trained and analyzed, longest first, `jobs` processes at a time."""
    cache.mkdir(parents=True, exist_ok=True)
    ordered = sorted(specs, key=lambda s: -s.cost)
    timings = []
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_one_thread) as pool:
        futures = {pool.submit(prepare, spec, cache): spec for spec in ordered}
        for future in as_completed(futures):
            result = future.result()
            timings.append(result)
            verb = "trained" if result["trained"] else "cached "
            log(f"{verb} {result['run']:32s} train {result['train_wall_s']:7.1f}s wall "
                f"{result['train_cpu_s']:7.1f}s cpu, analysis {result['analyze_cpu_s']:6.1f}s cpu")
    return timings
