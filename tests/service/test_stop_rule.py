"""The stop rules: the evidence-based default, the guide's rule by name, roles, patience, payload.

(Copies of one checkpoint are dropped before the rules see them: tests/service/test_ledger.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alphawatch.analysis.roles import network_role
from alphawatch.config import StopConfig
from alphawatch.service import stop_rule

NOW = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
CONTRACT_FIELDS = {"stop", "reason", "run", "network", "metric", "value", "threshold", "checkpoint",
                   "step", "recommended_checkpoint", "created_at", "version"}
GUIDE = StopConfig(rule="guide")


def net(*alphas: float | None, spikes: int = 40, d: float = 0.05) -> dict[str, Any]:
    """A NetworkResult whose layers have these alphas (None: a skipped layer); mean as the engine's."""
    layers = [{"name": f"{i}.weight", "shape": [64, 64], "status": "ok" if a is not None else "skipped",
               "alpha": a, "num_pl_spikes": spikes if a is not None else None,
               "D": d if a is not None else None} for i, a in enumerate(alphas)]
    fitted = [a for a in alphas if a is not None]
    return {"summary": {"alpha": sum(fitted) / len(fitted) if fitted else None}, "layers": layers}


def checkpoint(step: int | None, fmt: str = "torch_zip", **networks: dict[str, Any]) -> dict[str, Any]:
    return {"path": f"ckpt/step_{step}.pt", "step": step, "format": fmt, "issues": [], "networks": networks}


def evaluate(results: list[Any], rule: StopConfig, run: str = "r",
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


def first_fire(results: list[Any], rule: StopConfig) -> int | None:
    """The step at which the daemon, judging after every checkpoint, would write the file."""
    for i in range(len(results)):
        if evaluate(results[: i + 1], rule) is not None:
            return results[i]["step"]
    return None


# --------------------------------------------------------------------------- the default


def test_default_is_share_below_on_plain_models_with_patience_2() -> None:
    rule = stop_rule.resolve(StopConfig())
    assert (rule.name, rule.statistic, rule.roles) == ("share_below", "share_below", ("model",))
    assert (rule.threshold, rule.share, rule.patience, rule.min_checkpoints) == (2.0, 0.5, 2, 2)


def test_default_fires_when_half_the_layers_stay_below_2_for_two_checkpoints() -> None:
    results = [checkpoint(100, model=net(3.0, 4.0, 2.5)),
               checkpoint(200, model=net(1.9, 4.0, 2.5)),   # 1 of 3 below: not enough
               checkpoint(300, model=net(1.9, 1.8, 2.5)),   # 2 of 3: once
               checkpoint(400, model=net(1.9, 1.7, 2.6))]   # twice: fires
    assert first_fire(results, StopConfig()) == 400
    payload = evaluate(results, StopConfig(), now=NOW)
    assert payload is not None and CONTRACT_FIELDS <= set(payload)
    assert payload["metric"] == "share_of_layers_below_threshold"
    assert payload["value"] == pytest.approx(2 / 3) and payload["threshold"] == 0.5
    assert payload["rule"] == "share_below" and payload["alpha_threshold"] == 2.0
    assert "67% of the fitted layers of model have alpha below 2" in payload["reason"]
    assert (payload["checkpoint"], payload["step"]) == ("ckpt/step_400.pt", 400)
    # the recommendation follows the network's mean alpha: 3.17, 2.8, 2.07, 2.07 -> the last >= 2
    assert payload["recommended_checkpoint"] == "ckpt/step_400.pt"


def test_a_low_mean_from_one_small_layer_is_not_a_stop() -> None:
    # the guide's mean is pulled under 2 by one very low layer; most layers are healthy
    results = [checkpoint(s, model=net(0.1, 2.1, 2.2, 2.3)) for s in (100, 200, 300)]  # mean 1.68
    assert first_fire(results, GUIDE) == 100
    assert first_fire(results, StopConfig()) is None


@pytest.mark.parametrize("name", ["actor", "critic", "critic_target", "critic_1", "target_critic_2",
                                  "q_net", "q_net_target", "qf1", "value_net", "policy"])
def test_rl_networks_never_halt_training_by_default(name: str) -> None:
    # bench/stop_signal: SAC critics fall below 2 at 2-4k steps of runs that learn at 4-19k
    results = [checkpoint(s, **{name: net(1.5, 1.4)}) for s in (1000, 2000, 3000, 4000)]
    assert network_role(name) != "model"
    assert first_fire(results, StopConfig()) is None
    assert first_fire(results, GUIDE) == 1000  # the guide's rule stops them at once


def test_an_sb3_zip_model_is_its_policy() -> None:
    # SB3 PPO/A2C zips hold actor and value head in one state dict, which alphawatch calls `model`
    results = [checkpoint(s, fmt="sb3_zip", model=net(1.5, 1.4)) for s in (1000, 2000)]
    assert network_role("model", "sb3_zip") == "policy"
    assert first_fire(results, StopConfig()) is None
    assert first_fire(results, StopConfig(roles=("policy",))) == 2000


# --------------------------------------------------------------------------- the other rules


def test_the_guides_rule_by_name() -> None:
    results = [checkpoint(100, actor=net(3.5)), checkpoint(200, actor=net(2.6)),
               checkpoint(300, actor=net(1.8))]
    payload = evaluate(results, GUIDE, run="sac", now=NOW)
    assert payload is not None
    assert (payload["metric"], payload["value"], payload["threshold"]) == ("alpha", 1.8, 2.0)
    assert payload["network"] == "actor" and payload["patience"] == 1
    assert payload["recommended_checkpoint"] == "ckpt/step_200.pt"
    assert payload["created_at"] == "2026-11-26T01:30:00Z" and payload["version"] == 1
    assert "mean alpha of actor is 1.800, below the threshold 2" in payload["reason"]


def test_trusted_min_looks_only_at_well_fitted_layers() -> None:
    def model(low_is_trusted: bool) -> dict[str, Any]:
        found = net(1.5, 3.0, 3.2)
        found["layers"][0].update(num_pl_spikes=40 if low_is_trusted else 6)  # < 10 tail eigenvalues
        return found

    rule = StopConfig(rule="trusted_min")
    noisy = [checkpoint(s, model=model(False)) for s in (100, 200, 300)]
    assert first_fire(noisy, rule) is None
    trusted = [checkpoint(s, model=model(True)) for s in (100, 200, 300)]
    assert first_fire(trusted, rule) == 200
    assert evaluate(trusted, rule)["metric"] == "trusted_alpha_min"  # type: ignore[index]


def test_every_rule_can_be_tuned() -> None:
    results = [checkpoint(s, model=net(1.9, 2.5, 2.6, 2.7)) for s in (100, 200, 300, 400)]
    assert first_fire(results, StopConfig()) is None  # 1 of 4
    assert first_fire(results, StopConfig(share=0.25)) == 200
    assert first_fire(results, StopConfig(share=0.25, patience=3)) == 300
    assert first_fire(results, StopConfig(share=0.25, patience=1, min_checkpoints=3)) == 300
    assert first_fire(results, StopConfig(threshold=3.0)) == 200  # all 4 below 3


# --------------------------------------------------------------------------- shared behaviour


def test_patience_needs_consecutive_checkpoints() -> None:
    rule = StopConfig(rule="guide", patience=3)
    def hist(*values: float) -> list[Any]:
        return [checkpoint(100 * (i + 1), model=net(v)) for i, v in enumerate(values)]
    assert evaluate(hist(3.0, 1.9, 1.8), rule) is None
    assert evaluate(hist(1.9, 2.5, 1.9, 1.8), rule) is None
    payload = evaluate(hist(3.0, 1.9, 1.8, 1.7), rule)
    assert payload is not None and payload["value"] == 1.7
    assert payload["recommended_checkpoint"] == "ckpt/step_100.pt"


def test_unknown_breaks_the_streak() -> None:
    results = [checkpoint(1, model=net(1.5, 1.5)), checkpoint(2, model=net(None, None)),
               checkpoint(3, model=net(1.5, 1.5))]
    assert first_fire(results, StopConfig()) is None
    assert first_fire([*results, checkpoint(4, model=net(1.4, 1.4))], StopConfig()) == 4


def test_any_network_fires_and_the_one_furthest_past_the_line_is_reported() -> None:
    results = [checkpoint(1, actor=net(3.0), critic_1=net(3.0), critic_2=net(2.9)),
               checkpoint(2, actor=net(2.5), critic_1=net(1.9), critic_2=net(1.7))]
    payload = evaluate(results, GUIDE)
    assert payload is not None and payload["network"] == "critic_2" and payload["value"] == 1.7
    assert payload["recommended_checkpoint"] == "ckpt/step_1.pt"


def test_networks_by_name_replace_roles() -> None:
    results = [checkpoint(1, actor=net(3.0), critic_1=net(1.5)),
               checkpoint(2, actor=net(2.5), critic_1=net(1.2))]
    rule = StopConfig(rule="guide", networks=("actor",))
    assert evaluate(results, rule) is None
    later = [*results, checkpoint(3, actor=net(1.95), critic_1=net(1.1))]
    payload = evaluate(later, rule)
    assert payload is not None and payload["network"] == "actor"
    # the critic was below 2 all along; the recommendation follows the actor alone
    assert payload["recommended_checkpoint"] == "ckpt/step_2.pt"
    assert evaluate(later, StopConfig(rule="guide", networks=("policy",))) is None  # not in the files


def test_min_checkpoints_disabled_and_empty() -> None:
    results = [checkpoint(s, model=net(1.5)) for s in (1, 2, 3)]
    assert evaluate(results[:2], StopConfig(rule="guide", min_checkpoints=3)) is None
    assert evaluate(results, StopConfig(rule="guide", min_checkpoints=3)) is not None
    assert evaluate(results, StopConfig(enabled=False)) is None
    assert evaluate([], StopConfig()) is None


def test_no_recommendation_when_never_above_threshold_and_no_step() -> None:
    payload = evaluate([checkpoint(None, model=net(1.5)), checkpoint(None, model=net(1.4))], StopConfig())
    assert payload is not None and payload["recommended_checkpoint"] is None
    assert payload["step"] is None and "(step" not in payload["reason"]
