"""The stop rule: threshold, patience, min_checkpoints, network selection, payload."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alphawatch.config import StopConfig
from alphawatch.service.stop_rule import evaluate

NOW = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
CONTRACT_FIELDS = {"stop", "reason", "run", "network", "metric", "value", "threshold", "checkpoint",
                   "step", "recommended_checkpoint", "created_at", "version"}


def checkpoint(step: int | None, **alphas: float | None) -> dict[str, object]:
    """A CheckpointResult (docs/CONTRACTS.md) with the given per-network mean alphas."""
    return {
        "path": f"ckpt/step_{step}.pt", "step": step, "format": "torch_zip", "issues": [],
        "networks": {name: {"summary": {"alpha": alpha, "layers_analyzed": 3}, "layers": []}
                     for name, alpha in alphas.items()},
    }


def history(*values: float | None, network: str = "actor") -> list[dict[str, object]]:
    return [checkpoint(100 * (i + 1), **{network: v}) for i, v in enumerate(values)]


def test_fires_below_threshold_with_the_contract_fields() -> None:
    results = history(3.5, 2.6, 2.2, 1.8)
    payload = evaluate(results, StopConfig(), "sac", now=NOW)
    assert payload is not None
    assert CONTRACT_FIELDS <= set(payload)
    assert payload["stop"] is True and payload["run"] == "sac" and payload["network"] == "actor"
    assert (payload["metric"], payload["value"], payload["threshold"]) == ("alpha", 1.8, 2.0)
    assert (payload["checkpoint"], payload["step"]) == ("ckpt/step_400.pt", 400)
    assert payload["recommended_checkpoint"] == "ckpt/step_300.pt"  # 2.2: closest to 2 from above
    assert payload["created_at"] == "2026-11-26T01:30:00Z" and payload["version"] == 1
    assert "actor" in payload["reason"] and "1.800" in payload["reason"]


def test_does_not_fire_at_or_above_threshold() -> None:
    assert evaluate(history(3.0, 2.0), StopConfig(), "r") is None  # 2.0 is not below 2.0
    assert evaluate(history(1.9, 2.1), StopConfig(), "r") is None  # only the newest streak counts


def test_patience_needs_consecutive_checkpoints_below() -> None:
    rule = StopConfig(patience=3)
    assert evaluate(history(3.0, 1.9, 1.8), rule, "r") is None
    assert evaluate(history(1.9, 2.5, 1.9, 1.8), rule, "r") is None
    payload = evaluate(history(3.0, 1.9, 1.8, 1.7), rule, "r")
    assert payload is not None and payload["value"] == 1.7
    assert payload["recommended_checkpoint"] == "ckpt/step_100.pt"


def test_unknown_alpha_breaks_the_streak() -> None:
    assert evaluate(history(1.9, None, 1.8), StopConfig(patience=2), "r") is None
    assert evaluate(history(1.9, None), StopConfig(), "r") is None


def test_min_checkpoints() -> None:
    rule = StopConfig(min_checkpoints=3)
    assert evaluate(history(1.5), rule, "r") is None
    assert evaluate(history(1.5, 1.4), rule, "r") is None
    assert evaluate(history(1.5, 1.4, 1.3), rule, "r") is not None


def test_any_network_fires_and_lowest_is_reported() -> None:
    results = [checkpoint(1, actor=3.0, critic_1=3.0, critic_2=2.9),
               checkpoint(2, actor=2.5, critic_1=1.9, critic_2=1.7)]
    payload = evaluate(results, StopConfig(), "r")
    assert payload is not None and payload["network"] == "critic_2" and payload["value"] == 1.7
    assert payload["recommended_checkpoint"] == "ckpt/step_1.pt"


def test_selected_networks_only() -> None:
    results = [checkpoint(1, actor=3.0, critic_1=1.5), checkpoint(2, actor=2.5, critic_1=1.2)]
    assert evaluate(results, StopConfig(networks=("actor",)), "r") is None
    assert evaluate(results, StopConfig(), "r")["network"] == "critic_1"  # type: ignore[index]
    later = [*results, checkpoint(3, actor=1.95, critic_1=1.1)]
    payload = evaluate(later, StopConfig(networks=("actor",)), "r")
    assert payload is not None and payload["network"] == "actor"
    # the critic was below 2 all along; the recommendation follows the actor alone
    assert payload["recommended_checkpoint"] == "ckpt/step_2.pt"


def test_selected_network_missing_never_fires() -> None:
    assert evaluate(history(1.0, 1.0), StopConfig(networks=("policy",)), "r") is None


def test_disabled_and_empty() -> None:
    assert evaluate(history(1.0), StopConfig(enabled=False), "r") is None
    assert evaluate([], StopConfig(), "r") is None


def test_no_recommendation_when_never_above_threshold() -> None:
    payload = evaluate(history(1.5, 1.4), StopConfig(), "r")
    assert payload is not None and payload["recommended_checkpoint"] is None


@pytest.mark.parametrize("threshold", [1.5, 3.0])
def test_threshold_is_configurable(threshold: float) -> None:
    results = history(4.0, 2.0)
    fired = evaluate(results, StopConfig(threshold=threshold), "r")
    assert (fired is not None) == (2.0 < threshold)


def test_step_none_is_allowed() -> None:
    results = [checkpoint(None, model=1.2)]
    payload = evaluate(results, StopConfig(), "r")
    assert payload is not None and payload["step"] is None and "step" not in payload["reason"]


def test_a_copy_of_one_checkpoint_is_not_a_second_checkpoint() -> None:
    # examples/train_sac.py saves generation_<n>.pt and, when the return improved, the same
    # state again as best_model.pt: same step, same weights, so the same alphas. One
    # over-fitted checkpoint and its copy are not "2 consecutive checkpoints".
    results = history(3.0, 2.5, 1.9)
    best = {**checkpoint(300, actor=1.9), "path": "ckpt/best_model.pt"}
    rule = StopConfig(patience=2)
    assert evaluate([*results, best], rule, "r") is None
    assert evaluate([*results, best], StopConfig(min_checkpoints=4), "r") is None
    payload = evaluate([*results, best, checkpoint(400, actor=1.8)], rule, "r")
    assert payload is not None and payload["checkpoints_analyzed"] == 4
    # the same step with different weights (another trial in a recursive run) still counts
    other = {**checkpoint(300, actor=1.95), "path": "ckpt/trial_b/step_300.pt"}
    assert evaluate([*results, other], rule, "r") is not None
