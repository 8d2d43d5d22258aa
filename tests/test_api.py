"""The Python API: `from alphawatch import NetworkHealthAnalyzer`, as the original guide shows it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alphawatch.errors import CheckpointError

from tests.factories import SAC_NETWORK_NAMES, save_sac_checkpoint


def test_importing_alphawatch_stays_cheap() -> None:
    code = (
        "import sys, alphawatch, alphawatch.api, alphawatch.cli, alphawatch.commands.analyze, "
        "alphawatch.report; "
        "assert alphawatch.NetworkHealthAnalyzer.__module__ == 'alphawatch.api'; "
        "heavy = [m for m in ('torch', 'weightwatcher', 'matplotlib', 'safetensors') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sac_checkpoint(tmp_path_factory.mktemp("api") / "generation_500.pt", step=500, hidden=64)


@pytest.fixture(scope="module")
def analyzer(ckpt: Path) -> Any:
    from alphawatch import NetworkHealthAnalyzer
    from alphawatch.analysis.options import AnalysisOptions

    return NetworkHealthAnalyzer(ckpt, AnalysisOptions(dead_neuron_samples=200))


def test_guide_usage(analyzer: Any) -> None:
    assert analyzer.load_checkpoint() == list(SAC_NETWORK_NAMES)
    r = analyzer.analyze_all_networks(["actor"])
    assert list(r) == ["actor"]
    alpha = r["actor"]["summary"]["alpha"]
    ok = [x["alpha"] for x in r["actor"]["layers"] if x["status"] == "ok"]
    assert ok and alpha == pytest.approx(sum(ok) / len(ok))
    assert list(analyzer.results) == ["actor"]


def test_more_networks_accumulate_and_unknown_names_fail(analyzer: Any) -> None:
    analyzer.load_checkpoint()
    critic = analyzer.analyze_network("critic_1")
    assert critic["layers"] and critic["summary"]["dead_neurons"]["method"] == "activation"
    analyzer.analyze_network("actor")
    assert set(analyzer.results) == {"actor", "critic_1"}
    with pytest.raises(KeyError, match="actr"):
        analyzer.analyze_all_networks(["actr"])


def test_reports_from_the_api(analyzer: Any, tmp_path: Path) -> None:
    analyzer.load_checkpoint()
    analyzer.analyze_all_networks()
    result = analyzer.checkpoint_result()
    assert result["step"] == 500 and set(result["networks"]) == set(SAC_NETWORK_NAMES)
    text = analyzer.report_text()
    assert all(f"NETWORK: {n}" in text for n in SAC_NETWORK_NAMES)
    written = analyzer.generate_report(tmp_path, plots=False)
    assert (tmp_path / "network_health_report.txt").read_text(encoding="utf-8") == text
    assert {p.name for p in written} >= {"results.json", "actor_details.csv"}


def test_analysis_loads_on_first_use(ckpt: Path) -> None:
    from alphawatch import NetworkHealthAnalyzer

    a = NetworkHealthAnalyzer(str(ckpt))
    assert a.networks == list(SAC_NETWORK_NAMES)


def test_refused_file_raises_checkpoint_error(tmp_path: Path) -> None:
    from alphawatch import NetworkHealthAnalyzer

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        NetworkHealthAnalyzer(empty).load_checkpoint()
    assert info.value.reason == "empty"


def test_empty_selection_analyzes_nothing(ckpt: Path) -> None:
    from alphawatch import NetworkHealthAnalyzer

    a = NetworkHealthAnalyzer(ckpt)
    assert a.analyze_all_networks([]) == {}
    assert a.results == {}  # not every network analyzed behind the caller's back
