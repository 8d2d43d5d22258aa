"""The shipped examples, run unchanged as users run them, then given a ground truth.

`examples/train_sac.py` (plain-PyTorch SAC on Pendulum-v1) and `examples/overfit_mlp.py`
run as subprocesses with their defaults and a stop file that never appears (no daemon), so
they train to the end. Afterwards each `generation_<n>.pt` gets a sidecar with the ground
truth, computed with the examples' own code: for SAC the deterministic evaluation return of
the saved actor (the example records only its training-episode return); for the MLP the
held-out loss and accuracy on the example's own held-out set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from bench.stop_signal.plan import RunSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example_module(script: str) -> ModuleType:
    """Import an example script as a module (its `_shared` sits next to it)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"alphawatch_example_{script}", EXAMPLES / f"{script}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_script(script: str, spec: RunSpec, run_dir: Path) -> None:
    ckpt_dir = run_dir / "checkpoints"
    args = [sys.executable, str(EXAMPLES / f"{script}.py"), "--checkpoint-dir", str(ckpt_dir),
            "--stop-file", str(run_dir / "no-daemon-stop.json"), "--seed", str(spec.seed),
            "--max-steps", str(spec.params["max_steps"])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(run_dir / "train.log", "w") as log:
        subprocess.run(args, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)


def _generations(ckpt_dir: Path) -> list[Path]:
    return sorted(ckpt_dir.glob("generation_*.pt"), key=lambda p: int(p.stem.split("_")[1]))


def _sac_truth(spec: RunSpec, ckpt_dir: Path, episodes: int = 5) -> None:
    import gymnasium as gym

    sac = _example_module("train_sac")
    env = gym.make("Pendulum-v1")
    env.reset(seed=10_000 + spec.seed)
    obs_space, act_space = env.observation_space, env.action_space
    assert isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)
    for path in _generations(ckpt_dir):
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        agent = sac.SAC(obs_space.shape[0], act_space.shape[0], float(act_space.high[0]),
                        hidden=state["actor"]["0.weight"].shape[0])
        agent.actor.load_state_dict(state["actor"])
        returns = []
        for _ in range(episodes):
            obs, _ = env.reset()
            total, done = 0.0, False
            while not done:
                with torch.no_grad():
                    act = agent.policy(torch.as_tensor(obs, dtype=torch.float32), deterministic=True)[0]
                obs, rew, terminated, truncated, _ = env.step(act.numpy())
                total, done = total + float(rew), terminated or truncated
            returns.append(total)
        record = {"step": state["step"], "eval_return": sum(returns) / len(returns), "eval_returns": returns,
                  "train_mean_return": state.get("mean_return")}
        path.with_suffix(".eval.json").write_text(json.dumps(record))


def _overfit_truth(spec: RunSpec, ckpt_dir: Path) -> None:
    from torch.nn import functional as F

    ex = _example_module("overfit_mlp")
    args = ex.parse_args(["--seed", str(spec.seed)])
    x, y, x_val, y_val = ex.make_data(args)
    model = ex.make_model(args)
    for path in _generations(ckpt_dir):
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        with torch.no_grad():
            out, out_val = model(x), model(x_val)
        record = {"step": state["step"], "train_loss": float(F.cross_entropy(out, y)),
                  "train_acc": float((out.argmax(1) == y).float().mean()),
                  "val_loss": float(F.cross_entropy(out_val, y_val)),
                  "val_acc": float((out_val.argmax(1) == y_val).float().mean())}
        path.with_suffix(".metrics.json").write_text(json.dumps(record))


def train(spec: RunSpec, run_dir: Path) -> None:
    """Run the example named by `spec.family`, then write its ground-truth sidecars."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if spec.family == "example_sac":
        _run_script("train_sac", spec, run_dir)
        _sac_truth(spec, run_dir / "checkpoints")
    elif spec.family == "example_overfit":
        _run_script("overfit_mlp", spec, run_dir)
        _overfit_truth(spec, run_dir / "checkpoints")
    else:
        raise ValueError(f"not an example: {spec.family}")
