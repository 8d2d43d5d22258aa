"""Proof: our per-layer numbers agree with plain `WeightWatcher(model).analyze()`.

WeightWatcher runs here unmodified on an nn.Module (its own layer iteration, float64 SciPy
SVD, default analyze() arguments); we run `analyze_network` on the module's state dict.
Spectra are varied on purpose: default init (MP-like bulk, alpha often 5-15), Student-t
entries (heavy tails, alpha ~2-4) and low-rank signal plus noise (a few big spikes).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from alphawatch.analysis import analyze_network, spectral
from alphawatch.analysis.options import AnalysisOptions
from torch import nn


def _heavy(shape: tuple[int, ...], gen: torch.Generator, df: float = 2.5) -> torch.Tensor:
    normal = torch.randn(shape, generator=gen)
    chi2 = (torch.randn((*shape, int(df * 2)), generator=gen) ** 2).mean(-1)
    return 0.05 * normal / chi2.sqrt()


def _low_rank(rows: int, cols: int, gen: torch.Generator, rank: int = 6) -> torch.Tensor:
    u, v = torch.randn(rows, rank, generator=gen), torch.randn(rank, cols, generator=gen)
    return (u @ v) / math.sqrt(rows * cols) * 3 + 0.02 * torch.randn(rows, cols, generator=gen)


def golden_model() -> nn.Sequential:
    """Layers of varied shapes and spectra, seeded (the module is never run forward)."""
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(99)
    shapes = [(17, 256), (256, 256), (128, 512), (1000, 64), (256, 12), (64, 64), (300, 200)]
    layers: list[nn.Module] = [nn.Linear(i, o) for i, o in shapes]  # default init
    for i, o in shapes:
        heavy = nn.Linear(i, o)
        heavy.weight.data = _heavy((o, i), gen)
        layers.append(heavy)
    for i, o in [(256, 256), (128, 512), (400, 100)]:
        low = nn.Linear(i, o)
        low.weight.data = _low_rank(o, i, gen)
        layers.append(low)
    layers += [nn.Conv2d(16, 32, 3), nn.Conv2d(3, 64, 5), nn.Embedding(500, 48)]
    conv = nn.Conv2d(32, 64, 3)
    conv.weight.data = _heavy((64, 32, 3, 3), gen)
    layers.append(conv)
    layers.append(nn.Linear(256, 6))  # 6 eigenvalues: WW drops it, we report it skipped
    return nn.Sequential(*layers)


def weightwatcher_details(model: nn.Module) -> Any:
    """Plain WeightWatcher analyze(), output contained so it cannot pollute the test process."""
    ww = spectral._weightwatcher()
    with spectral._contained():
        return ww.WeightWatcher(model=model).analyze()


@pytest.fixture(scope="module")
def compared() -> tuple[Any, dict[str, Any]]:
    model = golden_model()
    details = weightwatcher_details(model)
    sd = {k: v for k, v in model.state_dict().items()}
    ours = analyze_network(sd, {}, AnalysisOptions(dead_neuron_method="weight"))
    return details, {x["name"]: x for x in ours["layers"]}


def test_same_layers_analyzed(compared: tuple[Any, dict[str, Any]]) -> None:
    details, ours = compared
    ww_names = {f"{name}.weight" for name in details["longname"]}
    ok = {n for n, x in ours.items() if x["status"] == "ok"}
    assert ww_names == ok
    skipped = {n for n, x in ours.items() if x["status"] == "skipped"}
    assert skipped == {f"{len(ours) - 1}.weight"}
    assert "min_evals" in ours[f"{len(ours) - 1}.weight"]["reason"]


def test_alpha_within_001_on_95_percent(compared: tuple[Any, dict[str, Any]]) -> None:
    details, ours = compared
    deltas = [abs(row.alpha - ours[f"{row.longname}.weight"]["alpha"]) for row in details.itertuples()]
    close = sum(d <= 0.01 for d in deltas)
    assert len(deltas) >= 18
    assert close / len(deltas) >= 0.95, sorted(deltas)[-3:]


def test_norm_metrics_and_fit_details_match(compared: tuple[Any, dict[str, Any]]) -> None:
    details, ours = compared
    for row in details.itertuples():
        mine = ours[f"{row.longname}.weight"]
        assert mine["num_evals"] == row.num_evals
        assert mine["stable_rank"] == pytest.approx(row.stable_rank, rel=1e-4)
        assert mine["log_spectral_norm"] == pytest.approx(row.log_spectral_norm, abs=1e-4)
        if abs(mine["alpha"] - row.alpha) <= 0.01:  # same xmin chosen
            assert mine["xmin"] == pytest.approx(row.xmin, rel=1e-3)
            assert mine["D"] == pytest.approx(row.D, abs=1e-3)
            assert mine["num_pl_spikes"] == row.num_pl_spikes


def test_spread_of_spectra_is_real(compared: tuple[Any, dict[str, Any]]) -> None:
    """The golden set must cover heavy tails and bulk-like spectra, not one regime."""
    _, ours = compared
    alphas = [x["alpha"] for x in ours.values() if x["status"] == "ok"]
    assert min(alphas) < 3.5 and max(alphas) > 6


def test_failed_fit_is_excluded_from_mean() -> None:
    """WW gives alpha -1 for a near-zero matrix and averages it in; we mark it failed and don't."""
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(128, 128), nn.Linear(64, 256), nn.Linear(96, 96))
    model[2].weight.data = model[2].weight.data * 1e-5  # all eigenvalues under EVALS_THRESH
    details = weightwatcher_details(model)
    assert -1 in details["alpha"].tolist()
    ww_mean = details["alpha"].mean()

    result = analyze_network(dict(model.state_dict()), {}, AnalysisOptions())
    layers = {x["name"]: x for x in result["layers"]}
    assert layers["2.weight"]["status"] == "failed"
    assert layers["2.weight"]["alpha"] is None
    good = [layers[n]["alpha"] for n in ("0.weight", "1.weight")]
    assert result["summary"]["alpha"] == pytest.approx(sum(good) / 2)
    assert result["summary"]["layers_failed"] == 1
    assert result["summary"]["layers_analyzed"] == 2
    assert result["summary"]["alpha"] > ww_mean + 1  # WW's mean is dragged down by the -1
