"""A real Lightning Trainer writes a real .ckpt; its state_dict loads, hyper-parameters and all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from alphawatch.checkpoints import is_complete, load, sniff

from tests import factories

L = pytest.importorskip("lightning")


class ActorCritic(L.LightningModule):
    def __init__(self, lr: float, gamma: np.float64) -> None:
        super().__init__()
        self.save_hyperparameters()  # numpy scalar in hyper_parameters: needs the allowlist
        self.actor = factories.mlp([4, 16, 2])
        self.critic = torch.nn.Sequential(
            factories.mlp([6, 16]), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 1)
        )

    def training_step(self, batch, _idx):
        x, y = batch
        a = self.actor(x)
        return ((self.critic(torch.cat([x, a], dim=1)) - y) ** 2).mean()

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1)}


def test_real_lightning_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    trainer = L.Trainer(
        max_steps=3, enable_progress_bar=False, logger=False, enable_model_summary=False,
        default_root_dir=tmp_path, accelerator="cpu",
    )
    model = ActorCritic(lr=1e-2, gamma=np.float64(0.99))
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=8))
    (path,) = (tmp_path / "checkpoints").glob("*.ckpt")
    assert path.name == "epoch=0-step=3.ckpt"
    assert sniff(path) == "torch_zip"
    assert is_complete(path)

    ckpt = load(path)
    assert ckpt.format == "lightning"
    assert ckpt.step == 3  # global_step from the content
    assert sorted(ckpt.networks) == ["actor", "critic"]
    for name, tensor in model.state_dict().items():
        net, layer = name.split(".", 1)
        if tensor.is_floating_point():
            assert torch.equal(ckpt.networks[net][layer], tensor)
            assert ckpt.keys[net][layer] == f"state_dict.{name}"
        else:
            assert layer not in ckpt.networks[net]  # num_batches_tracked
    joined = " ".join(ckpt.notes)
    assert "optimizer_states" in joined and "lr_schedulers" in joined
