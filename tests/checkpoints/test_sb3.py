"""A real Stable-Baselines3 SAC saved with `.save()`: actor / critic / critic_target."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from alphawatch.checkpoints import is_complete, load, sniff


def test_real_sb3_sac(tmp_path: Path) -> None:
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.SAC("MlpPolicy", "Pendulum-v1", learning_starts=0, batch_size=8, buffer_size=64, seed=0)
    model.learn(total_timesteps=10)
    path = tmp_path / "rl_model_10_steps.zip"
    model.save(path)
    assert sniff(path) == "sb3_zip"
    assert is_complete(path)

    ckpt = load(path)
    assert ckpt.format == "sb3_zip"
    assert ckpt.step == model.num_timesteps == 10
    assert sorted(ckpt.networks) == ["actor", "critic", "critic_target"]
    policy = model.policy.state_dict()
    for net, layers in ckpt.networks.items():
        for layer, tensor in layers.items():
            # keys are relative to policy.pth, as SB3's own policy.state_dict() names them
            assert ckpt.keys[net][layer] == f"{net}.{layer}"
            assert torch.equal(tensor, policy[f"{net}.{layer}"].cpu())
    assert "latent_pi.0.weight" in ckpt.networks["actor"]
    assert "qf0.0.weight" in ckpt.networks["critic"]
    assert any("actor.optimizer.pth" in n for n in ckpt.notes)
