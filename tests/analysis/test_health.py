"""health.py: verdict bands, dead-neuron bands and the potential-issue rules."""

from __future__ import annotations

import math
from typing import Any

import pytest
from alphawatch.analysis.health import (
    DEAD_NEURON_STATES,
    HEALTH_STATES,
    alpha_verdict,
    checkpoint_issues,
    dead_neuron_status,
    is_trusted,
    issue_text,
    network_issues,
)


@pytest.mark.parametrize(
    ("alpha", "verdict"),
    [
        (1.2, "overfit"),
        (1.999, "overfit"),
        (2.0, "optimal"),
        (2.49, "optimal"),
        (2.5, "good"),
        (4.99, "good"),
        (5.0, "undertrained"),
        (6.0, "undertrained"),
        (6.01, "severely_undertrained"),
        (None, "unknown"),
        (math.nan, "unknown"),
    ],
)
def test_alpha_bands(alpha: float | None, verdict: str) -> None:
    assert alpha_verdict(alpha) == verdict
    assert verdict in HEALTH_STATES


@pytest.mark.parametrize(
    ("ratio", "status"),
    [
        (0.0, "good"),
        (0.049, "good"),
        (0.05, "moderate"),
        (0.149, "moderate"),
        (0.15, "high"),
        (0.30, "high"),
        (0.31, "critical"),
        (None, "unknown"),
    ],
)
def test_dead_neuron_bands(ratio: float | None, status: str) -> None:
    assert dead_neuron_status(ratio) == status
    assert status in DEAD_NEURON_STATES


def _layer(
    name: str, alpha: float | None = 3.0, lsn: float = 0.3, status: str = "ok", reason: Any = None,
    spikes: int | None = 40, d: float | None = 0.05,
) -> dict:
    return {"name": name, "alpha": alpha, "log_spectral_norm": lsn, "status": status, "reason": reason,
            "shape": [256, 256], "num_pl_spikes": spikes if status == "ok" else None,
            "D": d if status == "ok" else None}


def test_trusted_layers_need_a_long_tail_and_a_close_fit() -> None:
    assert is_trusted(_layer("a", spikes=10, d=0.075))
    assert not is_trusted(_layer("a", spikes=9, d=0.05))  # a tail of 9 eigenvalues
    assert not is_trusted(_layer("a", spikes=40, d=0.08))  # a loose fit
    assert not is_trusted(_layer("a", status="failed", alpha=None))


def test_an_alpha_resting_on_one_layer_says_so() -> None:
    issues = network_issues("actor", _net([_layer("latent_pi.1.weight", spikes=12),
                                           _layer("mu.weight", status="skipped", alpha=None)]))
    single = [i for i in issues if i["code"] == "single_layer"]
    assert len(single) == 1
    assert "alpha rests on a single layer (latent_pi.1.weight, 256x256, 12 tail eigenvalues, trusted)" in \
        single[0]["message"]
    two = network_issues("m", _net([_layer("a"), _layer("b")]))
    assert not [i for i in two if i["code"] == "single_layer"]


def _net(layers: list[dict], **summary: Any) -> dict:
    base = {
        "alpha": 3.0,
        "alpha_std": 0.2,
        "layers_analyzed": len(layers),
        "stable_rank_utilization": 0.5,
        "dead_neurons": {"status": "good", "ratio": 0.0, "count": 0, "total": 512, "method": "activation"},
    }
    base.update(summary)
    return {"summary": base, "layers": layers}


def test_healthy_network_has_no_issues() -> None:
    assert network_issues("actor", _net([_layer("0.weight"), _layer("2.weight")])) == []


def test_each_issue_rule_fires() -> None:
    net = _net(
        [
            _layer("0.weight", lsn=1.5),
            _layer("2.weight", status="failed", alpha=None, reason="NaN/Inf weights"),
            _layer("4.weight", status="failed", alpha=None, reason="power-law fit failed"),
        ],
        alpha=1.7,
        alpha_std=2.1,
        stable_rank_utilization=0.1,
        dead_neurons={"status": "critical", "ratio": 0.4, "count": 205, "total": 512, "method": "weight"},
    )
    issues = network_issues("critic_1", net)
    by_code = {i["code"]: i["message"] for i in issues}
    for code, fragment in (
        ("nan_weights", "NaN/Inf weights in 1 layer(s) (2.weight)"),
        ("overfit", "overfit"),
        ("alpha_variance", "high alpha variance"),
        ("spectral_norm", "spectral norm > 5"),
        ("low_stable_rank", "over-parameterised"),
        ("fit_failed", "fit failed in 1 layer(s) (4.weight)"),
        ("dead_neurons", "critical dead-neuron ratio 40.0%"),
        ("single_layer", "alpha rests on a single layer (0.weight"),
    ):
        assert fragment in by_code[code]
    assert len(issues) == len(by_code) == 8
    assert all(i["network"] == "critic_1" and not i["message"].startswith("critic_1") for i in issues)
    assert issue_text(issues[0]).startswith("critic_1: NaN/Inf weights")


def test_spectral_norm_threshold_is_sigma_max_5() -> None:
    """WW's log_spectral_norm is log10(sigma_max^2); sigma_max 5 is log10(25) ~ 1.398."""
    below = network_issues("a", _net([_layer("x", lsn=math.log10(24.9))]))
    above = network_issues("a", _net([_layer("x", lsn=math.log10(25.1))]))
    assert not any(i["code"] == "spectral_norm" for i in below)
    assert any(i["code"] == "spectral_norm" for i in above)


def test_actor_critic_mismatch_ignores_targets() -> None:
    nets = {
        "actor": _net([_layer("0")], alpha=2.2),
        "critic_1": _net([_layer("0")], alpha=4.0),
        "critic_2": _net([_layer("0")], alpha=4.4),
        "target_critic_1": _net([_layer("0")], alpha=9.0),
    }
    assert not any(i["code"] == "actor_critic_mismatch" for i in checkpoint_issues(nets))
    nets["critic_2"] = _net([_layer("0")], alpha=5.0)  # critic mean 4.5 vs actor 2.2
    mismatch = [i for i in checkpoint_issues(nets) if i["code"] == "actor_critic_mismatch"]
    assert len(mismatch) == 1 and mismatch[0]["network"] is None
    assert "actor vs critic alpha mismatch" in mismatch[0]["message"]
