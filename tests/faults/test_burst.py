"""Not yet tried: a burst of 2,000 checkpoints at once (`make faults`; CI renames in 60).
Every one analyzed exactly once, the main process staying small while the queue drains."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.helpers import audit, proc_status, sized, stage_checkpoints

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def test_a_burst_of_checkpoints_is_drained_exactly_once(tmp_path: Path, daemon_factory: Any,
                                                        figure: Any) -> None:
    count = sized(60, 2000)
    staged = stage_checkpoints(tmp_path / "staged", count)
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    d.wait_event("worker_ready", timeout=120)
    before = proc_status(d.proc.pid)
    written = {}
    for path in staged:  # all at once
        target = watch / path.name
        path.rename(target)
        written[str(target)] = time.time()
    started = time.time()
    d.wait_rows(lambda rows: sum(r["status"] == "done" for r in rows) == count, timeout=60 + count)
    drained = time.time() - started
    after = proc_status(d.proc.pid)
    grew_mb = (after["hwm_kb"] - before["hwm_kb"]) / 1024
    assert d.metric("alphawatch_checkpoints", status="done") == count
    assert d.metric("alphawatch_checkpoint_step") == count
    assert grew_mb < 30, f"the main process's peak RSS grew by {grew_mb:.0f} MB"
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("burst", f"{count:,} checkpoints renamed in at once; drained in {drained:.0f} s; main RSS "
           f"{before['rss_kb'] // 1024} -> {after['rss_kb'] // 1024} MB (peak +{grew_mb:.0f} MB)", found)
