"""Build SAC-shaped networks and real checkpoint files for tests (plain functions, no pytest).

Why SAC: it is the motivating workload — several networks in one file (actor, twin critics,
their targets) plus optimizer state that must be ignored. Every network is an
`nn.Sequential` of `Linear` + `LeakyReLU`, so state-dict keys look like `0.weight`,
`2.weight`, `4.weight` (Linear layers at even indices):

- actor:    obs_dim -> hidden -> hidden -> 2 * act_dim   (mean and log_std)
- critic_*: obs_dim + act_dim -> hidden -> hidden -> 1    (Q value)

Everything is seeded, so the same arguments give bit-identical weights.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

SAC_NETWORK_NAMES = ("actor", "critic_1", "critic_2", "target_critic_1", "target_critic_2")


def mlp(sizes: list[int], negative_slope: float = 0.01) -> nn.Sequential:
    """Linear layers of the given widths with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(negative_slope))
    return nn.Sequential(*layers)


def sac_networks(
    obs_dim: int = 17, act_dim: int = 6, hidden: int = 256, seed: int = 0
) -> dict[str, nn.Module]:
    """actor, critic_1, critic_2, target_critic_1, target_critic_2 (targets copy their critics).

    The global torch RNG is left as it was, so callers' own seeding is not disturbed.
    """
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        actor = mlp([obs_dim, hidden, hidden, 2 * act_dim])
        critic_1 = mlp([obs_dim + act_dim, hidden, hidden, 1])
        critic_2 = mlp([obs_dim + act_dim, hidden, hidden, 1])
    finally:
        torch.random.set_rng_state(gen_state)
    target_1 = copy.deepcopy(critic_1)
    target_2 = copy.deepcopy(critic_2)
    return {
        "actor": actor,
        "critic_1": critic_1,
        "critic_2": critic_2,
        "target_critic_1": target_1,
        "target_critic_2": target_2,
    }


def sac_state_dicts(
    obs_dim: int = 17, act_dim: int = 6, hidden: int = 256, seed: int = 0
) -> dict[str, dict[str, torch.Tensor]]:
    """The networks of `sac_networks` as plain state dicts (detached clones, safe to mutate)."""
    nets = sac_networks(obs_dim=obs_dim, act_dim=act_dim, hidden=hidden, seed=seed)
    return {name: {k: v.detach().clone() for k, v in net.state_dict().items()} for name, net in nets.items()}


def optimizer_state_dict(net: nn.Module, lr: float = 3e-4) -> dict[str, Any]:
    """A real Adam state dict (one step taken, so it holds exp_avg tensors and a step count)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss = torch.stack([p.sum() for p in net.parameters()]).sum() * 0.0
    opt.zero_grad()
    loss.backward()
    opt.step()
    return opt.state_dict()


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """torch.save into a temp file in the same folder, fsync, then os.replace (never half-visible)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def sac_checkpoint_dict(step: int | None, seed: int = 0, **kw: int) -> dict[str, Any]:
    """The object `save_sac_checkpoint` writes: five state dicts, `step`, and an actor optimizer."""
    nets = sac_networks(seed=seed, **kw)
    obj: dict[str, Any] = {name: net.state_dict() for name, net in nets.items()}
    obj["step"] = step
    obj["optimizer_actor"] = optimizer_state_dict(nets["actor"])
    return obj


def save_sac_checkpoint(path: str | os.PathLike[str], step: int | None, seed: int = 0, **kw: int) -> Path:
    """Write `{"actor": sd, "critic_1": sd, ..., "step": step, "optimizer_actor": ...}` atomically.

    `kw` goes to `sac_networks` (obs_dim, act_dim, hidden). `step=None` stores no usable
    step, so readers fall back to the file name. Returns the path written.
    """
    return atomic_torch_save(sac_checkpoint_dict(step, seed=seed, **kw), path)
