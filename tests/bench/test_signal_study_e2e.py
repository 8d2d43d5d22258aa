"""`python -m bench.stop_signal --smoke`: the whole study pipeline on a tiny plan (real training,
real SB3 zips, real alphawatch analysis, report and plots), and the cache on a rerun."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.stop_signal import plan
from bench.stop_signal.candidates import candidates
from bench.stop_signal.rules import TrustedLayers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]


def study(cache: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "bench.stop_signal", "--smoke", "--cache", str(cache), "--out", str(out)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=280)


def test_smoke_study_trains_analyzes_scores_and_reports_then_reuses_its_cache(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    first = study(cache, out)
    assert first.returncode == 0, first.stdout + first.stderr
    runs = plan.smoke_plan()
    assert first.stdout.count("trained ") == len(runs)

    for spec in runs:  # checkpoints with their ground truth beside them, each analyzed once
        folder = next(cache.glob(f"{spec.name}-{spec.key}"))
        checkpoints = [p for p in (folder / "checkpoints").iterdir() if p.suffix in (".pt", ".zip")]
        assert len(checkpoints) == spec.params["steps"] // spec.params["save_every"]
        for ckpt in checkpoints:
            assert any(ckpt.with_name(ckpt.stem + s).exists() for s in (".metrics.json", ".eval.json"))
            result = json.loads((folder / "analysis" / f"{ckpt.name}.json").read_text())["result"]
            assert result["networks"] and result["step"] is not None
        assert (out / f"{spec.name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    n_rules = len(candidates(TrustedLayers()))
    with open(out / "outcomes.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(runs) * n_rules
    assert {r["run"] for r in rows} == {s.name for s in runs}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chosen"] in summary["summaries_study"]
    report = (out / "report.md").read_text()
    assert "SMOKE PLAN: not evidence" in report
    assert "| `guide` |" in report and "## Every run × rule" in report
    assert "`actor` → policy" in report and "`critic_target` → target" in report  # SB3 zip networks
    # the daemon's own rules fire where the study's candidates did, run by run
    agreement = [line for line in report.splitlines() if line.startswith("| `share_below`")
                 or line.startswith("| `guide` | `guide`") or line.startswith("| `trusted_min`")]
    assert len(agreement) == 3, agreement
    assert all(f"| {len(runs)}/{len(runs)} |" in line for line in agreement), agreement

    mtimes = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    second = study(cache, out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("cached ") == len(runs) and "trained " not in second.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # nothing retrained or re-analyzed
