"""The analysis worker subprocess: real checkpoints, real limits, real crashes."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from alphawatch.analysis.options import AnalysisOptions
from alphawatch.config import WorkerConfig
from alphawatch.service.worker import AnalysisWorker

from tests.factories import save_sac_checkpoint
from tests.service.conftest import sac_bytes
from tests.support import wait_until


@pytest.fixture(scope="module")
def worker():
    """One warm worker shared by the module (starting one costs seconds: torch + WeightWatcher)."""
    w = AnalysisWorker(
        WorkerConfig(memory_limit_mb=2048, timeout_seconds=120, threads=1, nice=5), AnalysisOptions()
    )
    w.start()
    yield w
    w.stop()


@pytest.fixture
def limits(worker):
    """Change the worker's timeout/memory limit for one test, restore afterwards."""
    original = worker.cfg

    def set_limits(**kw):
        worker.cfg = dataclasses.replace(original, **kw)

    yield set_limits
    worker.cfg = original


def _alphas(result: dict) -> dict:
    return {name: net["summary"]["alpha"] for name, net in result["networks"].items()}


def test_analyzes_a_real_checkpoint_and_stays_warm(worker, tmp_path):
    first = save_sac_checkpoint(tmp_path / "step_1.pt", 1, hidden=64)
    second = save_sac_checkpoint(tmp_path / "step_2.pt", 2, hidden=64, seed=1)
    pid = worker.pid
    out1 = worker.analyze(first, tmp_path)
    out2 = worker.analyze(second, tmp_path)
    assert out1.ok and out2.ok, (out1, out2)
    assert worker.pid == pid  # the same warm process answered both
    assert set(out1.result["networks"]) == {
        "actor",
        "critic_1",
        "critic_2",
        "target_critic_1",
        "target_critic_2",
    }
    assert out1.result["step"] == 1 and out2.result["step"] == 2
    assert all(isinstance(a, float) and a > 0 for a in _alphas(out1.result).values())
    assert _alphas(out1.result) != _alphas(out2.result)  # different weights, different numbers
    # warm: a small checkpoint takes well under the cost of importing torch + WeightWatcher
    assert out2.duration < 5


def test_runs_at_low_priority(worker):
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(19, own + worker.cfg.nice)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty_1.pt", b"", "empty"),
        ("garbage_2.pt", b"definitely not a checkpoint\n" * 40, "not_a_checkpoint"),
    ],
)
def test_bad_files_fail_with_a_reason_and_the_worker_survives(worker, tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    pid = worker.pid
    out = worker.analyze(path, tmp_path)
    assert not out.ok and out.reason == reason and str(path) in out.message
    assert worker.pid == pid


def test_truncated_checkpoint_fails_as_truncated(worker, tmp_path):
    data = sac_bytes(step=3)
    path = tmp_path / "cut_3.pt"
    path.write_bytes(data[: len(data) * 2 // 3])
    out = worker.analyze(path, tmp_path)
    assert not out.ok and out.reason == "truncated"


class _Evil:
    """Unpickling this runs a shell command: the loader must never do it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_never_runs(worker, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_5.pt"
    torch.save({"actor": torch.nn.Linear(8, 8).state_dict(), "payload": _Evil(marker)}, path)
    out = worker.analyze(path, tmp_path)
    assert not out.ok and out.reason == "unsafe_pickle", out
    assert not marker.exists()  # os.system would have run before the worker answered


def test_symlink_outside_the_root_is_refused_without_reading_it(worker, tmp_path):
    root = tmp_path / "watched"
    root.mkdir()
    outside = save_sac_checkpoint(tmp_path / "elsewhere.pt", 1, hidden=8)
    (root / "link.pt").symlink_to(outside)
    out = worker.analyze(root / "link.pt", root)
    assert not out.ok and out.reason == "outside_watch"


def test_timeout_kills_and_replaces_the_worker(worker, limits, tmp_path):
    path = save_sac_checkpoint(tmp_path / "step_9.pt", 9, hidden=512)
    limits(timeout_seconds=0.01)
    old = worker.pid
    out = worker.analyze(path, tmp_path)
    assert not out.ok and out.reason == "timeout"
    with pytest.raises(ProcessLookupError):  # the old worker is gone (killed and reaped)
        os.kill(old, 0)
    limits()  # back to the generous timeout: the replacement works
    again = worker.analyze(path, tmp_path)
    assert again.ok and worker.pid != old


def test_memory_limit_gives_out_of_memory_and_a_fresh_worker(tmp_path):
    """A 3000x3000 layer needs ~70 MiB as float64 for its SVD alone; allow 16 MiB (the limit is
    the worker's for its life: sent once, when it starts)."""
    path = tmp_path / "big_1.pt"
    gen = torch.Generator().manual_seed(0)
    torch.save({"model": {"fc.weight": torch.randn(3000, 3000, generator=gen)}}, path)
    tight = AnalysisWorker(WorkerConfig(memory_limit_mb=16, timeout_seconds=120, threads=1, nice=5),
                           AnalysisOptions())
    try:
        tight.start()
        old = tight.pid
        out = tight.analyze(path, tmp_path)
        assert not out.ok and out.reason == "out_of_memory", out
        small = save_sac_checkpoint(tmp_path / "step_2.pt", 2, hidden=16)
        again = tight.analyze(small, tmp_path)
        assert again.ok and tight.pid != old, again
    finally:
        tight.stop()


# A model factory (the `analysis.dead_neurons.model_factory` hook: user code run inside the
# worker during the analysis) that marks that the analysis has reached it, then never returns.
# Killing the worker once the mark exists is killing it mid-analysis, on any machine.
BLOCKING_FACTORY = """
import pathlib, time

def build(network):
    if not pathlib.Path(__file__).with_name("block").exists():
        raise RuntimeError("not blocking now")  # the engine falls back to rebuilding the chain
    pathlib.Path(__file__).with_name("inside-" + network).touch()
    time.sleep(3600)  # the test kills this process long before
"""


def _when(condition, action):
    """Run `action` in another thread as soon as `condition()` holds; `.result()` re-raises."""
    def wait_then_act():
        wait_until(condition, timeout=120, what="the analysis to reach the model factory")
        action()

    return ThreadPoolExecutor(max_workers=1).submit(wait_then_act)


def test_killed_mid_analysis_is_replaced_and_shutdown_abandons_mid_analysis(tmp_path, monkeypatch):
    """One worker of its own for both (each start costs seconds): its replacement is the one
    abandoned, so the blocking factory must be importable by both (PYTHONPATH). Options are
    the worker's for its life, so the factory blocks only while the `block` file exists."""
    from alphawatch.service.worker import Abandoned

    (tmp_path / "blocking_factory.py").write_text(BLOCKING_FACTORY)
    paths = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    blocking = AnalysisOptions(model_factory="blocking_factory:build", networks=("actor",))
    inside = tmp_path / "inside-actor"
    block = tmp_path / "block"
    block.touch()
    w = AnalysisWorker(WorkerConfig(timeout_seconds=120), blocking)
    try:
        w.start()
        old = w.pid
        killer = _when(inside.exists, lambda: os.kill(old, signal.SIGKILL))
        out = w.analyze(save_sac_checkpoint(tmp_path / "step_4.pt", 4, hidden=16), tmp_path)
        killer.result()
        assert not out.ok and out.reason == "worker_crashed", out

        block.unlink()
        again = w.analyze(save_sac_checkpoint(tmp_path / "step_5.pt", 5, hidden=16), tmp_path)
        assert again.ok and w.pid != old

        inside.unlink()
        block.touch()
        abandon = _when(inside.exists, w.kill)  # what the daemon does on shutdown
        with pytest.raises(Abandoned):
            w.analyze(tmp_path / "step_5.pt", tmp_path)
        abandon.result()
        assert w.pid is None  # reaped, not replaced
    finally:
        w.stop()


def test_abandon_during_start_up(tmp_path):
    """A worker that never gets ready (stuck importing): kill() still ends the wait."""
    from alphawatch.service.worker import Abandoned

    stuck = tmp_path / "stuck-python"
    stuck.write_text("#!/bin/sh\nexec sleep 3600\n")
    stuck.chmod(0o755)
    w = AnalysisWorker(WorkerConfig(), AnalysisOptions(), python=str(stuck), startup_timeout=120)
    try:
        abandon = _when(lambda: w.pid is not None, w.kill)
        with pytest.raises(Abandoned, match="start-up"):
            w.start()
        abandon.result()
    finally:
        w.stop()


def test_the_daemon_main_process_never_imports_torch():
    code = (
        "import sys, alphawatch.service.daemon, alphawatch.service.worker, alphawatch.commands.run;"
        "bad = [m for m in ('torch', 'weightwatcher', 'safetensors', 'matplotlib') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_daemon_never_gives_one_layer_several_threads() -> None:
    """Next to a trainer that holds the cores, intra-op threads wait on each other: the
    worker keeps every layer single-threaded even with several analysis threads."""
    from alphawatch.service.worker_main import Worker

    before = torch.get_num_threads()
    try:
        worker = Worker({"threads": 2, "options": AnalysisOptions(threads=2).to_json()})
    finally:
        torch.set_num_threads(before)
    assert worker.options.threads == 2 and worker.options.intra_op_when_alone is False
