"""How far to trust one layer's alpha: the data behind `TrustedLayers` and the proposed
metric `alphawatch_layers_trusted`.

Two ways the same quantity should read the same, over the second half of every run (where
training has mostly settled):
- *consecutive*: one layer at two consecutive checkpoints. The weights barely move, so a
  jump is fit noise -- mostly `xmin` flipping to another eigenvalue.
- *seeds*: one layer of the same architecture, data and step in two runs that differ only
  in their seed. A well-estimated alpha is a property of the training recipe; a small tail
  gives an alpha "anywhere from 3 to 13".

A pair's fit quality is the worse of its two readings (fewer tail eigenvalues, larger D); it
counts as trusted only if both readings are. `choose_thresholds` picks the loosest
(min tail size, max D) under which at least 95% of trusted pairs of each kind agree within
`AGREE` (0.25, half the width of the 2-2.5 band a stop threshold of 2 sits at). Only the
development seeds are used to choose; the report shows the held-out seed separately.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.stop_signal.rules import TrustedLayers, fitted

SPIKE_BINS = (8, 10, 20, 30, 50, 100, 10**9)
D_BINS = (0.0, 0.05, 0.075, 0.10, 0.15, 10.0)
SPIKE_GRID = (10, 20, 30, 50, 75, 100)
D_GRID = (0.05, 0.075, 0.10, 0.15, 10.0)
AGREE, SHARE, MIN_PAIRS = 0.25, 0.95, 20
KINDS = ("consecutive", "seeds")


@dataclass(frozen=True)
class Pair:
    """Two readings of one layer that should agree (see the module doc)."""

    kind: str            # consecutive | seeds
    group: str           # family-variant
    seeds: tuple[int, ...]
    network: str
    layer: str
    spikes: int          # the smaller tail of the two readings
    d: float             # the larger KS distance of the two readings
    delta: float         # |alpha difference|
    first: dict[str, Any]
    second: dict[str, Any]

    def trusted(self, criterion: TrustedLayers) -> bool:
        return criterion(self.first) and criterion(self.second)


def _pair(kind: str, group: str, seeds: tuple[int, ...], network: str, a: dict[str, Any],
          b: dict[str, Any]) -> Pair:
    return Pair(kind, group, seeds, network, a["name"], min(int(a["num_pl_spikes"]), int(b["num_pl_spikes"])),
                max(float(a["D"]), float(b["D"])), abs(float(a["alpha"]) - float(b["alpha"])), a, b)


def _layers(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(net, layer["name"]): layer for net, nr in (result.get("networks") or {}).items()
            for layer in nr.get("layers") or [] if fitted(layer)}


def consecutive_pairs(group: str, seed: int, results: Sequence[dict[str, Any]]) -> list[Pair]:
    pairs = []
    for i in range(max(1, len(results) // 2), len(results)):
        before, after = _layers(results[i - 1]), _layers(results[i])
        pairs += [_pair("consecutive", group, (seed,), key[0], before[key], layer)
                  for key, layer in after.items() if key in before]
    return pairs


def seed_pairs(group: str, runs: Sequence[tuple[int, Sequence[dict[str, Any]]]]) -> list[Pair]:
    """Same group, same checkpoint index (second half), every two seeds."""
    pairs = []
    for (seed_a, a), (seed_b, b) in itertools.combinations(runs, 2):
        for i in range(min(len(a), len(b)) // 2, min(len(a), len(b))):
            la, lb = _layers(a[i]), _layers(b[i])
            pairs += [_pair("seeds", group, (seed_a, seed_b), key[0], layer, lb[key])
                      for key, layer in la.items() if key in lb]
    return pairs


def all_pairs(runs: Iterable[Any]) -> list[Pair]:
    """Both kinds of pairs over `evaluate.Run` objects."""
    by_group: dict[str, list[Any]] = defaultdict(list)
    for run in runs:
        by_group[run.group].append(run)
    pairs = []
    for group, members in sorted(by_group.items()):
        for run in members:
            pairs += consecutive_pairs(group, run.spec.seed, run.results)
        pairs += seed_pairs(group, [(run.spec.seed, run.results) for run in members])
    return pairs


def agreement(pairs: Sequence[Pair]) -> dict[str, float] | None:
    """n, median |delta|, 95th percentile, share agreeing within AGREE, max."""
    if not pairs:
        return None
    deltas = sorted(p.delta for p in pairs)
    return {"n": len(deltas), "median": deltas[len(deltas) // 2],
            "p95": deltas[min(len(deltas) - 1, int(0.95 * len(deltas)))],
            "agree": sum(d <= AGREE for d in deltas) / len(deltas), "max": deltas[-1]}


def binned(pairs: Sequence[Pair], kind: str) -> list[dict[str, Any]]:
    """Agreement of one kind of pair per tail-size bin and per D bin."""
    rows = []
    mine = [p for p in pairs if p.kind == kind]
    for s_lo, s_hi in itertools.pairwise(SPIKE_BINS):
        stats = agreement([p for p in mine if s_lo <= p.spikes < s_hi])
        if stats:
            rows.append({"by": "tail eigenvalues", "range": (s_lo, s_hi), **stats})
    for d_lo, d_hi in itertools.pairwise(D_BINS):
        stats = agreement([p for p in mine if d_lo <= p.d < d_hi])
        if stats:
            rows.append({"by": "D", "range": (d_lo, d_hi), **stats})
    return rows


def grid(pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    """Per candidate (min_spikes, max_d): coverage (share of pairs kept) and agreement per kind."""
    rows = []
    for k, d in itertools.product(SPIKE_GRID, D_GRID):
        criterion = TrustedLayers(k, d)
        row: dict[str, Any] = {"min_spikes": k, "max_d": d}
        for kind in KINDS:
            mine = [p for p in pairs if p.kind == kind]
            kept = [p for p in mine if p.trusted(criterion)]
            row[kind] = agreement(kept)
            row[f"{kind}_coverage"] = len(kept) / len(mine) if mine else 0.0
        rows.append(row)
    return rows


def passes(row: dict[str, Any]) -> bool:
    return all(row[k] is not None and row[k]["n"] >= MIN_PAIRS and row[k]["agree"] >= SHARE for k in KINDS)


def choose_thresholds(pairs: Sequence[Pair]) -> TrustedLayers:
    """The loosest grid point (most pairs kept) where each kind of pair agrees within AGREE
    at least SHARE of the time; ties go to the smaller tail and the looser D. The strictest
    grid point when none passes."""
    rows = [r for r in grid(pairs) if passes(r)]
    if not rows:
        return TrustedLayers(SPIKE_GRID[-1], D_GRID[0])
    best = max(rows, key=lambda r: (r["consecutive_coverage"] + r["seeds_coverage"], -r["min_spikes"],
                                    r["max_d"]))
    return TrustedLayers(best["min_spikes"], best["max_d"])
