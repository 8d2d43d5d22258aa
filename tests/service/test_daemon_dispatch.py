"""The daemon's dispatch edge cases: a checkpoint deleted before its turn, a stop file that
cannot be written, a stop file already there at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alphawatch.config import Config, load_config
from alphawatch.service import daemon as daemon_module
from alphawatch.service.ledger import Ledger
from alphawatch.service.worker import AnalysisWorker
from structlog.testing import capture_logs

from tests.service.test_ledger import result_for
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
            # one over-fitted actor checkpoint is enough for these tests: the guide's rule
            # (the default rule needs two plain-model checkpoints in a row)
            "stop.rule": "guide",
        },
        env={},
    )


def _events(logs: list[dict[str, Any]], name: str | None = None) -> list[dict[str, Any]]:
    return [e for e in logs if name is None or e["event"] == name]


def _overfit_result(path: str, step: int) -> dict[str, Any]:
    result = result_for(path, 1.5, step)
    result["networks"] = {"actor": result["networks"]["model"]}  # type: ignore[index]
    return result


def test_a_checkpoint_deleted_before_its_turn_is_skipped_not_failed(tmp_path: Path) -> None:
    # Lightning's save_top_k (or an operator) deletes checkpoints while others are analyzed.
    # That is not a failure, and certainly not "resolves outside the watched folder".
    config = _config(tmp_path, tmp_path / "signals" / "stop.json")
    ledger = Ledger(config.state.path)
    worker = AnalysisWorker(config.worker, config.analysis)  # never started
    daemon = daemon_module.Daemon(config, ledger=ledger, worker=worker)
    try:
        gone = tmp_path / "ckpts" / "step_7.pt"
        ledger.record_seen("r", str(gone), size=10, mtime_ns=1, inode=1, step=7)
        row = ledger.claim_next()
        assert row is not None
        with capture_logs() as logs:
            daemon._analyze(row)
        after = ledger.get(row.id)
        assert after is not None
        assert (after.status, after.reason, after.attempts) == ("skipped", "gone", 0)
        assert ledger.failure_counts("r") == {}
        assert [(e["event"], e["log_level"]) for e in logs] == [("checkpoint_gone", "info")]
        # the same name written again later is a new version and is queued
        _, queued = ledger.record_seen("r", str(gone), size=11, mtime_ns=2, inode=2, step=7)
        assert queued
    finally:
        ledger.close()


def test_a_link_out_of_the_watched_folder_or_nowhere_is_refused_for_what_it_is(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "signals" / "stop.json")
    ledger = Ledger(config.state.path)
    worker = AnalysisWorker(config.worker, config.analysis)
    daemon = daemon_module.Daemon(config, ledger=ledger, worker=worker)
    (tmp_path / "secret.pt").write_bytes(b"x")
    (tmp_path / "ckpts" / "out.pt").symlink_to(tmp_path / "secret.pt")
    (tmp_path / "ckpts" / "dangling.pt").symlink_to(tmp_path / "ckpts" / "nothing.pt")
    (tmp_path / "ckpts" / "loop.pt").symlink_to(tmp_path / "ckpts" / "loop.pt")
    try:
        for name, step in (("out.pt", 1), ("dangling.pt", 2), ("loop.pt", 3)):
            ledger.record_seen("r", str(tmp_path / "ckpts" / name), size=1, mtime_ns=step, inode=step,
                               step=step)
        reasons = {}
        with capture_logs() as logs:
            while (row := ledger.claim_next()) is not None:
                daemon._analyze(row)
                reasons[Path(row.path).name] = ledger.get(row.id).reason  # type: ignore[union-attr]
        assert reasons == {"out.pt": "outside_watch", "dangling.pt": "unreadable", "loop.pt": "unreadable"}
        assert {e["log_level"] for e in _events(logs, "checkpoint_failed")} == {"warning"}
    finally:
        ledger.close()


def test_the_stop_file_recommends_by_the_one_training_order(tmp_path: Path) -> None:
    # s100 (3.0), s200 (2.5), best_model.pt (no step, 2.1, written before s300), s300 (1.8):
    # the last healthy checkpoint in training order is best_model.pt
    stop_file = tmp_path / "signals" / "stop.json"
    config = _config(tmp_path, stop_file)
    ledger = Ledger(config.state.path)
    worker = AnalysisWorker(config.worker, config.analysis)
    daemon = daemon_module.Daemon(config, ledger=ledger, worker=worker)
    try:
        for path, step, mtime, alpha in [("s100.pt", 100, 10, 3.0), ("s200.pt", 200, 20, 2.5),
                                         ("best_model.pt", None, 25, 2.1), ("s300.pt", 300, 30, 1.8)]:
            ledger.record_seen("r", path, size=1, mtime_ns=mtime, inode=mtime, step=step)
            row = ledger.claim_next()
            assert row is not None
            ledger.mark_done(row.id, result_for(path, alpha, step), 0.1)
        with capture_logs() as logs:
            daemon.stops().check("r")
        written = json.loads(stop_file.read_text())
        assert written["checkpoint"] == "s300.pt" and written["recommended_checkpoint"] == "best_model.pt"
        assert [(e["event"], e["log_level"]) for e in logs] == [("stop_written", "info")]
        assert logs[0]["path"] == str(stop_file.absolute())
    finally:
        ledger.close()


def test_a_stop_file_that_cannot_be_written_does_not_end_analysis_and_is_retried(tmp_path: Path) -> None:
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
    broken = AnalysisWorker(config.worker, config.analysis, python="/bin/false")
    daemon = daemon_module.Daemon(config, worker=broken)
    with capture_logs() as logs:
        daemon.start()
        try:
            wait_until(lambda: _events(logs, "stop_write_failed"))
            assert daemon._thread is not None and daemon._thread.is_alive()
            blocker.unlink()  # the operator fixes the mount
            assert daemon.ledger is not None
            ledger = daemon.ledger
            wait_until(lambda: ledger.stop_recorded("r"))  # recorded right after the file is written
            assert json.loads(stop_file.read_text())["network"] == "actor"
            failed = _events(logs, "stop_write_failed")
            assert len(failed) == 1 and failed[0]["log_level"] == "error"  # said once, not per retry
        finally:
            daemon.request_stop()
            daemon.shutdown()


def test_a_stop_file_already_there_at_start_is_reported_and_left_alone(tmp_path: Path) -> None:
    stop_file = tmp_path / "signals" / "stop.json"
    stop_file.parent.mkdir()
    stop_file.write_text('{"stop": true, "reason": "left over from last week"}')
    config = _config(tmp_path, stop_file)
    ledger = Ledger(config.state.path)
    daemon = daemon_module.Daemon(config, ledger=ledger)
    try:
        with capture_logs() as logs:
            daemon.stops().warn_stale("r")
            assert [(e["event"], e["log_level"]) for e in logs] == [("stop_file_present", "warning")]
            assert logs[0]["path"] == str(stop_file)
            assert "not written by this daemon" in logs[0]["detail"]
            assert "left over" in stop_file.read_text()  # never touched
            # the daemon's own signal from an earlier life: still said, with how to re-arm
            ledger.record_stop("r", stop_file, {"stop": True})
            daemon.stops().warn_stale("r")
            assert len(logs) == 2 and "--config" in logs[1]["detail"]
            stop_file.unlink()
            daemon.stops().warn_stale("r")  # no file: nothing to say
            assert len(logs) == 2
    finally:
        ledger.close()
