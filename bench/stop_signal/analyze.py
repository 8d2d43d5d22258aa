"""Analyze every checkpoint of a run with alphawatch, exactly as the daemon's worker does:
`alphawatch.checkpoints.load` (with the run folder as the trusted root) and
`alphawatch.analysis.analyze_checkpoint` with default `AnalysisOptions`.

Results are cached as JSON beside the run (`analysis/<checkpoint>.json`), keyed by the
alphawatch version and the options, so a rerun recomputes only what changed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from alphawatch import __version__
from alphawatch.checkpoints import parse_step

# Which files of a run are checkpoints (sidecars and the examples' best_model.pt copy are not).
CHECKPOINT_GLOBS = {
    "mlp": "step_*.pt", "cnn": "step_*.pt", "charlm": "step_*.pt",
    "sac": "rl_model_*_steps.zip",
    "example_sac": "generation_*.pt", "example_overfit": "generation_*.pt",
}


def checkpoint_files(family: str, ckpt_dir: Path) -> list[Path]:
    """The run's checkpoints in training-step order (steps as alphawatch reads names)."""
    files = list(ckpt_dir.glob(CHECKPOINT_GLOBS[family]))
    return sorted(files, key=lambda p: (parse_step(p.name) or 0, p.name))


def _cache_key() -> dict[str, Any]:
    from alphawatch.analysis.options import AnalysisOptions

    options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(AnalysisOptions()).items()}
    return {"alphawatch": __version__, "options": options}


def analyze_file(path: Path, root: Path) -> dict[str, Any]:
    """One CheckpointResult, as the daemon would compute it."""
    from alphawatch.analysis import analyze_checkpoint
    from alphawatch.analysis.options import AnalysisOptions
    from alphawatch.checkpoints import load

    return analyze_checkpoint(load(path, root=root), AnalysisOptions())


def analyze_run(family: str, run_dir: Path) -> tuple[list[dict[str, Any]], float]:
    """CheckpointResults of every checkpoint of the run, in training order (cached), and the
    CPU seconds their analysis took when it was done (so cached reruns still report it)."""
    ckpt_dir, out_dir = run_dir / "checkpoints", run_dir / "analysis"
    out_dir.mkdir(exist_ok=True)
    key = _cache_key()
    results, cpu_s = [], 0.0
    for path in checkpoint_files(family, ckpt_dir):
        cached = out_dir / f"{path.name}.json"
        if cached.exists():
            stored = json.loads(cached.read_text())
            if stored.get("key") == key:
                results.append(stored["result"])
                cpu_s += float(stored.get("cpu_s", 0.0))
                continue
        started = time.process_time()
        result = analyze_file(path, ckpt_dir)
        result["path"] = path.name  # relative: the cache folder may move
        spent = time.process_time() - started
        cached.write_text(json.dumps({"key": key, "cpu_s": spent, "result": result}, allow_nan=False))
        results.append(result)
        cpu_s += spent
    return results, cpu_s
