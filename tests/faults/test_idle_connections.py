"""Failure 5: 1,017 idle TCP connections under a 1,024-descriptor limit made /healthz time out
12/12 and cost a checkpoint to EMFILE in the watcher. The server must bound its connections
(idle timeout, a cap, the longest waiter evicted at the cap) and the watcher must survive
running out of descriptors."""

from __future__ import annotations

import os
import resource
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from alphawatch.config import RunConfig, WatchConfig
from alphawatch.service.http import MAX_CONNECTIONS
from alphawatch.service.watch import RunWatcher
from structlog.testing import capture_logs

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit, proc_status
from tests.service.conftest import QUIET, Emitted
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

DAEMON_NOFILE = 1024
IDLE = 1017


def _limit_descriptors() -> None:  # runs in the daemon's child process before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_NOFILE, DAEMON_NOFILE))


def test_idle_connections_cannot_starve_probes_or_checkpoints(tmp_path: Path, daemon_factory: Any,
                                                              figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch, popen={"preexec_fn": _limit_descriptors})
    d.wait_event("worker_ready", timeout=120)
    baseline = proc_status(d.proc.pid)["fds"]
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE):  # open, send nothing, hold
            idle.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
        time.sleep(0.5)
        answers = []
        for _ in range(12):
            with urllib.request.urlopen(f"http://127.0.0.1:{d.port}/healthz", timeout=2) as resp:
                answers.append(resp.status)
        assert answers == [200] * 12
        peak = proc_status(d.proc.pid)["fds"]
        assert peak <= baseline + MAX_CONNECTIONS + 4, (baseline, peak)
        ckpt = save_sac_checkpoint(watch / "step_100.pt", step=100, hidden=32)
        written = {str(ckpt): time.time()}
        d.wait_rows(lambda rows: [r["status"] for r in rows] == ["done"], timeout=120)
    finally:
        for sock in idle:
            sock.close()
    assert d.metric("alphawatch_checkpoints", status="done") == 1
    assert not d.events("watch_error") and not d.events("analysis_loop_error")
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("5 idle TCP connections", f"{IDLE} idle connections under a {DAEMON_NOFILE}-descriptor limit; "
           f"12/12 /healthz answered; daemon fds {baseline} -> {peak}", found)


def test_the_watcher_survives_running_out_of_descriptors(tmp_path: Path) -> None:
    folder = tmp_path / "ckpts"
    folder.mkdir()
    staged = save_sac_checkpoint(tmp_path / "step_100.pt", step=100, hidden=32)
    cfg = WatchConfig(quiet_period_seconds=QUIET, rescan_interval_seconds=0.5)
    emitted = Emitted()
    with capture_logs() as logs:
        watcher = RunWatcher(RunConfig(watch=folder, name="r"), cfg, emitted)
        watcher.start()
        try:
            wait_until(lambda: watcher.status()[0] and "observer on" in watcher.status()[1])
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            hog: list[int] = []
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
            try:
                try:
                    while True:
                        hog.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    pass
                os.rename(staged, folder / staged.name)  # needs no descriptor
                time.sleep(8 * QUIET)  # several quiet periods and rescans with none to spare
                assert emitted.paths() == []  # it cannot be read, so it is not complete yet
            finally:
                for fd in hog:
                    os.close(fd)
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            wait_until(lambda: emitted.paths(), timeout=10 * QUIET + 10)
            time.sleep(4 * QUIET)
            assert emitted.paths() == [folder / staged.name]  # once, not lost, not twice
            assert watcher.status()[0], watcher.status()
        finally:
            watcher.stop()
    errors = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert len(errors) <= 2, errors  # said once, not on every tick
