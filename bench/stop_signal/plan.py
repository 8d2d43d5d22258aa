"""What the study trains: one `RunSpec` per training run, and the full and smoke plans.

A run's cache key is a hash of its spec plus `CODE_VERSION`, so changing a hyperparameter
(or bumping the version after changing a trainer) retrains exactly the runs it affects,
while a rerun with nothing changed only re-evaluates the rules.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Bump when a trainer changes in a way that changes its checkpoints.
CODE_VERSION = 1

SUPERVISED = ("mlp", "cnn", "charlm")
RL = ("sac",)
EXAMPLES = ("example_sac", "example_overfit")


@dataclass(frozen=True)
class RunSpec:
    """One training run. `params` are the family's hyperparameters (see the trainers)."""

    family: str                      # mlp | cnn | charlm | sac | example_sac | example_overfit
    variant: str                     # labels (true/noisy/random), env id, or "default"
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    cost: float = 1.0                # rough relative CPU cost, to schedule long runs first

    @property
    def name(self) -> str:
        return f"{self.family}-{self.variant}-s{self.seed}"

    @property
    def key(self) -> str:
        body = {"spec": {k: v for k, v in asdict(self).items() if k != "cost"}, "code": CODE_VERSION}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return digest[:12]

    @property
    def kind(self) -> str:
        return "rl" if self.family in RL or self.family == "example_sac" else "supervised"

    @property
    def language_model(self) -> bool:
        """Judged on held-out loss alone (see truth.py)."""
        return self.family == "charlm"


def _mlp(variant: str, seed: int, smoke: bool) -> RunSpec:
    noise = {"true": 0.0, "noisy": 0.3, "random": 1.0}[variant]
    params = {"n_train": 1000 if variant != "random" else 500, "label_noise": noise,
              "hidden": 512, "lr": 1e-3, "batch": 32, "steps": 4000, "save_every": 200}
    if smoke:
        params.update(hidden=64, steps=60, save_every=20)
    return RunSpec("mlp", variant, seed, params, cost=1.0)


def _cnn(variant: str, seed: int, smoke: bool) -> RunSpec:
    noise = {"true": 0.0, "noisy": 0.3}[variant]
    params = {"n_train": 500, "label_noise": noise, "channels": 32, "lr": 1e-3, "batch": 32,
              "steps": 2000, "save_every": 100}
    if smoke:
        params.update(channels=8, steps=40, save_every=20)
    return RunSpec("cnn", variant, seed, params, cost=2.0)


def _charlm(seed: int, smoke: bool) -> RunSpec:
    params = {"train_chars": 40_000, "val_chars": 20_000, "d_model": 128, "layers": 2, "heads": 4,
              "context": 64, "lr": 1e-3, "batch": 32, "steps": 1500, "save_every": 75}
    if smoke:
        params.update(d_model=32, train_chars=4000, val_chars=2000, context=16, steps=40, save_every=20)
    return RunSpec("charlm", "overtrained", seed, params, cost=8.0)


def _sac(env: str, seed: int, smoke: bool) -> RunSpec:
    params = {"steps": 20_000, "save_every": 1000, "eval_episodes": 5}
    if smoke:
        params.update(steps=300, save_every=100, eval_episodes=1)
    return RunSpec("sac", env, seed, params, cost=40.0)


def full_plan() -> list[RunSpec]:
    """The study as committed: every family, 3 seeds each."""
    seeds = (0, 1, 2)
    runs = [_mlp(v, s, False) for v in ("true", "noisy", "random") for s in seeds]
    runs += [_cnn(v, s, False) for v in ("true", "noisy") for s in seeds]
    runs += [_charlm(s, False) for s in seeds]
    runs += [_sac(env, s, False) for env in ("Pendulum-v1", "InvertedPendulum-v5") for s in seeds]
    runs += [RunSpec("example_sac", "default", 0, {"max_steps": 20_000}, cost=25.0),
             RunSpec("example_overfit", "default", 0, {"max_steps": 10_000}, cost=6.0)]
    return runs


def smoke_plan() -> list[RunSpec]:
    """A tiny plan that runs every code path in well under a minute (CI)."""
    return [_mlp("noisy", 0, True), _cnn("true", 0, True), _charlm(0, True),
            _sac("Pendulum-v1", 0, True)]


def dev_seeds() -> tuple[int, ...]:
    """Seeds used to choose thresholds; seed 2 of every family is held out to test them."""
    return (0, 1)
