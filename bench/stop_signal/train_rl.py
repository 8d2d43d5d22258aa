"""SB3 SAC runs, checkpointed the way users do it: `CheckpointCallback` zips
(`rl_model_<steps>_steps.zip`), SB3 defaults otherwise.

Beside each zip the evaluation return is recorded (`rl_model_<steps>_steps.eval.json`):
`n_eval_episodes` deterministic episodes on a separately seeded environment, right after the
zip is written, so the ground truth belongs to exactly the weights in that zip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.stop_signal.plan import RunSpec


def train(spec: RunSpec, run_dir: Path) -> None:
    """Train one SAC run into `run_dir`; returns when `steps` environment steps are done."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    p: dict[str, Any] = spec.params
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    eval_env = Monitor(gym.make(spec.variant))
    eval_env.reset(seed=10_000 + spec.seed)

    class EvalBeside(BaseCallback):
        """Writes the evaluation return next to the zip CheckpointCallback just saved."""

        def _on_step(self) -> bool:
            if self.n_calls % p["save_every"] == 0:
                returns, lengths = evaluate_policy(self.model, eval_env, n_eval_episodes=p["eval_episodes"],
                                                   deterministic=True, return_episode_rewards=True)
                assert isinstance(returns, list) and isinstance(lengths, list)
                steps = self.num_timesteps
                record = {"step": steps, "eval_return": float(sum(returns) / len(returns)),
                          "eval_returns": [float(r) for r in returns],
                          "eval_lengths": [int(n) for n in lengths]}
                (ckpt_dir / f"rl_model_{steps}_steps.eval.json").write_text(json.dumps(record))
            return True

    model = SAC("MlpPolicy", spec.variant, seed=spec.seed, device="cpu", verbose=0)
    saver = CheckpointCallback(save_freq=p["save_every"], save_path=str(ckpt_dir), name_prefix="rl_model")
    model.learn(total_timesteps=p["steps"], callback=CallbackList([saver, EvalBeside()]))
