"""`alphawatch run` end to end: a real daemon process, real files, real observers, real scrapes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch

from tests.factories import atomic_torch_save, save_sac_checkpoint
from tests.service.conftest import QUIET, sac_bytes, save_heavy_tailed_sac, slow_write
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def _done(rows, n=None):
    done = [r for r in rows if r["status"] == "done"]
    return len(done) == n if n is not None else bool(done)


def _settled(rows, n):
    return len(rows) == n and all(r["status"] in ("done", "failed") for r in rows)


def test_slow_writer_rename_hf_folder_and_restart_with_metrics_restored(tmp_path, daemon_factory):
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    assert d.wait_event("watch_started")["observer"] == "inotify"
    wait_until(lambda: d.get("/readyz")[0] == 200, timeout=30)
    assert d.get("/healthz")[0] == 200

    # 1. a slow writer: 12 chunks over ~4 s, in place
    slow = watch / "step_100.pt"
    slow_write(slow, sac_bytes(step=100, hidden=128), chunks=12, seconds=4.0)
    finished = time.time()
    # 2. a rename into place (Lightning-style temp name first)
    tmp = watch / ".tmp-step=200.ckpt.part"
    tmp.write_bytes(sac_bytes(step=200, hidden=32, seed=1))
    os.replace(tmp, watch / "step=200.ckpt")
    # 3. a Hugging Face checkpoint-N/ folder, trainer_state.json last
    from safetensors.torch import save_file

    from tests.factories import sac_state_dicts

    hf = watch / "checkpoint-300"
    hf.mkdir()
    actor = sac_state_dicts(hidden=32, seed=2)["actor"]
    save_file({f"actor.{k}": v.contiguous() for k, v in actor.items()}, str(hf / "model.safetensors"))
    (hf / "config.json").write_text("{}")
    time.sleep(3 * QUIET)
    (hf / "trainer_state.json").write_text(json.dumps({"global_step": 300}))

    rows = d.wait_rows(lambda rows: _done(rows, 3), timeout=90)
    assert sorted(r["step"] for r in rows) == [100, 200, 300]
    assert all(r["attempts"] == 1 for r in rows)
    analyzed = d.events("checkpoint_analyzed")
    assert sorted(e["path"] for e in analyzed) == sorted([str(slow), str(watch / "step=200.ckpt"), str(hf)])
    slow_row = next(r for r in rows if r["path"] == str(slow))
    assert slow_row["size"] == slow.stat().st_size and slow_row["seen_at"] >= finished

    # the gauges show the newest checkpoint: the HF folder, one flat state dict -> network "model"
    alpha_before = d.metric("alphawatch_alpha", network="model")
    assert alpha_before is not None and alpha_before > 0
    assert d.metric("alphawatch_checkpoints", status="done") == 3
    assert d.metric("alphawatch_checkpoint_step") == 300
    if shutil.which("promtool"):
        status, text = d.get("/metrics")
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

    assert d.terminate() == 0
    assert d.events("shutdown_complete")

    # restart: the gauges are back before any new checkpoint, and nothing is analyzed again
    d2 = daemon_factory(watch)
    wait_until(lambda: d2.get("/readyz")[0] == 200, timeout=30)
    assert d2.metric("alphawatch_alpha", network="model") == alpha_before
    assert d2.metric("alphawatch_checkpoints", status="done") == 3
    d2.wait_event("watch_started")
    time.sleep(4 * QUIET + 1.5)  # startup scan + a rescan have run over the same files
    assert d2.events("checkpoint_analyzed") == []
    assert [r["attempts"] for r in d2.rows()] == [1, 1, 1]
    assert d2.terminate() == 0


def test_burst_of_100_checkpoints_all_done(tmp_path, daemon_factory):
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    d.wait_event("worker_ready", timeout=90)
    for step in range(1, 101):
        save_sac_checkpoint(watch / f"step_{step:04d}.pt", step, hidden=8, obs_dim=4, act_dim=2)
    rows = d.wait_rows(lambda rows: _done(rows, 100), timeout=240)
    assert sorted(r["step"] for r in rows) == list(range(1, 101))
    assert all(r["attempts"] == 1 for r in rows)
    assert d.metric("alphawatch_checkpoints", status="done") == 100
    assert d.metric("alphawatch_checkpoint_step") == 100
    assert d.terminate() == 0


def test_kill_9_mid_analysis_then_restart_loses_nothing_and_repeats_nothing(tmp_path, daemon_factory):
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    d.wait_event("worker_ready", timeout=90)
    save_sac_checkpoint(watch / "step_1.pt", 1, hidden=16)
    d.wait_rows(lambda rows: _done(rows, 1))
    # a checkpoint slow enough to be caught in the middle of its analysis
    save_sac_checkpoint(watch / "step_2.pt", 2, hidden=1024)
    d.wait_rows(lambda rows: any(r["status"] == "analyzing" for r in rows), timeout=60)
    worker_pid = d.events("worker_ready")[-1]["pid"]
    d.kill9()
    wait_until(lambda: not _alive(worker_pid), timeout=10)  # the worker dies with the daemon

    d2 = daemon_factory(watch)
    assert d2.wait_event("ledger_opened")["requeued"] == 1
    rows = d2.wait_rows(lambda rows: _done(rows, 2), timeout=120)
    by_step = {r["step"]: r for r in rows}
    assert by_step[1]["attempts"] == 1  # done before the crash: never analyzed again
    done_attempts = [a for a in d2.attempts() if a["outcome"] == "done"]
    assert sorted(a["checkpoint_id"] for a in done_attempts) == sorted(r["id"] for r in rows)
    assert [e["path"] for e in d2.events("checkpoint_analyzed")] == [str(watch / "step_2.pt")]
    assert d2.terminate() == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is dead for our purposes
        return fh.read().split()[2] != "Z"


class _Evil:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_and_broken_files_fail_with_reasons_and_the_daemon_keeps_going(tmp_path, daemon_factory):
    watch = tmp_path / "ckpts"
    watch.mkdir()
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside.pt"
    save_sac_checkpoint(outside, 7, hidden=8)
    d = daemon_factory(watch, config={"state": {"max_attempts": 2}})
    d.wait_event("worker_ready", timeout=90)
    atomic_torch_save({"actor": torch.nn.Linear(8, 8).state_dict(), "x": _Evil(marker)}, watch / "evil_1.pt")
    data = sac_bytes(step=2)
    (watch / "cut_2.pt").write_bytes(data[: len(data) // 2])
    (watch / "zero_3.pt").write_bytes(b"")
    (watch / "garbage_4.pt").write_bytes(b"not a checkpoint at all\n" * 50)
    (watch / "link_5.pt").symlink_to(outside)
    rows = d.wait_rows(lambda rows: _settled(rows, 5), timeout=90)
    reasons = {os.path.basename(r["path"]): (r["status"], r["reason"]) for r in rows}
    assert reasons == {
        "evil_1.pt": ("failed", "unsafe_pickle"),
        "cut_2.pt": ("failed", "truncated"),
        "zero_3.pt": ("failed", "empty"),
        "garbage_4.pt": ("failed", "not_a_checkpoint"),
        "link_5.pt": ("failed", "outside_watch"),
    }
    assert not marker.exists()  # the pickle's code never ran
    assert d.metric("alphawatch_checkpoint_failures_total", reason="unsafe_pickle") == 1
    assert d.metric("alphawatch_checkpoint_failures_total", reason="outside_watch") == 1
    assert d.metric("alphawatch_checkpoint_failures_total", reason="truncated") == 2  # bounded retries
    assert d.metric("alphawatch_checkpoints", status="failed") == 5
    # still alive and still analyzing
    save_sac_checkpoint(watch / "good_6.pt", 6, hidden=16)
    d.wait_rows(lambda rows: _done(rows, 1))
    assert d.get("/readyz")[0] == 200
    assert d.terminate() == 0


def test_polling_observer_and_a_folder_deleted_and_recreated(tmp_path, daemon_factory):
    watch = tmp_path / "later"  # does not exist yet: waited for
    d = daemon_factory(watch, extra=["--observer", "polling"])
    wait_until(lambda: d.get("/readyz")[0] == 200, timeout=30)
    assert "waiting" in d.get("/readyz")[1]
    watch.mkdir()
    assert d.wait_event("watch_started")["observer"] == "polling"
    save_sac_checkpoint(watch / "step_1.pt", 1, hidden=16)
    d.wait_rows(lambda rows: _done(rows, 1))
    shutil.rmtree(watch)
    d.wait_event("watch_folder_lost", timeout=30)
    watch.mkdir()
    d.wait_event("watch_started", count=2, timeout=30)
    save_sac_checkpoint(watch / "step_2.pt", 2, hidden=16)
    rows = d.wait_rows(lambda rows: _done(rows, 2))
    assert sorted(r["step"] for r in rows) == [1, 2]
    assert d.terminate() == 0


def test_stop_file_written_exactly_when_the_rule_fires_and_never_half_visible(tmp_path, daemon_factory):
    watch = tmp_path / "ckpts"
    watch.mkdir()
    # the guide's rule on the actor: one over-fitted checkpoint fires it
    d = daemon_factory(watch, config={"stop": {"rule": "guide", "networks": ["actor"], "threshold": 2.0}})
    d.wait_event("worker_ready", timeout=90)

    seen: list[dict] = []
    partial: list[str] = []
    stop_reading = threading.Event()

    def reader() -> None:  # a training job polling the stop file in a tight loop
        while not stop_reading.is_set():
            try:
                text = d.stop_file.read_text()
            except FileNotFoundError:
                continue
            try:
                seen.append(json.loads(text))
            except ValueError:
                partial.append(text)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        save_sac_checkpoint(watch / "step_1.pt", 1, hidden=64)  # default init: alpha well above 2
        d.wait_rows(lambda rows: _done(rows, 1))
        assert not d.stop_file.exists() and d.metric("alphawatch_stop_signal") == 0
        save_heavy_tailed_sac(watch / "step_2.pt", 2)  # alpha ~1.5
        d.wait_rows(lambda rows: _done(rows, 2))
        wait_until(lambda: seen, timeout=10)
        first = d.stop_file.read_bytes()
        save_heavy_tailed_sac(watch / "step_3.pt", 3, seed=1)  # still below: never rewritten
        d.wait_rows(lambda rows: _done(rows, 3))
        time.sleep(0.5)
    finally:
        stop_reading.set()
        thread.join(timeout=5)
    assert partial == []
    payload = json.loads(first)
    assert payload["stop"] is True and payload["network"] == "actor" and payload["run"] == "run1"
    assert payload["value"] < 2.0 and payload["threshold"] == 2.0
    assert payload["step"] == 2 and payload["checkpoint"].endswith("step_2.pt")
    assert d.stop_file.read_bytes() == first
    assert len(d.events("stop_written")) == 1
    assert d.metric("alphawatch_stop_signal") == 1
    assert all(item == payload for item in seen)
    assert d.terminate() == 0


def test_config_error_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("watch:\n  quiet_period_secondz: 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "alphawatch", "run", "--config", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "quiet_period_secondz" in lines[0]


def test_a_taken_metrics_port_is_one_log_line_and_exit_2(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "alphawatch", "run", "--watch", str(tmp_path / "w"),
             "--state", str(tmp_path / "ledger.sqlite3"), "--metrics-host", "127.0.0.1",
             "--metrics-port", str(port), "--log-format", "json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2
    lines = [json.loads(line) for line in proc.stderr.splitlines()]  # JSON only, even now
    failed = [line for line in lines if line["event"] == "daemon_start_failed"]
    assert len(failed) == 1 and str(port) in failed[0]["error"] and failed[0]["level"] == "error"


def test_sigint_shuts_down_cleanly(tmp_path, daemon_factory):
    import signal

    d = daemon_factory(tmp_path / "ckpts")
    d.wait_event("worker_ready", timeout=90)
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(timeout=60) == 0
    assert d.events("shutdown_requested")[0]["signal"] == "SIGINT"
    assert d.events("shutdown_complete")


def test_real_lightning_trainer_writing_into_the_watched_folder(tmp_path, daemon_factory):
    """Lightning's ModelCheckpoint as the producer: every epoch analyzed once; the
    `last.ckpt` symlink (save_last="link") is not analyzed a second time."""
    pytest.importorskip("lightning")
    code = """
import sys, torch, lightning as L
from torch.utils.data import DataLoader, TensorDataset
class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.actor = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                                         torch.nn.ReLU(), torch.nn.Linear(32, 2))
    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.actor(x), y)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)
g = torch.Generator().manual_seed(0)
xs, ys = torch.randn(64, 8, generator=g), torch.randn(64, 2, generator=g)
data = DataLoader(TensorDataset(xs, ys), batch_size=16)
ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=sys.argv[1], save_top_k=-1, save_last="link",
                                           every_n_epochs=1)
L.Trainer(max_epochs=3, callbacks=[ckpt], logger=False, enable_progress_bar=False,
          enable_model_summary=False, default_root_dir=sys.argv[2]).fit(M(), data)
"""
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    d.wait_event("worker_ready", timeout=90)
    subprocess.run([sys.executable, "-c", code, str(watch), str(tmp_path / "root")], check=True, timeout=300,
                   capture_output=True)  # fmt: skip
    assert (watch / "last.ckpt").is_symlink()
    rows = d.wait_rows(lambda rows: _done(rows, 3), timeout=90)
    time.sleep(4 * QUIET + 1.0)  # a rescan has passed over last.ckpt too
    rows = d.rows()
    names = sorted(os.path.basename(r["path"]) for r in rows)
    assert names == ["epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt", "epoch=2-step=12.ckpt"]
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in rows)
    assert [r["step"] for r in sorted(rows, key=lambda r: r["id"])] == [4, 8, 12]
    assert d.terminate() == 0
