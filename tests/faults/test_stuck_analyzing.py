"""Failure 3: checkpoints stuck in `analyzing` until a restart.

(a) the ledger's disk filled during an analysis; (b) the worker could not be re-spawned
(its interpreter was gone); (c) the same at start-up (an interpreter the daemon may not
run): a bare traceback, a dead analysis thread, a process still up and "ready". The loop
must never die, release every claim, say so on /readyz and in JSON logs, and back off.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from alphawatch.config import load_config
from alphawatch.service import daemon as daemon_module
from alphawatch.service.worker import AnalysisWorker
from structlog.testing import capture_logs

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def _all_json(log_path: Path) -> list[dict[str, Any]]:
    """Every line the daemon wrote (stdout and stderr): each must be one JSON object."""
    lines = log_path.read_text(errors="replace").splitlines()
    parsed = [json.loads(line) for line in lines]  # raises on a bare traceback line
    assert all(isinstance(p, dict) and "event" in p for p in parsed)
    return parsed


def _fill(folder: Path) -> Path:
    """Write until the filesystem is full (unbuffered, down to the last 512 bytes)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_during_an_analysis_releases_the_claim(tmp_path: Path, daemon_factory: Any,
                                                           small_tmpfs: Any, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    state = small_tmpfs(tmp_path / "state", "6m")  # the daemon's ledger folder is a 6 MB tmpfs
    d = daemon_factory(watch)
    worker_pid = int(d.wait_event("worker_ready", timeout=120)["pid"])
    os.kill(worker_pid, signal.SIGSTOP)  # hold the analysis until the disk is full
    try:
        ckpt = save_sac_checkpoint(watch / "step_100.pt", step=100, hidden=256)
        written = {str(ckpt): time.time()}
        d.wait_rows(lambda rows: [r["status"] for r in rows] == ["analyzing"], timeout=60)
        filler = _fill(state)
    finally:
        os.kill(worker_pid, signal.SIGCONT)
    error = d.wait_event("analysis_loop_error", timeout=60)
    assert "full" in error["error"], error
    status, body = d.get("/readyz")
    assert status == 503 and "not writable" in body, body
    time.sleep(2)
    filler.unlink()  # space comes back
    freed = time.time()
    rows = d.wait_rows(lambda rows: [r["status"] for r in rows] == ["done"], timeout=120)
    assert rows[0]["attempts"] == 1  # the interrupted attempt was given back, not counted
    wait_until(lambda: d.get("/readyz")[0] == 200, timeout=30)
    waits = [e["retry_in_seconds"] for e in d.events("analysis_loop_error")]
    assert waits == sorted(waits) and len(set(waits)) == len(waits)  # backing off, not spinning
    _all_json(d.log_path)
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("3a ledger disk full mid-analysis", f"6 MB tmpfs filled while the worker held a result; freed "
           f"after 2 s (done {rows[0]['finished_at'] - freed:.1f} s later)", found)


def test_a_worker_that_cannot_be_respawned_leaves_nothing_analyzing(tmp_path: Path, daemon_factory: Any,
                                                                    venv_clone: Path, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch, python=str(venv_clone))
    worker_pid = int(d.wait_event("worker_ready", timeout=120)["pid"])
    written = {}
    first = save_sac_checkpoint(watch / "step_100.pt", step=100, hidden=32)
    written[str(first)] = time.time()
    d.wait_rows(lambda rows: [r["status"] for r in rows] == ["done"], timeout=120)

    target = os.readlink(venv_clone)
    venv_clone.unlink()  # the interpreter is gone (an upgrade, a deleted venv) ...
    os.kill(worker_pid, signal.SIGKILL)  # ... and the worker dies
    second = save_sac_checkpoint(watch / "step_200.pt", step=200, hidden=32, seed=1)
    written[str(second)] = time.time()
    d.wait_event("worker_start_failed", timeout=60, count=2)
    rows = {r["path"]: r for r in d.rows()}
    assert rows[str(second)]["status"] == "pending" and rows[str(second)]["attempts"] == 0
    status, body = d.get("/readyz")
    assert status == 503 and "analysis worker cannot start" in body, body
    waits = [e["retry_in_seconds"] for e in d.events("worker_start_failed")]
    assert waits[1] == 2 * waits[0]

    venv_clone.symlink_to(target)  # the interpreter is back
    d.wait_rows(lambda rows: [r["status"] for r in rows] == ["done", "done"], timeout=180)
    wait_until(lambda: d.get("/readyz")[0] == 200, timeout=30)
    assert all(e["level"] == "error" for e in d.events("worker_start_failed"))
    _all_json(d.log_path)
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("3b worker cannot be re-spawned", "interpreter deleted, worker SIGKILLed, a checkpoint "
           "written, interpreter restored", found)


def test_a_worker_that_cannot_start_at_all_keeps_the_loop_alive(tmp_path: Path, figure: Any) -> None:
    (tmp_path / "ckpts").mkdir()
    config = load_config(None, env={}, overrides={
        "runs.watch": str(tmp_path / "ckpts"), "runs.name": "r",
        "state.path": str(tmp_path / "state" / "ledger.sqlite3"),
        "stop.file": str(tmp_path / "signals" / "stop.json"), "metrics.host": "127.0.0.1",
        "metrics.port": 0, "watch.quiet_period_seconds": 0.3})
    not_executable = tmp_path / "python"
    not_executable.write_text("#!/bin/sh\n")  # mode 0644: nobody may run it, not even root
    worker = AnalysisWorker(config.worker, config.analysis, python=str(not_executable))
    daemon = daemon_module.Daemon(config, worker=worker)
    daemon.retry_seconds = 0.2
    with capture_logs() as logs:
        daemon.start()
        try:
            assert daemon.ledger is not None
            ckpt = save_sac_checkpoint(tmp_path / "ckpts" / "step_1.pt", step=1, hidden=32)
            ledger = daemon.ledger
            wait_until(lambda: ledger.find("r", str(ckpt)))
            wait_until(lambda: len([e for e in logs if e["event"] == "worker_start_failed"]) >= 3)
            assert daemon._thread is not None and daemon._thread.is_alive()
            ready, reason = daemon.ready()
            assert not ready and "analysis worker cannot start" in reason and "Permission denied" in reason
            row = ledger.find("r", str(ckpt))
            assert row is not None and row.status == "pending" and row.attempts == 0
            worker.python = sys.executable  # fixed (e.g. the volume's permissions)
            wait_until(lambda: getattr(ledger.find("r", str(ckpt)), "status", None) == "done", timeout=180)
            assert daemon.ready()[0]
        finally:
            daemon.request_stop()
            daemon.shutdown()
    failures = [e for e in logs if e["event"] == "worker_start_failed"]
    assert all(e["log_level"] == "error" for e in failures)
    assert not [e for e in logs if e["event"] in ("thread_crashed", "analysis_loop_error")]
    figure("3c worker cannot start at all", "worker interpreter not executable from the start, then "
           "fixed", count=1, lost=0, duplicated=0)
