"""engine.py: the result schema of docs/CONTRACTS.md, end to end on SAC-shaped checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from alphawatch.analysis import analyze_checkpoint, analyze_network
from alphawatch.analysis.engine import assert_finite
from alphawatch.analysis.options import AnalysisOptions

from tests.factories import sac_state_dicts, save_sac_checkpoint

from .conftest import make_checkpoint

SUMMARY_KEYS = {
    "alpha",
    "alpha_std",
    "alpha_min",
    "alpha_max",
    "stable_rank_mean",
    "stable_rank_utilization",
    "log_spectral_norm_mean",
    "layers_analyzed",
    "layers_skipped",
    "layers_failed",
    "layers_trusted",
    "alpha_min_trusted",
    "health",
    "dead_neurons",
}
LAYER_KEYS = {
    "name",
    "key",
    "shape",
    "kind",
    "alpha",
    "stable_rank",
    "log_spectral_norm",
    "D",
    "xmin",
    "num_pl_spikes",
    "num_evals",
    "status",
    "reason",
}
DEAD_KEYS = {"method", "count", "total", "ratio", "status", "fallback_reason", "layers"}


@pytest.fixture(scope="module")
def sac_result() -> dict:
    return analyze_checkpoint(make_checkpoint(sac_state_dicts(seed=0), step=1200), AnalysisOptions())


def test_checkpoint_result_schema(sac_result: dict) -> None:
    assert set(sac_result) == {"path", "step", "format", "networks", "issues"}
    assert sac_result["step"] == 1200 and sac_result["format"] == "torch_zip"
    assert list(sac_result["networks"]) == [
        "actor",
        "critic_1",
        "critic_2",
        "target_critic_1",
        "target_critic_2",
    ]
    for net in sac_result["networks"].values():
        assert set(net) == {"summary", "layers"}
        assert set(net["summary"]) == SUMMARY_KEYS
        assert set(net["summary"]["dead_neurons"]) == DEAD_KEYS
        for layer in net["layers"]:
            assert set(layer) == LAYER_KEYS
    json.dumps(sac_result, allow_nan=False)
    assert_finite(sac_result)


def test_sac_layers_and_summary(sac_result: dict) -> None:
    critic = sac_result["networks"]["critic_1"]
    statuses = {x["name"]: x["status"] for x in critic["layers"]}
    assert statuses == {"0.weight": "ok", "2.weight": "ok", "4.weight": "skipped"}  # Q head 256->1
    assert critic["layers"][0]["key"] == "critic_1.0.weight"
    assert critic["layers"][0]["shape"] == [256, 23]
    s = critic["summary"]
    alphas = [x["alpha"] for x in critic["layers"] if x["status"] == "ok"]
    assert s["alpha"] == pytest.approx(sum(alphas) / 2)
    assert (s["alpha_min"], s["alpha_max"]) == (min(alphas), max(alphas))
    assert s["layers_analyzed"] == 2 and s["layers_skipped"] == 1 and s["layers_failed"] == 0
    assert s["dead_neurons"]["total"] == 512
    # target critics are copies: identical numbers
    assert sac_result["networks"]["target_critic_1"]["summary"] == s


def test_nan_weights_fail_the_layer_and_raise_an_issue() -> None:
    nets = sac_state_dicts(seed=1)
    nets["actor"]["2.weight"][5, 5] = float("nan")
    result = analyze_checkpoint(make_checkpoint(nets), AnalysisOptions())
    actor = result["networks"]["actor"]
    bad = next(x for x in actor["layers"] if x["name"] == "2.weight")
    assert (bad["status"], bad["reason"]) == ("failed", "NaN/Inf weights")
    assert actor["summary"]["layers_failed"] == 1
    assert any(i["network"] == "actor" and i["code"] == "nan_weights" for i in result["issues"])
    json.dumps(result, allow_nan=False)


def test_networks_share_one_pool_and_come_out_as_if_analyzed_one_by_one() -> None:
    """Every network's layers go through one pool of threads (no drain between networks);
    each network's layers and summary must still be its own, in its own order."""
    nets = sac_state_dicts(seed=5)
    options = AnalysisOptions(threads=2, dead_neuron_method="weight")
    ckpt = make_checkpoint(nets)
    together = analyze_checkpoint(ckpt, options)["networks"]
    assert list(together) == list(nets)
    for name, tensors in nets.items():
        assert together[name] == analyze_network(tensors, ckpt.keys[name], options, name=name)

def test_networks_option_restricts_and_reports_unknown_names() -> None:
    ckpt = make_checkpoint(sac_state_dicts(seed=2))
    result = analyze_checkpoint(ckpt, AnalysisOptions(networks=("critic_2", "nope")))
    assert list(result["networks"]) == ["critic_2"]
    missing = [i for i in result["issues"] if i["code"] == "missing_networks"]
    assert len(missing) == 1 and missing[0]["network"] is None and "nope" in missing[0]["message"]


def test_threads_option_is_restored() -> None:
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    analyze_network({"w.weight": torch.randn(32, 32)}, {}, AnalysisOptions(threads=target))
    assert torch.get_num_threads() == before


def test_all_failed_network_has_null_summary() -> None:
    result = analyze_network(
        {"0.weight": torch.zeros(16, 16), "1.weight": torch.ones(4, 16)}, {}, AnalysisOptions()
    )
    s = result["summary"]
    assert s["alpha"] is None and s["alpha_std"] is None and s["health"] == "unknown"
    assert (s["layers_analyzed"], s["layers_skipped"], s["layers_failed"]) == (0, 1, 1)


def test_real_torch_save_checkpoint_through_the_loader(tmp_path: Path) -> None:
    """A real SAC checkpoint file, loaded by alphawatch.checkpoints.load, analysed end to end."""
    from alphawatch.checkpoints import load

    path = save_sac_checkpoint(tmp_path / "generation_7.pt", step=700, seed=5)
    result = analyze_checkpoint(load(path), AnalysisOptions())
    assert result["step"] == 700
    assert set(result["networks"]) >= {"actor", "critic_1"}
    assert result["networks"]["actor"]["layers"][0]["key"] == "actor.0.weight"
    json.dumps(result, allow_nan=False)


def test_importing_analysis_does_not_import_torch_or_weightwatcher() -> None:
    code = (
        "import sys, alphawatch.analysis, alphawatch.analysis.health, alphawatch.analysis.trend, "
        "alphawatch.analysis.options\n"
        "assert 'torch' not in sys.modules and 'weightwatcher' not in sys.modules, 'heavy import'\n"
        "assert callable(alphawatch.analysis.analyze_checkpoint)\n"
        "assert 'weightwatcher' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
