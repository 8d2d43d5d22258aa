"""Dead neurons on SAC-shaped networks with units killed on purpose: counts must match exactly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from alphawatch.analysis.dead_neurons import dead_neurons, linear_chain
from alphawatch.analysis.options import AnalysisOptions

from tests.factories import sac_state_dicts

KILL_L0 = [3, 17, 40, 41, 200]  # 5 units of the first hidden layer
KILL_L2 = [0, 99, 255]  # 3 units of the second


def _killed(sd: dict[str, torch.Tensor], layer: str, units: list[int], *, zero_weights: bool) -> None:
    """Zero incoming weights and set a negative bias (dead for every activation), or only a huge bias."""
    if zero_weights:
        sd[f"{layer}.weight"][units] = 0.0
        sd[f"{layer}.bias"][units] = -1.0
    else:
        sd[f"{layer}.bias"][units] = -1000.0


@pytest.fixture
def actor() -> dict[str, torch.Tensor]:
    sd = sac_state_dicts(seed=3)["actor"]
    _killed(sd, "0", KILL_L0, zero_weights=True)
    _killed(sd, "2", KILL_L2, zero_weights=True)
    return sd


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "gelu", "elu", "silu", "sigmoid"])
@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_activation_counts_exactly(actor: dict[str, torch.Tensor], activation: str, dist: str) -> None:
    opts = AnalysisOptions(activation=activation, input_distribution=dist, dead_neuron_samples=500)
    dn = dead_neurons(actor, "actor", opts)
    assert dn["method"] == "activation" and dn["fallback_reason"] is None
    assert [(x["name"], x["count"], x["total"]) for x in dn["layers"]] == [("0", 5, 256), ("2", 3, 256)]
    assert dn["count"] == 8 and dn["total"] == 512 and dn["ratio"] == pytest.approx(8 / 512)
    assert dn["status"] == "good"


def test_weight_method_counts_exactly(actor: dict[str, torch.Tensor]) -> None:
    dn = dead_neurons(actor, "actor", AnalysisOptions(dead_neuron_method="weight"))
    assert dn["method"] == "weight"
    assert [(x["name"], x["count"]) for x in dn["layers"]] == [("0", 5), ("2", 3)]


def test_bias_killed_relu_units_seen_by_activations_only() -> None:
    """Nonzero weights but bias -1000: ReLU never fires. Only the activation method can tell."""
    sd = sac_state_dicts(seed=0)["critic_1"]
    _killed(sd, "0", list(range(1, 21)), zero_weights=False)
    _killed(sd, "2", list(range(100, 160)), zero_weights=False)
    by_act = dead_neurons(sd, "critic_1", AnalysisOptions(activation="relu"))
    by_weight = dead_neurons(sd, "critic_1", AnalysisOptions(dead_neuron_method="weight"))
    assert [x["count"] for x in by_act["layers"]] == [20, 60]
    assert by_act["count"] == 80 and by_act["status"] == "high"  # 80/512 = 15.6%
    assert by_weight["count"] == 0 and by_weight["status"] == "good"


def test_naturally_dead_relu_unit_matches_a_real_module_forward() -> None:
    """Seed 4's critic_1 has one ReLU unit in layer 2 that never fires at init; torch agrees."""
    from tests.factories import sac_networks

    net = sac_networks(seed=4)["critic_1"]
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    dn = dead_neurons(sd, "critic_1", AnalysisOptions(activation="leaky_relu", dead_neuron_samples=2000))
    with torch.no_grad():
        x = torch.randn(2000, 23, generator=torch.Generator().manual_seed(0))
        h2 = net[:4](x)  # Linear, LeakyReLU, Linear, LeakyReLU
    expected = int((h2.var(dim=0, unbiased=False) < 1e-6).sum())
    relu = dead_neurons(sd, "critic_1", AnalysisOptions(activation="relu"))
    assert [x["count"] for x in relu["layers"]] == [0, 1]
    assert [x["count"] for x in dn["layers"]] == [0, expected]


def test_healthy_default_init_has_no_dead_units() -> None:
    for name, sd in sac_state_dicts(seed=0).items():
        assert dead_neurons(sd, name, AnalysisOptions())["count"] == 0


def test_output_layer_is_not_counted() -> None:
    sd = sac_state_dicts(seed=1)["critic_2"]
    sd["4.weight"].zero_()  # the Q head: a dead output would be bad, but it is not a hidden unit
    dn = dead_neurons(sd, "critic_2", AnalysisOptions())
    assert [x["name"] for x in dn["layers"]] == ["0", "2"] and dn["count"] == 0


def test_chain_with_parallel_heads_like_sb3_sac_actor() -> None:
    gen = torch.Generator().manual_seed(0)
    sd = {
        "latent_pi.0.weight": torch.randn(64, 11, generator=gen) * 0.3,
        "latent_pi.0.bias": torch.zeros(64),
        "latent_pi.2.weight": torch.randn(64, 64, generator=gen) * 0.1,
        "latent_pi.2.bias": torch.zeros(64),
        "mu.weight": torch.randn(3, 64, generator=gen),
        "mu.bias": torch.zeros(3),
        "log_std.weight": torch.randn(3, 64, generator=gen),
        "log_std.bias": torch.zeros(3),
    }
    assert linear_chain(sd) == (["latent_pi.0", "latent_pi.2"], ["mu", "log_std"])
    sd["latent_pi.2.weight"][:7] = 0.0
    sd["latent_pi.2.bias"][:7] = -1.0
    assert dead_neurons(sd, "actor", AnalysisOptions())["count"] == 7


def test_not_a_chain_falls_back_to_weights_with_reason() -> None:
    sd = {
        "conv.weight": torch.randn(8, 3, 3, 3),
        "conv.bias": torch.zeros(8),
        "fc.weight": torch.randn(10, 200),
    }
    sd["fc.weight"][:2] = 0.0
    dn = dead_neurons(sd, "model", AnalysisOptions())
    assert dn["method"] == "weight"
    assert "not a chain of Linear layers" in dn["fallback_reason"]
    assert dn["count"] == 2 and dn["total"] == 18


def test_twin_q_critic_like_sb3_sac_is_rebuilt_per_chain() -> None:
    """SB3's SAC critic is one network of two parallel Q chains (qf0.*, qf1.*): both rebuilt."""
    sd: dict[str, torch.Tensor] = {}
    for q, seed in (("qf0", 5), ("qf1", 6)):
        net = sac_state_dicts(seed=seed)["critic_1"]  # 23 -> 256 -> 256 -> 1
        sd.update({f"{q}.{k}": v for k, v in net.items()})
    for layer, units in {"qf0.0": [1, 2], "qf0.2": [7], "qf1.2": [10, 11, 12]}.items():
        _killed(sd, layer, units, zero_weights=False)
    dn = dead_neurons(sd, "critic", AnalysisOptions())
    assert dn["method"] == "activation" and dn["fallback_reason"] is None
    assert [(x["name"], x["count"]) for x in dn["layers"]] == [
        ("qf0.0", 2), ("qf0.2", 1), ("qf1.0", 0), ("qf1.2", 3)
    ]
    assert dn["total"] == 4 * 256


def test_weight_method_does_not_count_embedding_rows() -> None:
    """A padding token's embedding row is zero by design; it is not a dead neuron."""
    gen = torch.Generator().manual_seed(0)
    table = torch.nn.Embedding(100, 32, padding_idx=0)
    sd = {
        "embeddings.word_embeddings.weight": table.weight.detach().clone(),
        "encoder.attn.weight": torch.randn(96, 32, generator=gen),
        "encoder.out.weight": torch.randn(32, 32, generator=gen),
        "head.weight": torch.randn(4, 64, generator=gen),
    }
    assert bool((sd["embeddings.word_embeddings.weight"][0] == 0).all())
    dn = dead_neurons(sd, "model", AnalysisOptions())
    assert dn["method"] == "weight"
    assert dn["count"] == 0 and dn["total"] == 96 + 32 + 4
    assert "embeddings.word_embeddings" not in [x["name"] for x in dn["layers"]]


def test_one_sample_is_not_a_variance(actor: dict[str, torch.Tensor]) -> None:
    """A config with samples: 1 must not call every unit dead; the weight method is used instead."""
    dn = dead_neurons(actor, "actor", AnalysisOptions(dead_neuron_samples=1))
    assert dn["method"] == "weight" and "at least 2 samples" in dn["fallback_reason"]
    assert dn["count"] == len(KILL_L0) + len(KILL_L2)


def test_nan_weights_give_unknown_not_nan() -> None:
    sd = sac_state_dicts(seed=2)["actor"]
    sd["0.weight"][0, 0] = float("nan")
    dn = dead_neurons(sd, "actor", AnalysisOptions())
    assert dn["count"] is None and dn["ratio"] is None and dn["status"] == "unknown"


FACTORY = """
import torch
from torch import nn

def build(name):
    hidden = 256
    obs = 17 if name == "actor" else 23
    out = 12 if name == "actor" else 1
    return nn.Sequential(nn.Linear(obs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out), nn.Tanh())

def broken(name):
    raise RuntimeError("no such network")
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_models.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_models"


def test_model_factory_hooks_activation_modules(actor: dict[str, torch.Tensor], factory_module: str) -> None:
    dn = dead_neurons(actor, "actor", AnalysisOptions(model_factory=f"{factory_module}:build"))
    assert dn["method"] == "activation" and dn["fallback_reason"] is None
    assert [(x["name"], x["count"], x["total"]) for x in dn["layers"]] == [("1", 5, 256), ("3", 3, 256)]


def test_failing_factory_is_stated_and_chain_rebuild_used(
    actor: dict[str, torch.Tensor], factory_module: str
) -> None:
    dn = dead_neurons(actor, "actor", AnalysisOptions(model_factory=f"{factory_module}:broken"))
    assert dn["method"] == "activation" and dn["count"] == 8
    assert "no such network" in dn["fallback_reason"]
