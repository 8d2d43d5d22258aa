"""How far to trust one layer's alpha: the data behind `TrustedLayers` and the proposed
metric `alphawatch_layers_trusted`.

Between two consecutive checkpoints late in a run the weights barely move, so a layer's
alpha should barely move either; what it does move is fit noise (mostly `xmin` flipping to
another eigenvalue). We measure that jitter, |alpha(t) - alpha(t-1)| over the second half of
every run, against the fit's tail size (`num_pl_spikes`) and KS distance (`D`), and pick the
loosest thresholds under which the jitter is small (`choose_thresholds`). Only the
development seeds are used to choose; the report shows the held-out seed separately.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.signal.rules import TrustedLayers, fitted

SPIKE_BINS = (8, 10, 20, 50, 100, 10**9)
D_BINS = (0.0, 0.05, 0.10, 0.15, 10.0)
SPIKE_GRID = (10, 20, 30, 50, 75, 100)
D_GRID = (0.05, 0.075, 0.10, 0.15, 10.0)
# A trusted alpha moves by less than this between consecutive late checkpoints, 9 times in 10.
JITTER_P90 = 0.25


@dataclass(frozen=True)
class Pair:
    """One layer at two consecutive checkpoints; its fit quality is the worse of the two
    (fewer tail eigenvalues, larger D): a pair counts as trusted only if both readings are."""

    run: str
    seed: int
    network: str
    layer: str
    num_evals: int
    spikes: int
    d: float
    jitter: float
    before: dict[str, Any]
    after: dict[str, Any]

    def trusted(self, criterion: TrustedLayers) -> bool:
        return criterion(self.before) and criterion(self.after)


def late_pairs(run_name: str, seed: int, results: Sequence[dict[str, Any]]) -> list[Pair]:
    """Consecutive-checkpoint pairs of every fitted layer over the second half of a run."""
    pairs = []
    start = max(1, len(results) // 2)
    for i in range(start, len(results)):
        before, after = results[i - 1].get("networks") or {}, results[i].get("networks") or {}
        for net, net_result in after.items():
            old = {layer["name"]: layer for layer in (before.get(net) or {}).get("layers") or []}
            for layer in net_result.get("layers") or []:
                prev = old.get(layer["name"])
                if prev is None or not (fitted(layer) and fitted(prev)):
                    continue
                pairs.append(Pair(run_name, seed, net, layer["name"], int(layer["num_evals"]),
                                  min(int(layer["num_pl_spikes"]), int(prev["num_pl_spikes"])),
                                  max(float(layer["D"]), float(prev["D"])),
                                  abs(float(layer["alpha"]) - float(prev["alpha"])), prev, layer))
    return pairs


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def jitter_stats(pairs: Sequence[Pair]) -> dict[str, float] | None:
    if not pairs:
        return None
    jit = [p.jitter for p in pairs]
    return {"n": len(jit), "median": statistics.median(jit), "p90": _p90(jit), "max": max(jit)}


def binned(pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    """Jitter per (tail size, D) bin of the pair's worse reading."""
    rows = []
    for s_lo, s_hi in zip(SPIKE_BINS[:-1], SPIKE_BINS[1:], strict=True):
        for d_lo, d_hi in zip(D_BINS[:-1], D_BINS[1:], strict=True):
            inside = [p for p in pairs if s_lo <= p.spikes < s_hi and d_lo <= p.d < d_hi]
            stats = jitter_stats(inside)
            if stats:
                rows.append({"spikes": (s_lo, s_hi), "d": (d_lo, d_hi), **stats})
    return rows


def grid(pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    """For each candidate (min_spikes, max_d): coverage (share of fitted layer readings
    kept) and jitter of the kept ones."""
    rows = []
    for k in SPIKE_GRID:
        for d in D_GRID:
            trusted = TrustedLayers(k, d)
            kept = [p for p in pairs if p.trusted(trusted)]
            nan = float("nan")
            stats = jitter_stats(kept) or {"n": 0, "median": nan, "p90": nan, "max": nan}
            rows.append({"min_spikes": k, "max_d": d, "coverage": len(kept) / len(pairs) if pairs else 0.0,
                         **stats})
    return rows


def choose_thresholds(pairs: Sequence[Pair]) -> TrustedLayers:
    """The loosest (most coverage) thresholds whose kept readings jitter by at most
    `JITTER_P90` at the 90th percentile; the strictest grid point if none does."""
    rows = [r for r in grid(pairs) if r["n"] >= 20 and r["p90"] <= JITTER_P90]
    if not rows:
        return TrustedLayers(SPIKE_GRID[-1], D_GRID[0])
    best = max(rows, key=lambda r: (r["coverage"], -r["min_spikes"], -r["max_d"]))
    return TrustedLayers(best["min_spikes"], best["max_d"])


def all_pairs(runs: Iterable[Any]) -> list[Pair]:
    """Late pairs over runs (`evaluate.Run` objects)."""
    return [p for run in runs for p in late_pairs(run.spec.name, run.spec.seed, run.results)]
