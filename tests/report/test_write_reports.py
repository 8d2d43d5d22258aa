"""write_reports: every file the --output-dir promises."""

from __future__ import annotations

from typing import Any

from alphawatch.report import write_reports


def test_writes_every_report(tmp_path, multi_doc: dict[str, Any]) -> None:
    out = tmp_path / "new" / "folder"
    written = write_reports(multi_doc, out)
    assert {p.name for p in written} == {
        "network_health_report.txt", "results.json", "actor_details.csv", "critic_1_details.csv",
        "actor_health_metrics.png", "critic_1_health_metrics.png", "alpha_over_training.png",
        "actor_layers_over_training.png", "critic_1_layers_over_training.png",
    }
    assert all(p.parent == out and p.stat().st_size > 0 for p in written)


def test_plots_can_be_left_out(tmp_path, single_doc: dict[str, Any]) -> None:
    written = write_reports(single_doc, tmp_path, plots=False)
    assert not [p for p in written if p.suffix == ".png"]
    assert not list(tmp_path.glob("*.png"))
