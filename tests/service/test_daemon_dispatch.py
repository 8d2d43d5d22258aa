"""The daemon's dispatch edge cases: a checkpoint deleted before its turn, a stop file that
cannot be written, a stop file already there at start."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from alphawatch.config import Config, load_config
from alphawatch.service import daemon as daemon_module
from alphawatch.service.ledger import Ledger
from alphawatch.service.worker import AnalysisWorker

from tests.support import wait_until


def _config(tmp_path: Path, stop_file: Path) -> Config:
    (tmp_path / "ckpts").mkdir(exist_ok=True)
    return load_config(
        None,
        overrides={
            "runs.watch": str(tmp_path / "ckpts"),
            "runs.name": "r",
            "state.path": str(tmp_path / "state" / "ledger.sqlite3"),
            "stop.file": str(stop_file),
            "metrics.host": "127.0.0.1",
            "metrics.port": 0,
        },
        env={},
    )


def _recording(daemon: daemon_module.Daemon) -> list[tuple[str, dict[str, Any]]]:
    """Keep every event the daemon logs (and still log it)."""
    events: list[tuple[str, dict[str, Any]]] = []
    log = daemon.log

    def record(event: str, **fields: Any) -> None:
        events.append((event, fields))
        log(event, **fields)

    daemon.log = record  # type: ignore[method-assign]
    return events


def _overfit_result(path: str, step: int) -> dict[str, Any]:
    return {"path": path, "step": step, "format": "torch_zip", "issues": [],
            "networks": {"actor": {"summary": {"alpha": 1.5, "layers_analyzed": 3}, "layers": []}}}


def test_a_checkpoint_deleted_before_its_turn_is_skipped_not_failed(tmp_path: Path) -> None:
    # Lightning's save_top_k (or an operator) deletes checkpoints while others are analyzed.
    # That is not a failure, and certainly not "resolves outside the watched folder".
    config = _config(tmp_path, tmp_path / "signals" / "stop.json")
    daemon = daemon_module.Daemon(config)
    events = _recording(daemon)
    daemon.ledger = Ledger(config.state.path)
    daemon.worker = AnalysisWorker(config.worker, config.analysis, log=daemon.log)  # never started
    try:
        gone = tmp_path / "ckpts" / "step_7.pt"
        daemon.ledger.record_seen("r", str(gone), size=10, mtime_ns=1, inode=1, step=7)
        row = daemon.ledger.claim_next()
        assert row is not None
        daemon._analyze(row)
        after = daemon.ledger.get(row.id)
        assert after is not None
        assert (after.status, after.reason, after.attempts) == ("skipped", "gone", 0)
        assert daemon.ledger.failure_counts("r") == {}
        assert [e for e, _ in events] == ["checkpoint_gone"]
        # the same name written again later is a new version and is queued
        _, queued = daemon.ledger.record_seen("r", str(gone), size=11, mtime_ns=2, inode=2, step=7)
        assert queued
    finally:
        daemon.ledger.close()


def test_a_stop_file_that_cannot_be_written_does_not_end_analysis_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The signals folder cannot be created (here: a file is in the way; in a container: a
    # missing or read-only volume). The analysis loop must keep running, say why, and write
    # the stop file once it can.
    blocker = tmp_path / "signals"
    blocker.write_text("not a folder")
    stop_file = blocker / "stop.json"
    config = _config(tmp_path, stop_file)
    with Ledger(config.state.path) as ledger:  # an over-fitted checkpoint from an earlier life
        ledger.record_seen("r", "ckpts/step_1.pt", size=1, mtime_ns=1, inode=1, step=1)
        row = ledger.claim_next()
        assert row is not None
        ledger.mark_done(row.id, _overfit_result("ckpts/step_1.pt", 1), 0.1)
    # a worker that cannot start keeps the test fast; the loop goes on without it
    broken = functools.partial(AnalysisWorker, python="/bin/false")
    monkeypatch.setattr(daemon_module, "AnalysisWorker", broken)
    daemon = daemon_module.Daemon(config)
    events = _recording(daemon)
    daemon.start()
    try:
        wait_until(lambda: any(e == "stop_write_failed" for e, _ in events))
        assert daemon._thread is not None and daemon._thread.is_alive()
        blocker.unlink()  # the operator fixes the mount
        assert daemon.ledger is not None
        ledger = daemon.ledger
        wait_until(lambda: ledger.stop_recorded("r"))  # recorded right after the file is written
        assert json.loads(stop_file.read_text())["network"] == "actor"
        assert [e for e, _ in events].count("stop_write_failed") == 1  # said once, not per retry
    finally:
        daemon.request_stop()
        daemon.shutdown()


def test_a_stop_file_already_there_at_start_is_reported_and_left_alone(tmp_path: Path) -> None:
    stop_file = tmp_path / "signals" / "stop.json"
    stop_file.parent.mkdir()
    stop_file.write_text('{"stop": true, "reason": "left over from last week"}')
    config = _config(tmp_path, stop_file)
    daemon = daemon_module.Daemon(config)
    events = _recording(daemon)
    daemon.ledger = Ledger(config.state.path)
    try:
        daemon._warn_stale_stop_file("r")
        assert [e for e, _ in events] == ["stop_file_present"]
        assert events[0][1]["path"] == str(stop_file)
        assert "not written by this daemon" in events[0][1]["detail"]
        assert "left over" in stop_file.read_text()  # never touched
        # the daemon's own signal from an earlier life: still said, with how to re-arm
        daemon.ledger.record_stop("r", stop_file, {"stop": True})
        daemon._warn_stale_stop_file("r")
        assert len(events) == 2 and "--config" in events[1][1]["detail"]
        stop_file.unlink()
        daemon._warn_stale_stop_file("r")  # no file: nothing to say
        assert len(events) == 2
    finally:
        daemon.ledger.close()
