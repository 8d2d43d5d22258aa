"""Failure 4: three `kill -9`s of the daemon during one analysis failed a good checkpoint for
good (`worker_crashed`, "interrupted during all 3 attempts"), silently, and raised
AlphawatchAnalysisFailing. The daemon's death is not the checkpoint's fault."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit, processes_mentioning
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def test_kill_9_during_the_same_analysis_three_times_then_it_is_analyzed(
        tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    ckpt = watch / "step_100.pt"
    written: dict[str, float] = {}
    kills = 3
    for cycle in range(kills):
        d = daemon_factory(watch)
        worker_pid = int(d.wait_event("worker_ready", timeout=120)["pid"])
        os.kill(worker_pid, signal.SIGSTOP)  # the analysis cannot finish before the kill
        if cycle == 0:
            save_sac_checkpoint(ckpt, step=100, hidden=32)
            written[str(ckpt)] = time.time()
        else:
            requeued = d.events("analysis_interrupted")
            seen = [(e["path"], e["interruptions"], e["level"]) for e in requeued]
            assert seen == [(str(ckpt), cycle, "warning")]
        d.wait_rows(lambda rows: [r["status"] for r in rows] == ["analyzing"], timeout=60)
        d.kill9()
        # the worker dies with the daemon (PR_SET_PDEATHSIG), even while stopped
        marker = f'"parent_pid": {d.proc.pid}'
        wait_until(lambda: not processes_mentioning(marker), timeout=10)  # noqa: B023 (used at once)

    d = daemon_factory(watch)
    rows = d.wait_rows(lambda rows: [r["status"] for r in rows] == ["done"], timeout=120)
    assert (rows[0]["attempts"], rows[0]["interruptions"]) == (1, kills)
    assert d.events("analysis_interrupted")[0]["interruptions"] == kills
    assert d.metric("alphawatch_checkpoint_failures_total", reason="worker_crashed") == 0
    assert not d.events("checkpoint_failed")
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("4 daemon kill -9 mid-analysis", f"{kills} kill -9s of the daemon during the same analysis, "
           "then a clean start", found)
