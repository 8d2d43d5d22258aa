"""A small Soft Actor-Critic in plain PyTorch on Gymnasium's Pendulum-v1, watched by alphawatch.

What it shows: a real training job that (1) writes a checkpoint every ``--save-every``
environment steps as ``generation_<n>.pt`` plus ``best_model.pt`` — each written to a temp
file and renamed into place, so the daemon never reads half a file — and (2) polls the
alphawatch stop signal every step and exits 0, naming the reason, when it appears.

    alphawatch run --watch checkpoints &          # the daemon, next to training
    python examples/train_sac.py --checkpoint-dir checkpoints

Checkpoint layout (one entry per network, as alphawatch groups them):
    {"actor": sd, "critic_1": sd, "critic_2": sd, "target_critic_1": sd, "target_critic_2": sd,
     "step": env steps, "actor_optimizer": ..., "critic_optimizer": ..., "alpha_optimizer": ...,
     "log_alpha": float, "mean_return": float | None}
Every network is an ``nn.Sequential`` of Linear + LeakyReLU (keys ``0.weight``, ``2.weight``, ...).
CPU-friendly: one thread, defaults train 20k steps in a few minutes.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections import deque
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import (  # noqa: E402
    add_common_arguments,
    check_positive,
    limit_threads,
    save_atomic,
    stop_requested,
)
from alphawatch.client import StopSignal  # noqa: E402

NETWORKS = ("actor", "critic_1", "critic_2", "target_critic_1", "target_critic_2")


def mlp(sizes: list[int], negative_slope: float = 0.01) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(negative_slope))
    return nn.Sequential(*layers)


class ReplayBuffer:
    """Fixed-size ring buffer of transitions, sampled uniformly."""

    def __init__(self, obs_dim: int, act_dim: int, size: int, rng: np.random.Generator) -> None:
        self.obs = np.zeros((size, obs_dim), np.float32)
        self.next_obs = np.zeros((size, obs_dim), np.float32)
        self.act = np.zeros((size, act_dim), np.float32)
        self.rew = np.zeros(size, np.float32)
        self.done = np.zeros(size, np.float32)
        self.size, self.ptr, self.full, self.rng = size, 0, False, rng

    def add(self, obs: np.ndarray, act: np.ndarray, rew: float, next_obs: np.ndarray, done: bool) -> None:
        i = self.ptr
        self.obs[i], self.act[i], self.rew[i], self.next_obs[i], self.done[i] = obs, act, rew, next_obs, done
        self.ptr = (i + 1) % self.size
        self.full = self.full or self.ptr == 0

    def sample(self, batch: int) -> tuple[torch.Tensor, ...]:
        idx = self.rng.integers(0, self.size if self.full else self.ptr, batch)
        return tuple(
            torch.as_tensor(a[idx]) for a in (self.obs, self.act, self.rew, self.next_obs, self.done)
        )


class SAC:
    """Soft Actor-Critic (Haarnoja et al. 2018) with twin critics and a learned temperature."""

    def __init__(self, obs_dim: int, act_dim: int, act_limit: float, hidden: int, lr: float = 3e-4) -> None:
        self.actor = mlp([obs_dim, hidden, hidden, 2 * act_dim])  # mean and log-std
        self.critic_1 = mlp([obs_dim + act_dim, hidden, hidden, 1])
        self.critic_2 = mlp([obs_dim + act_dim, hidden, hidden, 1])
        self.target_critic_1 = copy.deepcopy(self.critic_1).requires_grad_(False)
        self.target_critic_2 = copy.deepcopy(self.critic_2).requires_grad_(False)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=lr)
        critic_params = [*self.critic_1.parameters(), *self.critic_2.parameters()]
        self.critic_optimizer = torch.optim.Adam(critic_params, lr=lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=lr)
        self.act_limit, self.target_entropy = act_limit, -float(act_dim)
        self.gamma, self.tau = 0.99, 0.005

    def policy(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Tanh-squashed Gaussian: action in [-limit, limit] and its log-probability."""
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        std = log_std.clamp(-20.0, 2.0).exp()
        dist = torch.distributions.Normal(mean, std)
        u = mean if deterministic else dist.rsample()
        # log-prob of tanh(u), numerically stable form of log(1 - tanh(u)^2)
        logp = dist.log_prob(u).sum(-1) - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return torch.tanh(u) * self.act_limit, logp

    @staticmethod
    def q(critic: nn.Module, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return critic(torch.cat([obs, act], dim=-1)).squeeze(-1)

    def update(self, batch: tuple[torch.Tensor, ...]) -> None:
        obs, act, rew, next_obs, done = batch
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_act, next_logp = self.policy(next_obs)
            next_q = torch.min(self.q(self.target_critic_1, next_obs, next_act),
                               self.q(self.target_critic_2, next_obs, next_act))
            target = rew + self.gamma * (1 - done) * (next_q - alpha * next_logp)
        critic_loss = (F.mse_loss(self.q(self.critic_1, obs, act), target)
                       + F.mse_loss(self.q(self.critic_2, obs, act), target))
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        new_act, logp = self.policy(obs)
        q_new = torch.min(self.q(self.critic_1, obs, new_act), self.q(self.critic_2, obs, new_act))
        actor_loss = (alpha * logp - q_new).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()  # critics' grads from this are cleared before their next step
        self.actor_optimizer.step()

        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()

        with torch.no_grad():
            pairs = ((self.critic_1, self.target_critic_1), (self.critic_2, self.target_critic_2))
            for net, target_net in pairs:
                for p, tp in zip(net.parameters(), target_net.parameters(), strict=True):
                    tp.mul_(1 - self.tau).add_(p, alpha=self.tau)

    def checkpoint(self, step: int, mean_return: float | None) -> dict:
        state: dict = {name: getattr(self, name).state_dict() for name in NETWORKS}
        state.update(
            step=step,
            actor_optimizer=self.actor_optimizer.state_dict(),
            critic_optimizer=self.critic_optimizer.state_dict(),
            alpha_optimizer=self.alpha_optimizer.state_dict(),
            log_alpha=float(self.log_alpha.detach()),
            mean_return=mean_return,
        )
        return state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_arguments(parser, max_steps=20_000, save_every=1_000, hidden=256, batch_size=256)
    parser.add_argument("--learning-starts", type=int, default=1_000,
                        help="random actions (no updates) for this many steps first")
    parser.add_argument("--env", default="Pendulum-v1", help="a Gymnasium task with a Box action space")
    args = parser.parse_args(argv)
    check_positive(parser, args, "max_steps", "save_every", "hidden", "batch_size")
    if args.learning_starts < 0:
        parser.error("--learning-starts must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    env = gym.make(args.env)
    if not isinstance(env.action_space, gym.spaces.Box):
        print(f"train_sac.py: {args.env} has no continuous (Box) action space", file=sys.stderr)
        return 2
    env.action_space.seed(args.seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = SAC(obs_dim, act_dim, float(env.action_space.high[0]), args.hidden)
    buffer = ReplayBuffer(obs_dim, act_dim, min(args.max_steps, 1_000_000), rng)
    stop = StopSignal(args.stop_file)
    ckpt_dir: Path = args.checkpoint_dir
    print(f"SAC on {args.env}: {args.max_steps} steps, checkpoint every {args.save_every} "
          f"into {ckpt_dir}/, obeying {args.stop_file}", flush=True)

    obs, _ = env.reset(seed=args.seed)
    returns: deque[float] = deque(maxlen=10)
    episode_return, best, started = 0.0, -math.inf, time.monotonic()
    for step in range(args.max_steps):
        if stop_requested(stop, step):
            return 0
        if step < args.learning_starts:
            act = env.action_space.sample()
        else:
            with torch.no_grad():
                act = agent.policy(torch.as_tensor(obs, dtype=torch.float32))[0].numpy()
        next_obs, rew, terminated, truncated, _ = env.step(act)
        buffer.add(obs, act, float(rew), next_obs, terminated)  # time limits are not terminal
        obs, episode_return = next_obs, episode_return + float(rew)
        if terminated or truncated:
            returns.append(episode_return)
            obs, episode_return = env.reset()[0], 0.0
        if step + 1 >= args.learning_starts:
            agent.update(buffer.sample(args.batch_size))
        if (step + 1) % args.save_every == 0:
            mean_return = float(np.mean(returns)) if returns else None
            generation = (step + 1) // args.save_every
            state = agent.checkpoint(step + 1, mean_return)
            save_atomic(state, ckpt_dir / f"generation_{generation}.pt")
            note = ""
            if mean_return is not None and mean_return > best:
                best = mean_return
                save_atomic(state, ckpt_dir / "best_model.pt")
                note = " (new best_model.pt)"
            shown = "n/a" if mean_return is None else f"{mean_return:8.1f}"
            print(f"step {step + 1:7d}  mean return (last {len(returns)} episodes) {shown}  "
                  f"saved generation_{generation}.pt{note}  [{time.monotonic() - started:.0f}s]", flush=True)
    if stop_requested(stop, args.max_steps):
        return 0
    print(f"finished {args.max_steps} steps without a stop signal", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
