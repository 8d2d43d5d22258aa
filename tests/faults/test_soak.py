"""Not yet tried: a soak. `make faults`: one checkpoint a minute for 2 hours; CI: the same
rhythm compressed (one every 0.5 s, 40 checkpoints). The resident memory of every process
(the daemon and its worker) must stay within 10% of its value once warm, and neither may
gain descriptors or threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.faults.helpers import FULL, Producer, audit, children, proc_status, sized, stage_checkpoints

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

WARM = 5  # checkpoints analyzed before the baseline is taken


def _snapshot(pid: int) -> dict[str, dict[str, int]]:
    """proc_status of the daemon and of each of its children (the worker)."""
    out = {"daemon": proc_status(pid)}
    for child in children(pid):
        out[f"worker {child}"] = proc_status(child)
    return out


def test_a_long_run_keeps_every_process_flat(tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    count = sized(40, 120)
    interval = 60.0 if FULL else 0.5
    staged = stage_checkpoints(tmp_path / "staged", count, hidden=64)
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    d.wait_event("worker_ready", timeout=120)
    producer = Producer(staged, watch, interval).start()
    try:
        d.wait_event("checkpoint_analyzed", count=WARM, timeout=120 + WARM * interval)
        warm = _snapshot(d.proc.pid)
        peak = {name: dict(values) for name, values in warm.items()}
        for n in range(WARM + 1, count + 1):
            d.wait_event("checkpoint_analyzed", count=n, timeout=120 + 2 * interval)
            for name, values in _snapshot(d.proc.pid).items():
                assert name in warm, f"a new process appeared: {name}"  # the worker was never replaced
                for key, value in values.items():
                    peak[name][key] = max(peak[name][key], value)
    finally:
        producer.stop()
    for name, values in warm.items():
        assert peak[name]["rss_kb"] <= 1.10 * values["rss_kb"], (name, values, peak[name])
        assert peak[name]["fds"] <= values["fds"], (name, values, peak[name])
        assert peak[name]["threads"] <= values["threads"], (name, values, peak[name])
    found = audit(d.state, producer.written)
    assert (found.lost, found.duplicated) == (0, 0)
    rss = ", ".join(f"{name.split()[0]} {warm[name]['rss_kb'] // 1024}->{peak[name]['rss_kb'] // 1024} MB"
                    for name in warm)
    figure("soak", f"{count} checkpoints, one every {interval:g} s; RSS once warm -> peak: {rss}; "
           "no descriptor or thread growth", found)
