"""bench/*.py scripts run as `python bench/x.py`, which puts bench/ first on sys.path: a folder or
module there named like a standard-library module (bench/signal once did) shadows it, and torch's
own `import signal` then fails."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_nothing_in_bench_shadows_the_standard_library() -> None:
    names = {p.stem for p in BENCH.iterdir()
             if p.suffix == ".py" or (p.is_dir() and not p.name.startswith("."))}
    assert names, BENCH
    assert names & sys.stdlib_module_names == set()
