"""End to end, no mocks: the daemon watches a real training job and the job halts itself.

`alphawatch run` watches a fresh folder with its default stop rule; `examples/overfit_mlp.py`
trains next to it and writes a checkpoint every 500 steps. Each checkpoint must be analyzed
(ledger and /metrics), the stop file must appear exactly when the rule fires, and the
training process must exit 0 on its own, naming the reason, within a bounded time.

The default rule (`share_below`): at least half of the plain model's fitted layers have
alpha below 2.0, at two distinct checkpoints in a row. This run really gets there. Measured
with `alphawatch analyze` on the example's defaults (seed 0, deterministic), the alphas of
its three fitted hidden layers every 500 steps:
    step 5000: 1.80 2.03 2.40 (1 of 3 below 2)   5500: 1.75 1.94 2.29 (2 of 3)
    6000: 1.71 1.88 2.16 (2 of 3)
so the rule fires at step 6000 (about 40-80 s of training on 2 busy cores). The test does
not hard-code that step: it recomputes the rule from the layer alphas in the daemon's own
ledger, so a slightly different trajectory on another machine still has to obey it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from alphawatch.client import StopSignal
from alphawatch.service.ledger import Ledger

from tests.examples.helpers import EXAMPLES, REPO
from tests.support import free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

THRESHOLD = 2.0
RUN = "e2e"
TRAINING_LIMIT_S = 240  # the training job must halt itself well within this


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition (labels in any order)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            return float(match.group(2))
    return None


def share_below(network: dict) -> float:
    """The share of the network's fitted layers with alpha below the threshold (the rule's statistic)."""
    alphas = [layer["alpha"] for layer in network["layers"] if layer["status"] == "ok"]
    return sum(a < THRESHOLD for a in alphas) / len(alphas)


def test_training_halts_itself_when_the_daemon_signals(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    stop_file = tmp_path / "signals" / "alphawatch-stop.json"
    ledger_path = tmp_path / "ledger.sqlite"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "alphawatch", "run", "--watch", str(ckpt), "--run", RUN,
         "--state", str(ledger_path), "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
         "--stop-file", str(stop_file), "--log-format", "json"],
        cwd=tmp_path, env=env, stdout=daemon_log, stderr=subprocess.STDOUT,
    )
    training = None
    try:
        def ready() -> bool:
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            try:
                return http_get(f"{base}/readyz").startswith("ready")
            except OSError:
                return False

        wait_until(ready, 60, 0.2, "the daemon's /readyz")

        started = time.monotonic()
        training = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "overfit_mlp.py"), "--checkpoint-dir", str(ckpt),
             "--stop-file", str(stop_file), "--max-steps", "30000", "--save-every", "500"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            out, err = training.communicate(timeout=TRAINING_LIMIT_S)
        except subprocess.TimeoutExpired:
            training.kill()
            out, err = training.communicate()
            pytest.fail(f"training did not halt within {TRAINING_LIMIT_S}s:\n{out[-2000:]}")
        elapsed = time.monotonic() - started

        # 1. The training job stopped itself, exit 0, naming the reason.
        assert training.returncode == 0, err
        assert "without a stop signal" not in out, "the rule never fired: " + out[-2000:]
        signal_ = StopSignal(stop_file).read()
        assert signal_ is not None and signal_.stop
        assert "alphawatch stop signal at step" in out
        assert signal_.reason in out
        assert f"recommended checkpoint: {signal_.recommended_checkpoint}" in out
        print(f"training halted by itself after {elapsed:.0f}s: {signal_.describe()}")

        # 2. Every checkpoint it wrote gets analyzed (the daemon may still be catching up).
        files = sorted(p for p in ckpt.iterdir() if p.suffix == ".pt")
        assert files, "no checkpoint written"
        assert not [p for p in ckpt.iterdir() if p.name.startswith(".")], "temp file left behind"

        def all_done() -> str | None:
            text = http_get(f"{base}/metrics")
            done = metric(text, "alphawatch_checkpoints", run=RUN, status="done")
            return text if done == len(files) else None

        text = wait_until(all_done, 120, 0.2, f"{len(files)} checkpoints done in /metrics")
        assert metric(text, "alphawatch_checkpoints", run=RUN, status="failed") == 0
        assert metric(text, "alphawatch_stop_signal", run=RUN) == 1
        assert metric(text, "alphawatch_alpha", run=RUN, network="model") is not None

        with Ledger(ledger_path) as ledger:
            rows = {Path(r.path).name: r for r in ledger.distinct(RUN)}
            recorded = ledger.stop_recorded(RUN)
            best = ledger.find(RUN, str(ckpt / "best_model.pt"))
            original = ledger.get(best.copy_of) if best is not None and best.copy_of else None
        # best_model.pt holds the same weights as one generation: a copy, counted once
        assert set(rows) == {p.name for p in files if p.name != "best_model.pt"}
        assert original is not None and Path(original.path).name.startswith("generation_")
        generations = sorted(
            (r.result["step"], share_below(r.result["networks"]["model"]), name)
            for name, r in rows.items() if name.startswith("generation_")
        )

        # 3. The stop file appeared exactly when the rule fired: at the second checkpoint in a
        #    row where at least half the layers are below 2, with that checkpoint's own numbers.
        fired = next((generations[i] for i in range(1, len(generations))
                      if generations[i - 1][1] >= 0.5 and generations[i][1] >= 0.5), None)
        assert fired is not None, f"the rule never held twice in a row: {generations}"
        step, share, name = fired
        assert Path(signal_.checkpoint).name == name
        assert signal_.step == step
        assert signal_.value == pytest.approx(share)
        assert signal_.threshold == 0.5 and signal_.network == "model"
        assert signal_.extra["rule"] == "share_below" and signal_.extra["alpha_threshold"] == THRESHOLD
        earlier = [g for g in generations if g[0] < step]
        assert not any(a[1] >= 0.5 and b[1] >= 0.5 for a, b in zip(earlier, earlier[1:], strict=False))
        assert recorded is not None and recorded["checkpoint"] == signal_.checkpoint
        assert json.loads(stop_file.read_text())["stop"] is True
        # ... and training stopped at its next check: it polls every step, so at most the
        #     checkpoint being written when the file appeared can be newer than the file.
        stopped_at = int(re.search(r"alphawatch stop signal at step (\d+)", out).group(1))
        assert stopped_at >= step
        signalled_ns = stop_file.stat().st_mtime_ns
        later = [p.name for p in files
                 if p.name.startswith("generation_") and p.stat().st_mtime_ns > signalled_ns]
        assert len(later) <= 1, later
    finally:
        if training is not None and training.poll() is None:
            training.kill()
        daemon.send_signal(signal.SIGTERM)
        try:
            code = daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = "killed after 30s"
        daemon_log.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()[-3000:]
