"""Checkpoints with a known spectrum, for the deployment end-to-end tests.

An overfit network is made from real weights, not by moving a threshold: every Linear weight
becomes W = U diag(s) V^T with s^2 following an exact power law p(x) ~ x^-exponent, so
WeightWatcher's power-law fit of the eigenvalue tail returns alpha close to `exponent`
(~1.5 for 1.5, checked against alphawatch's engine: every SAC layer between 1.50 and 1.57).
torch is imported inside the functions so collecting these tests stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def heavy_tailed_weight(shape: tuple[int, ...], exponent: float, seed: int) -> Any:
    """A (rows, cols) float32 matrix whose eigenvalues s^2 are Pareto quantiles of `exponent`."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    rows, cols = shape
    k = min(rows, cols)
    u, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen))
    # quantiles of a Pareto law with pdf exponent `exponent`: x = q^(-1/(exponent-1))
    quantiles = torch.arange(1, k + 1, dtype=torch.float64) / k
    eigenvalues = quantiles ** (-1.0 / (exponent - 1.0))
    return (u * eigenvalues.sqrt().to(torch.float32)) @ v.T


def write_overfit_checkpoint(path: Path, step: int, exponent: float = 1.5) -> Path:
    """A SAC checkpoint (tests/factories.py layout) whose every Linear weight is heavy-tailed."""
    from tests.factories import SAC_NETWORK_NAMES, atomic_torch_save, sac_checkpoint_dict

    obj = sac_checkpoint_dict(step, seed=7)
    for name in SAC_NETWORK_NAMES:
        state = obj[name]
        for i, key in enumerate(list(state)):
            if key.endswith("weight"):
                state[key] = heavy_tailed_weight(tuple(state[key].shape), exponent=exponent, seed=i)
    return atomic_torch_save(obj, path)


def write_model_checkpoint(path: Path, step: int, *, overfit: bool = False, seed: int = 0,
                           sizes: tuple[int, ...] = (32, 256, 256, 256, 10)) -> Path:
    """A plain model's checkpoint (`{"model": state_dict, "step": n}`, one network `model`):
    default-init weights (alpha well above 2) or, with `overfit`, every Linear weight
    heavy-tailed (alpha ~1.5), so every layer is below 2 and the stop rule's statistic
    (the share of layers below 2) is 1."""
    import torch

    from tests.factories import atomic_torch_save, mlp

    torch.manual_seed(seed)
    state = mlp(list(sizes)).state_dict()
    if overfit:
        for i, key in enumerate(list(state)):
            if key.endswith("weight"):
                state[key] = heavy_tailed_weight(tuple(state[key].shape), exponent=1.5, seed=seed * 100 + i)
    return atomic_torch_save({"model": state, "step": step}, path)
