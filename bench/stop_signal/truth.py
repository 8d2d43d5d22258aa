"""Ground truth per run, from the sidecars written beside each checkpoint.

Supervised: the step of the best held-out loss (`gt_step`). A classifier *over-fits* when
training on hurts on both counts by its end: held-out loss at least `RISE` (10%) above its
best and held-out accuracy at least `ACC_DROP` (2 points) below its best. Otherwise it is
healthy: its loss may creep up while accuracy holds (over-confidence), which no user would
stop a run for. A language model is judged on held-out loss alone (perplexity is what it is
trained and evaluated on; next-character accuracy barely moves): it over-fits when its
held-out loss ends at least `RISE` above its best.

RL: the *plateau* is the median evaluation return of the last `TAIL` (3) checkpoints -- the
level the run ends at, robust to one noisy evaluation (a median over 5 called a run that
reached 1,000 only at its last two checkpoints "collapsed" at ~170); the learning range is
plateau minus the first checkpoint's return. `gt_step` is the first step
whose return is within `TOLERANCE` (15%) of the range below the plateau. A *collapse* is a
later fall to more than half the range below the plateau on two checkpoints in a row; a
run with one is labelled `collapses`, a run whose range is under 10% of |plateau| (nothing
learned) `no_learning`, otherwise `healthy`.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

RISE, ACC_DROP = 0.10, 0.02
TAIL, TOLERANCE, COLLAPSE = 3, 0.15, 0.5


@dataclass(frozen=True)
class Truth:
    kind: str                          # supervised | rl
    steps: tuple[int, ...]
    metric: tuple[float, ...]          # held-out loss (lower is better) or eval return (higher is better)
    accuracy: tuple[float, ...] | None  # held-out accuracy (supervised)
    gt_step: int | None                # when to stop: best held-out loss / plateau reached
    label: str                         # healthy | overfits | collapses | no_learning
    collapse_step: int | None = None
    plateau: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.kind == "rl"

    @property
    def best(self) -> float:
        return max(self.metric) if self.higher_is_better else min(self.metric)

    def at(self, step: int) -> float:
        return self.metric[self.steps.index(step)]

    def regret(self, step: int) -> float:
        """How much worse the run is at `step` than at its best: relative held-out loss
        (0.25 = 25% above the best) or the share of the return range (best - worst) lost (RL)."""
        value = self.at(step)
        if not self.higher_is_better:
            return value / self.best - 1.0
        span = self.best - min(self.metric)
        return (self.best - value) / span if span > 0 else 0.0

    @property
    def should_stop(self) -> bool:
        """Runs a stop rule ought to halt: over-fitting and collapsing ones."""
        return self.label in ("overfits", "collapses")


def supervised_truth(points: list[dict[str, float]], loss_only: bool = False) -> Truth:
    steps = tuple(int(p["step"]) for p in points)
    loss = tuple(float(p["val_loss"]) for p in points)
    acc = tuple(float(p["val_acc"]) for p in points)
    best_i = loss.index(min(loss))
    overfits = loss[-1] >= loss[best_i] * (1 + RISE) and (loss_only or acc[-1] <= max(acc) - ACC_DROP)
    return Truth("supervised", steps, loss, acc, steps[best_i], "overfits" if overfits else "healthy")


def rl_truth(points: list[dict[str, float]]) -> Truth:
    steps = tuple(int(p["step"]) for p in points)
    ret = tuple(float(p["eval_return"]) for p in points)
    plateau = statistics.median(ret[-TAIL:])
    span = plateau - ret[0]
    if span < 0.1 * abs(plateau):
        return Truth("rl", steps, ret, None, None, "no_learning", plateau=plateau)
    reached = next(i for i, r in enumerate(ret) if r >= plateau - TOLERANCE * span)
    low = plateau - COLLAPSE * span
    collapse = next((steps[i] for i in range(reached + 1, len(ret) - 1)
                     if ret[i] < low and ret[i + 1] < low), None)
    return Truth("rl", steps, ret, None, steps[reached], "collapses" if collapse else "healthy",
                 collapse_step=collapse, plateau=plateau)


def read_truth(kind: str, checkpoints: list[Path], loss_only: bool = False) -> Truth:
    """The ground truth of a run from the sidecar beside each checkpoint (training order);
    `loss_only` for language models."""
    suffix = ".eval.json" if kind == "rl" else ".metrics.json"
    points = [json.loads(p.with_name(p.stem + suffix).read_text()) for p in checkpoints]
    return rl_truth(points) if kind == "rl" else supervised_truth(points, loss_only)
