"""Ledgers filled without analyzing anything: results of the real schema (alphawatch.results)
with chosen alphas, stored through the ledger's own SQL so its triggers keep the totals."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alphawatch.results import fingerprint
from alphawatch.service.ledger import Ledger


def layer(name: str, alpha: float) -> dict[str, Any]:
    return {"name": name, "key": name, "shape": [256, 256], "kind": "linear", "alpha": alpha,
            "stable_rank": 10.0 + alpha, "log_spectral_norm": 0.5, "D": 0.05, "xmin": 1.0,
            "num_pl_spikes": 40, "num_evals": 256, "status": "ok", "reason": None}


def network(alpha: float, layers: int) -> dict[str, Any]:
    alphas = [alpha + (i % 7) / 10 for i in range(layers)]
    return {"summary": {"alpha": sum(alphas) / layers, "alpha_std": 0.2, "alpha_min": min(alphas),
                        "alpha_max": max(alphas), "stable_rank_mean": 12.0, "stable_rank_utilization": 0.1,
                        "log_spectral_norm_mean": 0.5, "layers_analyzed": layers, "layers_skipped": 0,
                        "layers_failed": 0, "health": "good",
                        "dead_neurons": {"method": "activation", "count": 3, "total": 512, "ratio": 3 / 512,
                                         "status": "good", "fallback_reason": None, "layers": []}},
            "layers": [layer(f"blocks.{i}.weight", a) for i, a in enumerate(alphas)]}


def result(path: str, step: int, networks: int, layers: int, alpha: float = 3.0) -> dict[str, Any]:
    return {"path": path, "step": step, "format": "torch_zip", "issues": [],
            "networks": {f"net_{n}": network(alpha + n / 10, layers) for n in range(networks)}}


def fill(ledger_path: Path, run: str, rows: int, make: Callable[[int], dict[str, Any]],
         progress: Callable[[int], None] | None = None) -> None:
    """`rows` done checkpoints of `run` (steps 1..rows) with their attempts, in one transaction."""
    Ledger(ledger_path).close()  # schema, indexes, triggers
    conn = sqlite3.connect(ledger_path)
    try:
        with conn:
            for step in range(1, rows + 1):
                res = make(step)
                cur = conn.execute(
                    "INSERT INTO checkpoints (run, path, size, mtime_ns, inode, step, status, attempts,"
                    " seen_at, finished_at, duration_seconds, result, order_step, fingerprint)"
                    " VALUES (?, ?, 1, ?, ?, ?, 'done', 1, ?, ?, 0.5, ?, ?, ?)",
                    (run, res["path"], step, -step, step, step, step, json.dumps(res), step,
                     fingerprint(res)))  # type: ignore[arg-type]
                conn.execute("INSERT INTO attempts (checkpoint_id, run, outcome, duration_seconds,"
                             " finished_at) VALUES (?, ?, 'done', 0.5, ?)", (cur.lastrowid, run, step))
                if progress is not None and step % 10_000 == 0:
                    progress(step)
    finally:
        conn.close()
