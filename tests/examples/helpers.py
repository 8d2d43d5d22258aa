"""Run the example training scripts as real subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run_example(script: str, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python examples/<script> ARGS` in `cwd`, one torch thread, output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
