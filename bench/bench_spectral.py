"""Benchmark: plain WeightWatcher `analyze()` vs alphawatch `analyze_network`, same weights, same process.

Run:  .venv/bin/python bench/bench_spectral.py [--repeat 3] [--threads 1]

Prints wall time of each (best of --repeat, WeightWatcher imported beforehand so its ~3 s
import is not counted for either), the speed-up ratio and the largest |alpha difference|
over the layers both analysed. Workloads:
- sac: five SAC networks (actor, 2 critics, 2 targets), 256-wide MLPs (tests/factories.py);
- big: six Linear 1024x1024 layers plus a Conv2d(128, 256, 3).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from alphawatch.analysis import analyze_network, spectral  # noqa: E402
from alphawatch.analysis.options import AnalysisOptions  # noqa: E402
from factories import sac_networks  # noqa: E402


def big_model() -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(1024, 1024) for _ in range(6)]
    layers.append(nn.Conv2d(128, 256, 3))
    return nn.Sequential(*layers)


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def run_ww(models: dict[str, nn.Module]) -> dict[str, dict[str, float]]:
    ww = spectral._weightwatcher()
    alphas: dict[str, dict[str, float]] = {}
    with spectral._contained():
        for name, model in models.items():
            details = ww.WeightWatcher(model=model).analyze()
            alphas[name] = {f"{row.longname}.weight": float(row.alpha) for row in details.itertuples()}
    return alphas


def run_ours(models: dict[str, nn.Module], options: AnalysisOptions) -> dict[str, dict[str, float]]:
    alphas: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        result = analyze_network(dict(model.state_dict()), {}, options, name=name)
        alphas[name] = {x["name"]: x["alpha"] for x in result["layers"] if x["status"] == "ok"}
    return alphas


def compare(label: str, models: dict[str, nn.Module], repeat: int, options: AnalysisOptions) -> None:
    t_ww, ww_alpha = best_of(repeat, lambda: run_ww(models))
    t_ours, our_alpha = best_of(repeat, lambda: run_ours(models, options))
    deltas = [abs(a - our_alpha[n][layer]) for n, layers in ww_alpha.items() for layer, a in layers.items()]
    print(
        f"{label:<5} layers={len(deltas):>3}  weightwatcher={t_ww:7.3f}s  alphawatch={t_ours:7.3f}s  "
        f"speed-up={t_ww / t_ours:5.1f}x  max|dalpha|={max(deltas):.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for alphawatch (options.threads)"
    )
    args = parser.parse_args()
    spectral._weightwatcher()  # import cost paid once, outside every timing
    spectral._watcher()
    print(
        f"torch {torch.__version__}, weightwatcher {spectral.weightwatcher_version()}, "
        f"alphawatch threads={args.threads}, torch default threads={torch.get_num_threads()}, "
        f"best of {args.repeat}"
    )
    # spectral work only: the cheap weight-based dead-neuron count keeps the comparison fair
    options = AnalysisOptions(dead_neuron_method="weight", threads=args.threads)
    compare("sac", dict(sac_networks(seed=0)), args.repeat, options)
    compare("big", {"big": big_model()}, args.repeat, options)
    full = AnalysisOptions(threads=args.threads)
    t_full, _ = best_of(args.repeat, lambda: run_ours(dict(sac_networks(seed=0)), full))
    print(f"sac   alphawatch with activation-based dead neurons (1000 samples): {t_full:.3f}s")


if __name__ == "__main__":
    main()
