"""Score candidate rules against the ground truth: per run and rule, the fire step, lead or
lag, regret, false stop and miss; per rule, a summary; and the choice of a default.

Definitions (the report repeats them):
- fire step: the first checkpoint at which the rule fires, called on every prefix of the
  run's results as the daemon would after each analyzed checkpoint.
- lag: fire step minus the ground-truth step (negative = the rule fired early), in steps
  and in checkpoints.
- regret: how much worse the run is where it stops (the fire step; the end of the run when
  the rule never fires) than at its best -- relative held-out loss for supervised runs, the
  share of the learning range lost for RL (`Truth.regret`).
- false stop: fired before the ground-truth step (before the best held-out loss; before
  the return reached its plateau).
- detection: a run that should stop (over-fits / collapses) where the rule fired at or
  after the ground-truth step; miss: such a run where it never fired.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stop_signal.analyze import analyze_run, checkpoint_files
from bench.stop_signal.plan import RunSpec
from bench.stop_signal.rules import Rule, first_fire
from bench.stop_signal.run import run_dir
from bench.stop_signal.truth import Truth, read_truth


@dataclass(frozen=True)
class Run:
    spec: RunSpec
    results: list[dict[str, Any]]   # CheckpointResults, training order
    truth: Truth

    @property
    def group(self) -> str:
        """Family and variant: the unit for leave-one-group-out checks."""
        return f"{self.spec.family}-{self.spec.variant}"


def load_run(spec: RunSpec, cache: Path, folder: Path | None = None) -> Run:
    """A trained, analyzed run (`folder` overrides the cache layout)."""
    folder = folder or run_dir(cache, spec)
    results, _cpu = analyze_run(spec.family, folder)  # cached: reads the JSON
    truth = read_truth(spec.kind, checkpoint_files(spec.family, folder / "checkpoints"), spec.language_model)
    steps = tuple(r["step"] for r in results)
    if steps != truth.steps:
        raise ValueError(f"{spec.name}: analyzed steps {steps} differ from ground-truth steps {truth.steps}")
    return Run(spec, results, truth)


@dataclass(frozen=True)
class Outcome:
    run: str
    group: str
    seed: int
    label: str
    rule: str
    gt_step: int | None
    fire_step: int | None
    network: str | None
    lag_steps: int | None
    lag_checkpoints: int | None
    regret: float            # where training stops: the fire step, or the end when it never fires
    regret_end: float        # running to the end, no rule
    false_stop: bool
    detected: bool
    missed: bool
    kind: str


def score(run: Run, rule_name: str, rule: Rule) -> Outcome:
    truth = run.truth
    fired = first_fire(run.results, rule)
    fire_i, network = fired if fired else (None, None)
    fire_step = truth.steps[fire_i] if fire_i is not None else None
    gt = truth.gt_step
    gt_i = truth.steps.index(gt) if gt is not None else None
    stop_step = fire_step if fire_step is not None else truth.steps[-1]
    early = fire_step is not None and gt is not None and fire_step < gt
    return Outcome(
        run=run.spec.name, group=run.group, seed=run.spec.seed, label=truth.label, rule=rule_name,
        gt_step=gt, fire_step=fire_step, network=network,
        lag_steps=fire_step - gt if fire_step is not None and gt is not None else None,
        lag_checkpoints=fire_i - gt_i if fire_i is not None and gt_i is not None else None,
        regret=truth.regret(stop_step), regret_end=truth.regret(truth.steps[-1]),
        false_stop=early,
        detected=truth.should_stop and fire_step is not None and not early,
        missed=truth.should_stop and fire_step is None,
        kind=truth.kind,
    )


@dataclass(frozen=True)
class Summary:
    rule: str
    runs: int
    healthy: int
    healthy_false_stops: int
    healthy_later_stops: int     # healthy runs stopped at or after their ground truth (harmless, early exit)
    false_stops: int             # on every run, healthy or not
    should_stop: int
    detected: int
    missed: int
    regret_supervised: float | None   # mean relative held-out-loss regret where training stops
    regret_rl: float | None           # mean share of the return range lost where training stops
    median_lag: float | None          # checkpoints after the ground truth, on detections


def summarize(rule: str, outcomes: Sequence[Outcome]) -> Summary:
    mine = [o for o in outcomes if o.rule == rule]
    healthy = [o for o in mine if o.label == "healthy"]
    sup = [o.regret for o in mine if o.kind == "supervised"]
    rl = [o.regret for o in mine if o.kind == "rl"]
    lags = [o.lag_checkpoints for o in mine if o.detected and o.lag_checkpoints is not None]
    return Summary(
        rule=rule, runs=len(mine), healthy=len(healthy),
        healthy_false_stops=sum(o.false_stop for o in healthy),
        healthy_later_stops=sum(o.fire_step is not None and not o.false_stop for o in healthy),
        false_stops=sum(o.false_stop for o in mine),
        should_stop=sum(o.label in ("overfits", "collapses") for o in mine),
        detected=sum(o.detected for o in mine), missed=sum(o.missed for o in mine),
        regret_supervised=statistics.fmean(sup) if sup else None,
        regret_rl=statistics.fmean(rl) if rl else None,
        median_lag=statistics.median(lags) if lags else None,
    )


def rank_key(s: Summary) -> tuple[float, ...]:
    """Best first: no false stop on a healthy run, then most detections, fewest false stops
    anywhere, least regret."""
    regret = (s.regret_supervised or 0.0) + (s.regret_rl or 0.0)
    return (s.healthy_false_stops, -s.detected, s.false_stops, regret)


def choose(rules: Sequence[str], outcomes: Sequence[Outcome]) -> str:
    """The rule that ranks first on `outcomes` (the candidate order breaks ties: simpler first)."""
    return min(rules, key=lambda r: (rank_key(summarize(r, outcomes)), list(rules).index(r)))


def leave_one_group_out(rules: Sequence[str], outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """For each family/variant: the rule chosen without it, and how that rule does on it."""
    rows = []
    for group in sorted({o.group for o in outcomes}):
        chosen = choose(rules, [o for o in outcomes if o.group != group])
        s = summarize(chosen, [o for o in outcomes if o.group == group])
        rows.append({"group": group, "chosen": chosen, "summary": s})
    return rows


def dump_outcomes(outcomes: Sequence[Outcome], path: Path) -> None:
    """Every run x rule as CSV."""
    import csv

    fields = list(Outcome.__dataclass_fields__)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for o in outcomes:
            writer.writerow({f: getattr(o, f) for f in fields})


def as_json(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
