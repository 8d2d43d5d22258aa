"""The study's candidate rules and ground truth (bench/stop_signal): pure functions, checked on
hand-made CheckpointResults so each behaviour the report relies on has a test."""

from __future__ import annotations

from typing import Any

import pytest

from bench.stop_signal.rules import (
    ThresholdRule,
    TrendRule,
    TrustedLayers,
    first_fire,
    mean_alpha,
    min_alpha,
    network_role,
    share_below,
)
from bench.stop_signal.truth import rl_truth, supervised_truth


def layer(alpha: float | None, spikes: int = 100, d: float = 0.05, status: str = "ok") -> dict[str, Any]:
    return {"name": "w", "alpha": alpha, "num_pl_spikes": spikes, "D": d, "status": status}


def checkpoint(step: int, **networks: list[dict[str, Any]]) -> dict[str, Any]:
    """A CheckpointResult whose networks hold these layers; summary alpha = mean of the ok ones."""
    nets = {}
    for name, layers in networks.items():
        ok = [x["alpha"] for x in layers if x["status"] == "ok" and x["alpha"] is not None]
        nets[name] = {"summary": {"alpha": sum(ok) / len(ok) if ok else None}, "layers": layers}
    return {"path": f"c{step}", "step": step, "networks": nets}


@pytest.mark.parametrize(("name", "role"), [
    ("actor", "policy"), ("critic", "critic"), ("critic_target", "target"),        # SB3 SAC zip
    ("critic_1", "critic"), ("target_critic_2", "target"),                         # examples/train_sac.py
    ("qf1", "critic"), ("q_net", "critic"), ("q_net_target", "target"), ("value_net", "value"),
    ("vf", "value"), ("policy", "policy"), ("pi", "policy"), ("model", "model"), ("encoder", "model"),
])
def test_network_roles_come_from_the_names_alphawatch_gives_networks(name: str, role: str) -> None:
    assert network_role(name) == role


def test_patience_needs_consecutive_checkpoints_below_and_unknown_breaks_the_streak() -> None:
    rule = ThresholdRule(mean_alpha, patience=2)
    results = [checkpoint(1, model=[layer(1.9)]), checkpoint(2, model=[layer(None, status="failed")]),
               checkpoint(3, model=[layer(1.8)]), checkpoint(4, model=[layer(1.7)])]
    assert first_fire(results, rule) == (3, "model")
    assert first_fire(results, ThresholdRule(mean_alpha)) == (0, "model")


def test_roles_keep_critics_and_targets_from_stopping_training() -> None:
    results = [checkpoint(1, actor=[layer(3.0)], critic=[layer(1.5)], critic_target=[layer(1.6)])]
    assert ThresholdRule(mean_alpha)(results) == "critic"  # lowest current value among firing networks
    assert ThresholdRule(mean_alpha, roles=frozenset({"policy", "model"}))(results) is None


def test_min_layer_share_and_trusted_statistics() -> None:
    net = {"layers": [layer(1.5, spikes=9, d=0.2), layer(2.5), layer(3.5, spikes=60, d=0.09),
                      layer(None, status="skipped")]}
    assert min_alpha(net) == 1.5
    assert share_below(2.0)(net) == pytest.approx(1 / 3)
    trusted = TrustedLayers(min_spikes=50, max_d=0.1)
    assert trusted.count(net) == 2
    assert trusted.mean_alpha(net) == pytest.approx(3.0)
    assert trusted.min_alpha(net) == pytest.approx(2.5)
    assert TrustedLayers(min_spikes=200).mean_alpha(net) is None  # none trusted: unknown, never "below"


def test_share_rule_fires_at_or_above_its_threshold() -> None:
    rule = ThresholdRule(share_below(2.0), threshold=0.5, above=True)
    assert rule([checkpoint(1, model=[layer(1.5), layer(2.5)])]) == "model"
    assert rule([checkpoint(1, model=[layer(1.5), layer(2.5), layer(2.6)])]) is None


def test_trend_rule_fires_once_alpha_has_fallen_and_flattened() -> None:
    alphas = [6.0, 4.5, 3.2, 3.1, 3.05, 3.02]
    results = [checkpoint(i, model=[layer(a)]) for i, a in enumerate(alphas)]
    assert first_fire(results, TrendRule(mean_alpha, drop=1.0, flat=0.1, window=3)) == (5, "model")
    assert first_fire(results, TrendRule(mean_alpha, drop=1.0, flat=0.1, window=3, ceiling=3.0)) is None


def test_first_fire_only_ever_shows_a_rule_the_past() -> None:
    seen: list[int] = []

    def rule(results: Any) -> str | None:
        seen.append(len(results))
        return None

    first_fire([checkpoint(i, model=[layer(3.0)]) for i in range(4)], rule)
    assert seen == [1, 2, 3, 4]


def test_supervised_truth_labels_overfitting_only_when_loss_and_accuracy_both_get_worse() -> None:
    def points(losses: list[float], accs: list[float]) -> list[dict[str, float]]:
        return [{"step": 100 * (i + 1), "val_loss": v, "val_acc": a}
                for i, (v, a) in enumerate(zip(losses, accs, strict=True))]

    over = supervised_truth(points([1.0, 0.5, 0.7, 0.9], [0.6, 0.9, 0.85, 0.8]))
    assert (over.gt_step, over.label) == (200, "overfits")
    assert over.regret(400) == pytest.approx(0.8)
    confident = points([1.0, 0.5, 0.6, 0.6], [0.6, 0.9, 0.9, 0.91])
    assert supervised_truth(confident).label == "healthy"  # over-confidence, accuracy holds
    assert supervised_truth(confident, loss_only=True).label == "overfits"  # a language model's perplexity


def test_rl_truth_plateau_collapse_and_regret() -> None:
    returns = [-1200, -800, -350, -160, -150, -140, -150, -145, -155]
    truth = rl_truth([{"step": 1000 * (i + 1), "eval_return": r} for i, r in enumerate(returns)])
    assert truth.plateau == -150  # median of the last 3
    assert (truth.gt_step, truth.label, truth.collapse_step) == (4000, "healthy", None)
    assert truth.regret(1000) == pytest.approx(1.0)
    dips = returns[:6] + [-900, -950, -150, -140, -150, -145, -150]
    collapsing = rl_truth([{"step": 1000 * (i + 1), "eval_return": r} for i, r in enumerate(dips)])
    assert (collapsing.label, collapsing.collapse_step) == ("collapses", 7000)
    flat = rl_truth([{"step": i + 1, "eval_return": -1000.0 + i} for i in range(6)])
    assert flat.label == "no_learning" and flat.gt_step is None
    late = [70, 140, 100, 150, 90, 120, 80, 120, 180, 1000, 1000]  # learns only at the end: no collapse
    late_truth = rl_truth([{"step": i + 1, "eval_return": r} for i, r in enumerate(late)])
    assert (late_truth.plateau, late_truth.gt_step, late_truth.label) == (1000, 10, "healthy")
