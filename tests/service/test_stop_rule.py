"""The stop rule: threshold, patience, min_checkpoints, network selection, payload.

(Copies of one checkpoint are dropped before the rule sees them: tests/service/test_ledger.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alphawatch.config import StopConfig
from alphawatch.service import stop_rule

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


def evaluate(results: list[Any], rule: StopConfig, run: str,
             now: datetime | None = None) -> dict[str, Any] | None:
    """The rule over a whole history, as the daemon runs it: the newest window, the count,
    and the history only when it fires; the signal as the file's JSON object."""
    calls: list[int] = []

    def whole() -> list[Any]:
        calls.append(1)
        return results

    recent = results[-stop_rule.window(rule):] if results else []
    signal = stop_rule.evaluate(recent, len(results), rule, run, whole, now=now)
    assert len(calls) == (0 if signal is None else 1)  # the history is read only when it fires
    return None if signal is None else signal.to_json()


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
