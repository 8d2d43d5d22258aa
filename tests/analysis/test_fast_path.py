"""The fast path against plain WeightWatcher analyze(), on seeded layers of many shapes and spectra.

Tall, wide, square, tiny (< 8 eigenvalues: skipped; 8-19: WW's small-N fitter),
rank-deficient with large weights (float32 rounding puts zero eigenvalues above WW's floor),
heavy-tailed, low-rank spikes up to 1e6 over the bulk (float32 loses the bulk: the exact
path must take over), bf16 and fp16 weights, Conv2d stacks. Speed must never cost accuracy:
every fitted layer must agree to 0.01 and every skip/fail decision must be the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from alphawatch.analysis import analyze_network, eigen, spectral
from alphawatch.analysis.matrices import units_for
from alphawatch.analysis.options import AnalysisOptions
from torch import nn


def _default(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(rows, cols, generator=gen) * 2 - 1) / math.sqrt(cols)


def _spiked(rows: int, cols: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    w = _default(rows, cols, gen)
    u, _ = torch.linalg.qr(torch.randn(rows, 3, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(cols, 3, generator=gen))
    return w + math.sqrt(ratio) * torch.linalg.matrix_norm(w, 2) * (u @ v.T)


def _heavy(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    normal = torch.randn(rows, cols, generator=gen)
    chi2 = (torch.randn(rows, cols, 5, generator=gen) ** 2).mean(-1)
    return 0.05 * normal / chi2.sqrt()


def _layers() -> list[tuple[str, nn.Module]]:
    gen = torch.Generator().manual_seed(2024)
    torch.manual_seed(2024)
    out: list[tuple[str, nn.Module]] = []

    def linear(name: str, w: torch.Tensor) -> None:
        layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
        layer.weight.data = w
        out.append((name, layer))

    for rows, cols in [(600, 150), (150, 600), (400, 400), (700, 300)]:
        linear(f"default {rows}x{cols}", _default(rows, cols, gen))
        linear(f"heavy {rows}x{cols}", _heavy(rows, cols, gen))
    for ratio in (1e2, 1e4, 1e6):
        linear(f"spike {ratio:.0e}", _spiked(500, 300, ratio, gen))
    dead = _default(400, 300, gen) * 100
    dead[:200] = 0
    linear("rank-deficient x100", dead)
    linear("tiny 6 evals", _default(6, 64, gen))
    linear("small-N 12 evals", _default(12, 300, gen))
    linear("bf16", _default(512, 256, gen).to(torch.bfloat16))
    linear("fp16", (3 * _default(256, 512, gen)).to(torch.float16))
    conv = nn.Conv2d(32, 64, 3, bias=False)
    conv.weight.data = _heavy(64, 32 * 9, gen).reshape(64, 32, 3, 3)
    out.append(("conv2d heavy", conv))
    out.append(("conv2d default", nn.Conv2d(48, 96, 3, bias=False)))
    return out


@pytest.fixture(scope="module")
def compared() -> tuple[list[str], Any, dict[str, Any]]:
    labels = [label for label, _ in _layers()]
    model = nn.Sequential(*[layer for _, layer in _layers()])
    ww = spectral._weightwatcher()
    with spectral._contained():
        details = ww.WeightWatcher(model=model).analyze()
    result = analyze_network(dict(model.state_dict()), {}, AnalysisOptions(dead_neuron_method="weight"))
    return labels, details, {x["name"]: x for x in result["layers"]}


def test_same_layers_fitted_skipped_and_failed(compared: tuple[list[str], Any, dict[str, Any]]) -> None:
    labels, details, ours = compared
    ww_ok = {f"{row.longname}.weight" for row in details.itertuples() if row.alpha != -1}
    ww_failed = {f"{row.longname}.weight" for row in details.itertuples() if row.alpha == -1}
    assert {n for n, x in ours.items() if x["status"] == "ok"} == ww_ok
    assert {n for n, x in ours.items() if x["status"] == "failed"} == ww_failed
    tiny = f"{labels.index('tiny 6 evals')}.weight"
    assert {n for n, x in ours.items() if x["status"] == "skipped"} == {tiny}


def test_every_alpha_within_001(compared: tuple[list[str], Any, dict[str, Any]]) -> None:
    labels, details, ours = compared
    for row in details.itertuples():
        mine = ours[f"{row.longname}.weight"]
        label = labels[int(row.longname)]
        assert mine["alpha"] == pytest.approx(row.alpha, abs=0.01), label
        assert mine["num_pl_spikes"] == row.num_pl_spikes, label
        assert mine["num_evals"] == row.num_evals, label
    assert len(details) == len(labels) - 1


def test_ill_conditioned_layer_needs_the_exact_path() -> None:
    """A spike 1e6 over the bulk: the float32 spectrum alone gets alpha wrong; the ladder does not."""
    gen = torch.Generator().manual_seed(5)
    w = _spiked(500, 300, 1e6, gen)
    (unit,) = units_for("w.weight", "w.weight", w, {})
    exact = spectral.ww_fit_powerlaw(spectral.eigenvalues(unit, eigen.EXACT))
    fast_only = spectral.fit_powerlaw(spectral.eigenvalues(unit, eigen.FAST))
    assert abs(fast_only["alpha"] - exact["alpha"]) > 0.01  # the guard is needed here...
    assert spectral.analyze_unit(unit)["alpha"] == pytest.approx(exact["alpha"], abs=1e-6)  # ...and works


def test_exact_spectrum_matches_float64_svd() -> None:
    gen = torch.Generator().manual_seed(9)
    w = _heavy(300, 200, gen)
    (unit,) = units_for("w.weight", "w.weight", w, {})
    svd = np.sort(np.linalg.svd(w.double().numpy(), compute_uv=False) ** 2)
    assert np.allclose(spectral.eigenvalues(unit, eigen.EXACT), svd, rtol=1e-10, atol=1e-12 * svd[-1])


def test_spectra_ladder_ends_exact_and_noise_shrinks() -> None:
    gen = torch.Generator().manual_seed(1)
    w = _default(400, 300, gen)
    ladder = list(eigen.spectra(w.unsqueeze(0), 1.0, torch.device("cpu")))
    assert [s.precision for s in ladder] == [eigen.FAST, eigen.EXACT]
    assert ladder[0].noise > ladder[1].noise == 0
    assert np.max(np.abs(ladder[0].evals - ladder[1].evals)) <= ladder[0].noise  # the bound bounds


def test_float32_matmul_precision_of_the_caller_is_overridden_and_restored() -> None:
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        with eigen.ieee_matmul():
            assert torch.get_float32_matmul_precision() == "highest"
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


def test_device_auto_is_cuda_only_with_one_and_cuda_is_refused_without_one() -> None:
    has_cuda = torch.cuda.is_available()
    assert eigen.resolve_device("auto").type == ("cuda" if has_cuda else "cpu")
    assert eigen.resolve_device("cpu").type == "cpu"
    if has_cuda:
        assert eigen.resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ValueError, match="no CUDA device"):
            eigen.resolve_device("cuda")
    with pytest.raises(ValueError, match="not one of"):
        eigen.resolve_device("mps")
