"""matrices.py: which tensors are layers and how RNN, attention and conv weights are split or pooled."""

from __future__ import annotations

import pytest
import torch
from alphawatch.analysis.matrices import CONV_EVAL_SCALE, network_units
from alphawatch.analysis.spectral import analyze_unit, eigenvalues
from torch import nn


def _units(module: nn.Module) -> dict[str, object]:
    sd = dict(module.state_dict())
    return {u.name: u for u in network_units(sd, {k: f"net.{k}" for k in sd})}


def test_biases_norms_and_counters_are_not_layers() -> None:
    net = nn.Sequential(nn.Linear(32, 64), nn.LayerNorm(64), nn.BatchNorm1d(64), nn.Linear(64, 16))
    assert list(_units(net)) == ["0.weight", "3.weight"]


def test_lstm_weights_split_into_four_gates() -> None:
    units = _units(nn.LSTM(input_size=20, hidden_size=32, num_layers=2, bidirectional=True))
    ih = [n for n in units if n.startswith("weight_ih_l0[")]
    assert ih == ["weight_ih_l0[i]", "weight_ih_l0[f]", "weight_ih_l0[g]", "weight_ih_l0[o]"]
    gate = units["weight_ih_l0[f]"]
    assert gate.kind == "rnn_gate" and gate.shape == (32, 20) and gate.key == "net.weight_ih_l0"
    assert units["weight_hh_l1_reverse[o]"].shape == (32, 32)
    assert units["weight_ih_l1[i]"].shape == (32, 64)  # input of layer 1 is both directions


def test_lstm_gate_is_exactly_the_row_block() -> None:
    lstm = nn.LSTM(8, 16)
    units = _units(lstm)
    assert torch.equal(units["weight_hh_l0[g]"].stack[0], lstm.weight_hh_l0.detach()[32:48])


def test_gru_splits_into_three_gates_and_projected_lstm_uses_hr() -> None:
    gru = _units(nn.GRU(10, 24))
    assert [n for n in gru if n.startswith("weight_hh_l0")] == [
        "weight_hh_l0[r]",
        "weight_hh_l0[z]",
        "weight_hh_l0[n]",
    ]
    proj = _units(nn.LSTM(10, 24, proj_size=8))
    assert proj["weight_hh_l0[i]"].shape == (24, 8)
    assert proj["weight_ih_l0[o]"].shape == (24, 10)
    assert proj["weight_hr_l0"].kind == "linear"


def test_attention_in_proj_splits_into_q_k_v() -> None:
    units = _units(nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64))
    qkv = [n for n in units if "in_proj_weight" in n]
    assert qkv == [
        "self_attn.in_proj_weight[q]",
        "self_attn.in_proj_weight[k]",
        "self_attn.in_proj_weight[v]",
    ]
    assert all(units[n].kind == "attention" and units[n].shape == (32, 32) for n in qkv)
    assert units["self_attn.out_proj.weight"].kind == "linear"


def test_conv1d_pools_kernel_slices_not_kernel_as_dimension() -> None:
    conv = nn.Conv1d(16, 24, kernel_size=5)
    unit = _units(conv)["weight"]
    assert unit.kind == "conv1d" and unit.shape == (24, 16, 5)
    assert unit.stack.shape == (5, 24, 16)
    w = conv.weight.detach().double()
    expected = torch.cat([torch.linalg.svdvals(w[:, :, t]) ** 2 for t in range(5)]) * CONV_EVAL_SCALE
    assert eigenvalues(unit) == pytest.approx(sorted(expected.tolist()), rel=1e-4)
    assert analyze_unit(unit)["num_evals"] == 16 * 5


def test_conv1d_equals_conv2d_with_1xk_kernel() -> None:
    conv1 = nn.Conv1d(16, 24, kernel_size=3)
    conv2 = nn.Conv2d(16, 24, kernel_size=(1, 3))
    conv2.weight.data = conv1.weight.data.unsqueeze(2).clone()
    a, b = analyze_unit(_units(conv1)["weight"]), analyze_unit(_units(conv2)["weight"])
    assert a["alpha"] == pytest.approx(b["alpha"]) and a["log_spectral_norm"] == pytest.approx(
        b["log_spectral_norm"]
    )


def test_embedding_kind_and_unsupported_ranks() -> None:
    units = _units(nn.ModuleDict({"tok_embed": nn.Embedding(100, 16), "c3": nn.Conv3d(2, 4, 3)}))
    assert units["tok_embed.weight"].kind == "embedding"
    assert analyze_unit(units["c3.weight"])["status"] == "skipped"
    pos = list(network_units({"pos_embedding": torch.zeros(1, 10, 8)}, {}))
    assert analyze_unit(pos[0])["reason"] == "3-D tensor that is not a conv weight"


def test_gpt2_style_embedding_names() -> None:
    """GPT-2's token and position tables are `wte` / `wpe`: embeddings, not Linear layers."""
    units = _units(nn.ModuleDict({"wte": nn.Embedding(100, 16), "wpe": nn.Embedding(32, 16),
                                  "lm": nn.Linear(16, 16)}))
    assert units["wte.weight"].kind == "embedding"
    assert units["wpe.weight"].kind == "embedding"
    assert units["lm.weight"].kind == "linear"


def test_a_lazily_read_state_dict_has_only_its_layers_read() -> None:
    """Biases and norm scales are passed over by shape: each read of a lazy tensor opens the
    checkpoint (a transformer has more of them than weights)."""
    from alphawatch.checkpoints.lazy import LazyTensor, TensorMap

    model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    read: list[str] = []

    def reader(name: str, tensor: torch.Tensor) -> LazyTensor:
        def load() -> torch.Tensor:
            read.append(name)
            return tensor.detach().clone()

        return LazyTensor(tuple(tensor.shape), tensor.dtype, load)

    sd = model.state_dict()
    lazy = TensorMap({k: reader(k, v) for k, v in sd.items()})
    assert [u.name for u in network_units(lazy, {})] == ["0.weight", "2.weight"]
    assert read == ["0.weight", "2.weight"]
    assert [u.name for u in network_units(sd, {})] == ["0.weight", "2.weight"]  # a plain dict too
