"""PNG plots: valid images, one per network, the trend plot only for several checkpoints."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from alphawatch.report import png

from tests.report.conftest import checkpoint, document, network

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_per_network_figures_cover_every_checkpoint(tmp_path, multi_doc: dict[str, Any]) -> None:
    written = png.write(multi_doc, tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["actor_health_metrics.png", "actor_layers_over_training.png", "alpha_over_training.png",
                     "critic_1_health_metrics.png", "critic_1_layers_over_training.png"]
    for path in written:
        width, height = _size(path)
        assert width >= 800 and height >= 500


def test_layer_matrix_holds_every_layer_at_every_checkpoint(multi_doc: dict[str, Any]) -> None:
    names, rows = png._layer_matrix(multi_doc["checkpoints"], "actor")
    assert names == ["0.weight", "2.weight", "4.weight"]
    assert rows[0] == [4.5, 2.6, 1.9] and rows[1] == [4.1, 2.2, 1.6]
    assert rows[2] == [None, None, None]  # the skipped output head


def test_networks_of_different_files_each_get_a_figure(tmp_path) -> None:
    """actor.pt and critic.pt given together: each network is drawn from the file that has it."""
    actor = {"path": "run/actor.pt", "step": None, "format": "torch_zip",
             "networks": {"actor": network("actor", [3.0, 3.5])}, "issues": []}
    critic = {"path": "run/critic.pt", "step": None, "format": "torch_zip",
              "networks": {"critic": network("critic", [4.0, 4.5])}, "issues": []}
    trend = {"order": ["run/actor.pt", "run/critic.pt"], "steps": [None, None],
             "alpha": {"actor": [3.25, None], "critic": [None, 4.25]}, "pattern": "insufficient_data",
             "recommended_checkpoint": None, "description": "-"}
    doc = {"checkpoints": [actor, critic], "failures": [], "trend": trend}
    names = sorted(p.name for p in png.write(doc, tmp_path))
    # each network is in one file only: no "over training" figure for it
    assert names == ["actor_health_metrics.png", "alpha_over_training.png", "critic_health_metrics.png"]


def test_single_checkpoint_has_no_trend_plot(tmp_path, single_doc: dict[str, Any]) -> None:
    names = {p.name for p in png.write(single_doc, tmp_path)}
    assert png.TREND_FILENAME not in names and len(names) == 2


def test_network_without_any_fitted_layer_still_plots(tmp_path) -> None:
    path = png.plot_network("actor", network("actor", [None, None]), tmp_path / "a.png")
    _size(path)


def test_many_layers_plot(tmp_path) -> None:
    alphas: list[float | None] = [2.0 + (i % 7) * 0.6 for i in range(60)]
    path = png.plot_network("encoder", network("encoder", alphas), tmp_path / "e.png")
    _size(path)


def test_trend_without_steps_uses_positions(tmp_path) -> None:
    ckpts = [checkpoint(f"c{i}.pt", None, [3.0 - i * 0.5, 3.2], [4.0, 4.2]) for i in range(3)]
    doc = document(ckpts, recommended="c1.pt", pattern="overtraining")
    _size(png.plot_trend(doc["trend"], tmp_path / "t.png"))


def test_importing_reports_does_not_import_matplotlib_or_torch() -> None:
    code = ("import sys, alphawatch.report, alphawatch.report.png, alphawatch.report.text; "
            "bad = [m for m in ('matplotlib', 'torch', 'weightwatcher') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plotting_leaves_pyplot_backend_alone(tmp_path, single_doc: dict[str, Any]) -> None:
    code = (
        "import sys, json, matplotlib; matplotlib.use('svg'); "
        "from alphawatch.report import png; "
        f"png.write(json.load(open({str(tmp_path / 'd.json')!r})), {str(tmp_path)!r}); "
        "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend(); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    from alphawatch.report import json_report

    json_report.write(single_doc, tmp_path / "d.json")
    subprocess.run([sys.executable, "-c", code], check=True)
