"""Failure 9: the worker outlived a killed daemon (4 of 15 early kills, 5.6-7.6 s at ~450 MB).
The worker asks for SIGKILL on its parent's death (PR_SET_PDEATHSIG) before it checks that
its parent is still the daemon that started it (the pid the daemon passed in)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.helpers import children, processes_mentioning, sized
from tests.support import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def test_a_worker_whose_daemon_is_already_gone_exits_at_once(tmp_path: Path) -> None:
    # the daemon died while this worker was starting: it has been re-parented already
    settings = {"parent_pid": 999_999_999, "threads": 1, "nice": 0, "memory_limit_mb": 0, "options": {}}
    proc = subprocess.run([sys.executable, "-m", "alphawatch.service.worker_main", "1", json.dumps(settings)],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1  # before importing torch: nothing to leak


def test_the_worker_dies_with_a_daemon_killed_early(tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    kills = sized(8, 30)
    rng = random.Random(9)
    with_worker = 0
    orphans = 0
    for _ in range(kills):
        d = daemon_factory(watch)  # returns once /metrics listens; the worker starts next
        time.sleep(rng.uniform(0.0, 3.5))  # during the worker's spawn and its imports (~3 s)
        workers = children(d.proc.pid)
        with_worker += bool(workers)
        d.kill9()
        marker = f'"parent_pid": {d.proc.pid}'
        try:
            wait_until(lambda: not processes_mentioning(marker), timeout=5)  # noqa: B023 (used at once)
        except BaseException:
            orphans += 1
    assert orphans == 0
    assert with_worker >= kills // 2, "too few kills landed while a worker existed to prove anything"
    figure("9 worker outliving the daemon", f"{kills} kill -9s of the daemon 0-3.5 s after it listened "
           f"({with_worker} while its worker started up); orphaned workers: {orphans}",
           count=kills, lost=orphans, duplicated=0)
