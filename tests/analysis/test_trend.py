"""trend.py: ordering, patterns and the recommended checkpoint."""

from __future__ import annotations

from typing import Any

import pytest
from alphawatch.analysis.trend import trend


def _ckpt(path: str, step: int | None, **alphas: float | None) -> dict[str, Any]:
    return {"path": path, "step": step, "networks": {n: {"summary": {"alpha": a}} for n, a in alphas.items()}}


def _series(values: list[float]) -> list[dict[str, Any]]:
    return [_ckpt(f"c{i}.pt", i * 100, actor=v) for i, v in enumerate(values)]


def test_keeps_the_order_it_is_given() -> None:
    # training order is the caller's (alphawatch.ordering): trend never re-sorts, so the stop
    # file, the CLI and the reports agree on what came before what
    res = [
        _ckpt("a.pt", 100, actor=4.0),
        _ckpt("best_model.pt", None, actor=2.1),
        _ckpt("b.pt", 200, actor=3.5),
    ]
    t = trend(res)
    assert t["order"] == ["a.pt", "best_model.pt", "b.pt"]
    assert t["steps"] == [100, None, 200]
    assert t["alpha"]["actor"] == [4.0, 2.1, 3.5]


def test_recommendation_follows_the_training_order_of_step_less_checkpoints() -> None:
    # s100 3.0, s200 2.5, best_model.pt (no step, written before s300) 2.1, s300 1.8: the last
    # healthy checkpoint in the daemon's own order is best_model.pt, not s200
    res = [_ckpt("s100", 100, actor=3.0), _ckpt("s200", 200, actor=2.5),
           _ckpt("best_model.pt", None, actor=2.1), _ckpt("s300", 300, actor=1.8)]
    assert trend(res)["recommended_checkpoint"] == "best_model.pt"


def test_names_the_network_that_decided_the_pattern() -> None:
    res = [_ckpt("a", 1, actor=4.0, critic=3.0), _ckpt("b", 2, actor=3.5, critic=1.9)]
    t = trend(res)
    assert t["pattern"] == "overtraining" and t["network"] == "critic"


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ([4.0], "insufficient_data"),
        ([], "insufficient_data"),
        ([6.5, 5.0, 4.1, 3.2, 2.6], "healthy_progression"),
        ([3.0, 3.2, 2.9, 3.1], "healthy_progression"),
        ([5.0, 3.5, 2.4, 1.8, 1.6], "overtraining"),
        ([8.0, 7.5, 7.9, 7.2], "not_learning"),
        ([4.02, 4.05, 4.0, 4.03], "not_learning"),
        ([3.0, 4.5, 5.8], "not_learning"),
        ([5.0, 3.0, 5.5, 3.1, 5.2], "unstable"),
    ],
)
def test_patterns(values: list[float], pattern: str) -> None:
    t = trend(_series(values))
    assert t["pattern"] == pattern
    assert t["description"]


def test_recommends_closest_above_threshold_before_the_fall() -> None:
    t = trend(_series([5.0, 3.1, 2.3, 2.6, 1.9, 2.1]))
    assert t["recommended_checkpoint"] == "c2.pt"  # 2.3; 2.1 comes after the fall below 2


def test_recommendation_without_fall_is_lowest_above_latest_on_ties() -> None:
    assert trend(_series([6.0, 4.0, 2.5, 2.5, 3.0]))["recommended_checkpoint"] == "c3.pt"


def test_no_recommendation_when_below_from_the_start() -> None:
    assert trend(_series([1.5, 1.4]))["recommended_checkpoint"] is None


def test_minimum_over_networks_and_custom_threshold() -> None:
    res = [
        _ckpt("a", 1, actor=4.0, critic=3.0),
        _ckpt("b", 2, actor=3.5, critic=2.4),
        _ckpt("c", 3, actor=3.0, critic=None),
    ]
    t = trend(res, threshold=2.5)
    assert t["alpha"] == {"actor": [4.0, 3.5, 3.0], "critic": [3.0, 2.4, None]}
    assert t["pattern"] == "overtraining"  # critic 2.4 < 2.5
    assert t["recommended_checkpoint"] == "a"


def test_checkpoints_without_alpha_are_skipped() -> None:
    res = [_ckpt("a", 1, actor=None), _ckpt("b", 2, actor=4.0), _ckpt("c", 3, actor=3.0)]
    t = trend(res)
    assert t["pattern"] == "healthy_progression" and t["recommended_checkpoint"] == "c"
