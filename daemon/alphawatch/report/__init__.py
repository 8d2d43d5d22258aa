"""Reports: one module per output format (text, csv, json, png), like watchdog's observers.

Every module takes the same input, the `analyze --json` document
`{"checkpoints": [...], "failures": [...], "trend": {...}}`, with checkpoints in training-step
order. Nothing here imports torch; matplotlib is imported inside `png` only when plotting.
"""

from __future__ import annotations

from pathlib import Path

from alphawatch.report import csv_report, json_report, text
from alphawatch.results import Document

__all__ = ["write_reports"]


def write_reports(
    document: Document, output_dir: Path, *, threshold: float = 2.0, plots: bool = True
) -> list[Path]:
    """Write every report into `output_dir` (created if needed); return the paths written.

    `network_health_report.txt`, `<network>_details.csv`, `results.json`, and with `plots`
    `<network>_health_metrics.png` (+ `<network>_layers_over_training.png` and
    `alpha_over_training.png` for several checkpoints).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [text.write(document, output_dir, threshold)]
    written += csv_report.write(document, output_dir)
    written.append(json_report.write(document, output_dir / json_report.RESULTS_FILENAME))
    if plots:
        from alphawatch.report import png

        written += png.write(document, output_dir, threshold)
    return written
