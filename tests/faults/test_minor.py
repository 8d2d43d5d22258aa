"""Failure 10, the minor items, in one daemon's life: link loops and dangling links were
reported as "outside the watched folder"; a folder named `x.pt` was ignored silently; a
worker's death read `died (exit None): (no output)`; a stop file that could not be written
showed only as one log line (`alphawatch_stop_signal` 0, /readyz ready)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit
from tests.service.conftest import QUIET, save_heavy_tailed_sac
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def _status(d: Any, path: Path) -> str | None:
    return next((r["status"] for r in d.rows() if r["path"] == str(path)), None)


def test_minor_items(tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    blocker = tmp_path / "signals"
    blocker.write_text("a file where the signals folder should be")  # a broken signals volume
    d = daemon_factory(watch, config={"state": {"max_attempts": 1}, "stop": {"rule": "guide"}})
    worker_pid = int(d.wait_event("worker_ready", timeout=120)["pid"])

    # links to nowhere and in circles, and a folder named like a file
    (watch / "loop.pt").symlink_to("loop.pt")
    (watch / "dangling.pt").symlink_to("nowhere.pt")
    (watch / "model.pt").mkdir()
    odd = {watch / "loop.pt": "unreadable", watch / "dangling.pt": "unreadable",
           watch / "model.pt": "is_directory"}
    d.wait_rows(lambda rows: {r["path"] for r in rows if r["status"] == "failed"} >= set(map(str, odd)),
                timeout=90)
    time.sleep(4 * QUIET)
    failed = {e["path"]: e for e in d.events("checkpoint_failed")}
    assert len(d.events("checkpoint_failed")) == 3  # each said once
    for path, reason in odd.items():
        assert failed[str(path)]["reason"] == reason
        assert "outside" not in failed[str(path)]["message"]

    # the worker dies mid-analysis: the message says how
    os.kill(worker_pid, signal.SIGSTOP)
    victim = save_sac_checkpoint(watch / "step_100.pt", step=100, hidden=32)
    wait_until(lambda: _status(d, victim) == "analyzing", timeout=60)
    os.kill(worker_pid, signal.SIGKILL)
    crashed = d.wait_event("checkpoint_failed", count=4, timeout=60)
    assert crashed["reason"] == "worker_crashed" and "killed by SIGKILL" in crashed["message"], crashed
    assert "exit None" not in crashed["message"]

    # the stop rule fires, but the stop file cannot be written: visible on /metrics and /readyz
    overfit = save_heavy_tailed_sac(watch / "step_200.pt", step=200)
    written = {str(overfit): time.time()}
    d.wait_event("stop_write_failed", timeout=120)
    wait_until(lambda: d.metric("alphawatch_stop_signal_unwritten") == 1, timeout=30)
    status, body = d.get("/readyz")
    assert status == 503 and "due but cannot be written" in body, body
    assert d.metric("alphawatch_stop_signal") == 0
    blocker.unlink()  # the operator fixes the volume
    d.wait_event("stop_written", timeout=60)
    assert d.stop_file.exists()
    wait_until(lambda: d.metric("alphawatch_stop_signal_unwritten") == 0, timeout=30)
    assert d.metric("alphawatch_stop_signal") == 1
    wait_until(lambda: d.get("/readyz")[0] == 200, timeout=30)
    assert len(d.events("stop_write_failed")) == 1
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("10 minor items", "a link loop, a dangling link, a folder named model.pt; a worker SIGKILLed "
           "mid-analysis; a stop file due on a broken signals volume, then fixed",
           count=5, lost=found.lost, duplicated=found.duplicated, worst_latency_s=found.worst_latency_s)
