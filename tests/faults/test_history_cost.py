"""Failure 7: the main process's cost per checkpoint grew with the run's history (20,000 rows:
1.64 s of CPU per checkpoint, a 120 ms scrape), because the collector and the stop rule
re-read every row. Here the work is counted, not timed: SQLite's virtual-machine steps for
one scrape and for one new checkpoint (record, claim, store, stop rule) must not grow with
the history. bench/daemon/history.py measures the seconds at 100,000 rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from alphawatch.config import load_config
from alphawatch.results import fingerprint
from alphawatch.service.ledger import Ledger
from alphawatch.service.metrics import LedgerCollector
from alphawatch.service.stop_keeper import StopKeeper

from tests.faults.helpers import sized
from tests.service.test_metrics import checkpoint_result, network_result

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

SMALL = 200
LARGE = sized(20_000, 100_000)


def add_history(path: Path, run: str, rows: int) -> None:
    """`rows` analyzed checkpoints (and their attempts) in one transaction, as the daemon
    would have stored them one by one (the triggers keep the totals either way)."""
    with Ledger(path):
        pass  # schema, indexes, triggers
    conn = sqlite3.connect(path)
    try:
        with conn:
            for step in range(1, rows + 1):
                result = _result(f"/ckpts/step_{step}.pt", step)
                cur = conn.execute(
                    "INSERT INTO checkpoints (run, path, size, mtime_ns, inode, step, status, attempts,"
                    " seen_at, finished_at, duration_seconds, result, order_step, fingerprint)"
                    " VALUES (?, ?, 1, ?, ?, ?, 'done', 1, ?, ?, 0.5, ?, ?, ?)",
                    (run, result["path"], step, step, step, step, step, json.dumps(result), step,
                     f"{step:032x}"))
                conn.execute("INSERT INTO attempts (checkpoint_id, run, outcome, duration_seconds,"
                             " finished_at) VALUES (?, ?, 'done', 0.5, ?)", (cur.lastrowid, run, step))
    finally:
        conn.close()


def _result(path: str, step: int) -> dict[str, object]:
    """A full result (every summary field the collector exports), distinct for each step."""
    alpha = 2.5 + (step % 997) / 1000
    return checkpoint_result(path, step, actor=network_result(alpha, [alpha - 0.3, alpha + 0.3]),
                             critic=network_result(alpha + 1, [alpha + 0.5, alpha + 1.5]))


def vm_steps(ledger: Ledger, work: Callable[[], object]) -> int:
    """SQLite virtual-machine instructions that `work` makes the ledger run."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    ledger._conn.set_progress_handler(tick, 1)
    try:
        work()
    finally:
        ledger._conn.set_progress_handler(None, 0)
    return steps[0]


def _cost(tmp_path: Path, rows: int) -> tuple[int, int]:
    """(VM steps of one scrape, of one new checkpoint) with `rows` of history."""
    path = tmp_path / f"history_{rows}.sqlite3"
    add_history(path, "r", rows)
    config = load_config(None, env={}, overrides={"runs.watch": str(tmp_path), "runs.name": "r",
                                                  "stop.patience": 3, "stop.min_checkpoints": 10})
    with Ledger(path) as ledger:
        collector = LedgerCollector(ledger, runs=["r"])
        stops = StopKeeper(config, ledger, log=None)
        families = []
        scrape = vm_steps(ledger, lambda: families.extend(collector.collect()))
        success = next(f for f in families if f.name == "alphawatch_scrape_collector_success")
        assert success.samples[0].value == 1  # the whole scrape ran

        def new_checkpoint() -> None:
            step = rows + 1
            row_id, _ = ledger.record_seen("r", f"/ckpts/step_{step}.pt", size=1, mtime_ns=step, inode=step,
                                           step=step)
            row = ledger.claim_next()
            assert row is not None and row.id == row_id
            result = _result(row.path, step)
            assert fingerprint(result)  # type: ignore[arg-type]
            ledger.mark_done(row.id, result, 0.5)  # type: ignore[arg-type]
            stops.check("r")

        checkpoint = vm_steps(ledger, new_checkpoint)
        assert ledger.status_counts("r")["done"] == rows + 1
    return scrape, checkpoint


def test_a_scrape_and_a_new_checkpoint_cost_the_same_at_any_history(tmp_path: Path) -> None:
    small_scrape, small_checkpoint = _cost(tmp_path, SMALL)
    large_scrape, large_checkpoint = _cost(tmp_path, LARGE)
    print(f"VM steps at {SMALL} / {LARGE} rows: scrape {small_scrape} / {large_scrape}, "
          f"new checkpoint {small_checkpoint} / {large_checkpoint}")
    # constant work: the same number of SQLite steps (a little more for deeper B-trees)
    assert large_scrape <= 1.5 * small_scrape, (small_scrape, large_scrape)
    assert large_checkpoint <= 1.5 * small_checkpoint, (small_checkpoint, large_checkpoint)
