"""/readyz must say so when the analysis worker cannot start (e.g. torch missing in an image)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from alphawatch.config import load_config
from alphawatch.service import daemon as daemon_module
from alphawatch.service.worker import AnalysisWorker

from tests.support import wait_until


def _readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_readyz_reports_a_worker_that_cannot_start(tmp_path: Path) -> None:
    # A real worker process whose interpreter exits at once: what a broken image looks like.
    (tmp_path / "ckpts").mkdir()
    config = load_config(
        None,
        overrides={
            "runs.watch": str(tmp_path / "ckpts"),
            "state.path": str(tmp_path / "state" / "ledger.sqlite3"),
            "stop.file": str(tmp_path / "signals" / "stop.json"),
            "metrics.host": "127.0.0.1",
            "metrics.port": 0,
        },
        env={},
    )
    daemon = daemon_module.Daemon(config, worker=AnalysisWorker(config.worker, config.analysis,
                                                                 python="/bin/false"))
    daemon.start()
    try:
        def not_ready() -> tuple[int, str] | None:
            answer = _readyz(daemon.server.port)
            return answer if answer[0] == 503 else None

        status, body = wait_until(not_ready)
        assert "analysis worker cannot start" in body, body
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.server.port}/healthz", timeout=5) as resp:
            assert resp.status == 200  # alive, just not ready
    finally:
        daemon.request_stop()
        daemon.shutdown()
