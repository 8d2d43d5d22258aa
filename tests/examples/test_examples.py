"""The example training jobs: checkpoint layout, atomic writes, and obeying the stop signal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from alphawatch.service.stop_signal import write_stop_signal

from tests.examples.helpers import EXAMPLES, run_example
from tests.support import as_signal

SAC_NETWORKS = {"actor", "critic_1", "critic_2", "target_critic_1", "target_critic_2"}
SIGNAL = {
    "stop": True,
    "reason": "alpha of actor is 1.874, below the threshold 2 at the newest checkpoint (step 1200)",
    "run": "sac",
    "network": "actor",
    "metric": "alpha",
    "value": 1.874,
    "threshold": 2.0,
    "checkpoint": "ckpt/generation_12.pt",
    "step": 1200,
    "recommended_checkpoint": "ckpt/generation_11.pt",
    "created_at": "2026-11-26T01:00:00Z",
    "version": 1,
}


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)  # what the daemon can read


def test_train_sac_writes_the_guide_layout_and_exits_0(tmp_path: Path) -> None:
    out = run_example(
        "train_sac.py", "--max-steps", "300", "--save-every", "100", "--learning-starts", "100",
        "--checkpoint-dir", "ckpt", "--hidden", "64", "--batch-size", "32", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "finished 300 steps without a stop signal" in out.stdout
    ckpt = tmp_path / "ckpt"
    names = {p.name for p in ckpt.iterdir()}
    # no temp file left behind; best_model.pt once an episode (200 steps) has ended
    assert names == {"generation_1.pt", "generation_2.pt", "generation_3.pt", "best_model.pt"}
    for n in (1, 2, 3):
        state = load(ckpt / f"generation_{n}.pt")
        assert SAC_NETWORKS <= set(state)
        assert state["step"] == 100 * n
        assert {"actor_optimizer", "critic_optimizer", "alpha_optimizer"} <= set(state)
        assert set(state["actor"]) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
        assert state["actor"]["2.weight"].shape == (64, 64)
        assert state["critic_1"]["0.weight"].shape == (64, 3 + 1)  # Pendulum: obs 3, action 1
    best = load(ckpt / "best_model.pt")
    assert best["step"] in (200, 300) and best["mean_return"] is not None
    # the critics were trained: they moved away from their targets' Polyak averages
    last = load(ckpt / "generation_3.pt")
    assert not torch.equal(last["critic_1"]["0.weight"], last["target_critic_1"]["0.weight"])


@pytest.mark.parametrize("script", ["train_sac.py", "overfit_mlp.py"])
def test_an_existing_stop_file_ends_training_at_once_naming_the_reason(tmp_path: Path, script: str) -> None:
    assert write_stop_signal(tmp_path / "signals" / "alphawatch-stop.json", as_signal(SIGNAL))
    out = run_example(script, "--max-steps", "300", "--save-every", "100", "--checkpoint-dir", "ckpt",
                      cwd=tmp_path)  # default --stop-file signals/alphawatch-stop.json
    assert out.returncode == 0, out.stderr
    assert "alphawatch stop signal at step 0: alpha of actor is 1.874, below the threshold 2" in out.stdout
    assert "recommended checkpoint: ckpt/generation_11.pt" in out.stdout
    assert "alphawatch signal clear --stop-file signals/alphawatch-stop.json" in out.stdout
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())


def test_overfit_mlp_writes_one_network_per_checkpoint(tmp_path: Path) -> None:
    out = run_example(
        "overfit_mlp.py", "--max-steps", "300", "--save-every", "100", "--checkpoint-dir", "ckpt",
        "--hidden", "64", "--samples", "200", "--val-samples", "50", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "finished 300 steps without a stop signal" in out.stdout
    ckpt = tmp_path / "ckpt"
    assert {p.name for p in ckpt.iterdir()} == {"generation_1.pt", "generation_2.pt", "generation_3.pt",
                                                 "best_model.pt"}
    state = load(ckpt / "generation_2.pt")
    assert state["step"] == 200
    assert set(state["model"]) == {f"{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")}
    assert state["model"]["2.weight"].shape == (64, 64)
    assert 0.0 <= state["train_accuracy"] <= 1.0


@pytest.mark.parametrize("script", ["train_sac.py", "overfit_mlp.py"])
@pytest.mark.parametrize("bad", [["--max-steps", "0"], ["--save-every", "-1"]])
def test_bad_options_are_a_usage_error(tmp_path: Path, script: str, bad: list[str]) -> None:
    out = run_example(script, *bad, cwd=tmp_path)
    assert out.returncode == 2
    assert "must be >= 1" in out.stderr


@pytest.mark.parametrize(
    ("script", "extra"),
    [
        ("train_sac.py", ["--learning-starts", "100", "--hidden", "64", "--batch-size", "32"]),
        ("overfit_mlp.py", ["--hidden", "64"]),
    ],
)
def test_a_signal_written_mid_run_stops_training_at_the_next_step(
    tmp_path: Path, script: str, extra: list[str]
) -> None:
    """Plays the daemon: signal once the first checkpoint exists; training must stop by itself."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), "--max-steps", "1000000", "--save-every", "100",
         "--checkpoint-dir", "ckpt", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ckpt" / "generation_1.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no first checkpoint within 120 s"
            time.sleep(0.05)
        assert write_stop_signal(tmp_path / "signals" / "alphawatch-stop.json", as_signal(SIGNAL))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    match = re.search(r"alphawatch stop signal at step (\d+): (.*)", out)
    assert match, out
    assert 100 <= int(match.group(1)) < 1_000_000
    assert match.group(2) == (
        f"{SIGNAL['reason']} (recommended checkpoint: {SIGNAL['recommended_checkpoint']})"
    )


@pytest.mark.parametrize("name", ["train_sac.py", "overfit_mlp.py"])
def test_help_shows_the_defaults(name: str, tmp_path: Path) -> None:
    out = run_example(name, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # argparse wraps lines at the terminal width
    assert "(default: checkpoints)" in text and "(default: 0)" in text  # --checkpoint-dir, --seed
