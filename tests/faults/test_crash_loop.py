"""Not yet tried: a crash loop. `make faults`: 100 cycles; CI: 10. Checkpoints keep arriving
(one a second, the last two over-fitted) while the daemon is `kill -9`ed at random moments,
including during start-up and mid-analysis; then it runs undisturbed. Nothing may be lost,
nothing analyzed into the ledger twice, and the stop file (patience 2) written exactly once,
for the second over-fitted checkpoint."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.helpers import Producer, audit, processes_mentioning, sized, stage_checkpoints
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def test_a_crash_loop_loses_nothing_and_stops_once(tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    cycles = sized(8, 100)
    rng = random.Random(100)
    # seconds after /metrics listened: before, during and after the worker's start-up (~3 s)
    lives = [rng.uniform(0.0, 8.0) for _ in range(cycles)]
    count = max(6, int(sum(lives) + 1.5 * cycles))  # about one checkpoint a second of the loop
    staged = stage_checkpoints(tmp_path / "staged", count, hidden=32, overfit_last=2)
    watch = tmp_path / "ckpts"
    watch.mkdir()
    config = {"stop": {"rule": "guide", "patience": 2}}  # mean alpha, every network (SAC)
    producer = Producer(staged, watch, interval=1.0).start()
    daemons = []
    try:
        for life in lives:
            d = daemon_factory(watch, config=config)
            daemons.append(d)
            time.sleep(life)
            d.kill9()
            marker = f'"parent_pid": {d.proc.pid}'
            wait_until(lambda: not processes_mentioning(marker), timeout=10)  # noqa: B023 (used at once)
        final = daemon_factory(watch, config=config)
        daemons.append(final)
        wait_until(producer.done, timeout=count + 60)
        final.wait_rows(lambda rows: sum(r["status"] == "done" for r in rows) == count, timeout=300)
        wait_until(final.stop_file.exists, timeout=60)
    finally:
        producer.stop()
    found = audit(final.state, producer.written)
    assert (found.lost, found.duplicated) == (0, 0), found.missing
    written = sum(len(d.events("stop_written")) for d in daemons)
    assert written == 1, f"stop_written {written} times"
    signal = json.loads(final.stop_file.read_text())
    assert signal["checkpoint"] == str(watch / f"step_{count}.pt")  # the second over-fitted one
    interrupted = sum(len(d.events("analysis_interrupted")) for d in daemons)
    figure("crash loop", f"{cycles} kill -9s at random (0-8 s after listening) while {count} checkpoints "
           f"arrived; {interrupted} analyses interrupted and redone; stop file written once", found)
