"""The Lightning callback against a real `lightning.pytorch.Trainer` (CPU, tiny model)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import torch  # noqa: E402
from alphawatch.integrations.lightning import AlphawatchStopCallback  # noqa: E402
from lightning.pytorch import LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tests.integrations.helpers import write_signal  # noqa: E402

MAX_STEPS = 40


class TinyRegressor(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(64, 4, generator=gen), torch.randn(64, 1, generator=gen))
        return DataLoader(data, batch_size=4)  # 16 steps per epoch: the stop lands mid-epoch


class WriteSignalAtStep(Callback):
    """Plays the daemon: writes the stop file once `global_step` reaches `step` (rank 0)."""

    def __init__(self, path: Path, step: int) -> None:
        self.path, self.step = path, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
        if trainer.global_step == self.step and trainer.is_global_zero and not self.path.exists():
            write_signal(self.path)


class RecordFinalStep(Callback):
    """Each rank writes where it ended, so a multi-process test can compare them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        out = self.folder / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps({"global_step": trainer.global_step, "should_stop": trainer.should_stop}))


def make_trainer(callbacks: list[Callback], **kwargs: object) -> Trainer:
    options: dict[str, object] = {"accelerator": "cpu", "devices": 1, **kwargs}
    return Trainer(
        max_steps=MAX_STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("every", "write_at", "expected"), [(1, 7, 7), (5, 7, 10)])
def test_stops_at_the_next_check_after_the_signal_appears(
    stop_file: Path, caplog: pytest.LogCaptureFixture, every: int, write_at: int, expected: int
) -> None:
    stop_file.parent.mkdir()
    stopper = AlphawatchStopCallback(stop_file, check_every_n_steps=every)
    trainer = make_trainer([WriteSignalAtStep(stop_file, write_at), stopper])
    with caplog.at_level(logging.WARNING, logger="alphawatch"):
        trainer.fit(TinyRegressor())
    assert trainer.global_step == expected < MAX_STEPS
    assert stopper.stopped_at_step == expected
    assert stopper.signal is not None and stopper.signal.network == "actor"
    [record] = [r for r in caplog.records if r.name == "alphawatch"]
    assert "actor alpha 1.93 fell below threshold 2.0" in record.getMessage()
    assert "recommended checkpoint: ckpt/generation_6.pt" in record.getMessage()


def test_no_signal_trains_to_the_end(stop_file: Path) -> None:
    stopper = AlphawatchStopCallback(stop_file)
    trainer = make_trainer([stopper])
    trainer.fit(TinyRegressor())
    assert trainer.global_step == MAX_STEPS
    assert stopper.stopped_at_step is None


def test_gradient_accumulation_checks_once_per_optimizer_step(stop_file: Path) -> None:
    stop_file.parent.mkdir()
    stopper = AlphawatchStopCallback(stop_file)
    trainer = make_trainer([WriteSignalAtStep(stop_file, 3), stopper], accumulate_grad_batches=2)
    trainer.fit(TinyRegressor())
    assert trainer.global_step == 3


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_two_ddp_ranks_stop_at_the_same_step(tmp_path: Path, stop_file: Path) -> None:
    """Only rank 0 reads the file; rank 1 must follow via the broadcast or it would hang."""
    stop_file.parent.mkdir()
    trainer = make_trainer(
        [WriteSignalAtStep(stop_file, 5), AlphawatchStopCallback(stop_file), RecordFinalStep(tmp_path)],
        devices=2,
        strategy="ddp_spawn",
    )
    trainer.fit(TinyRegressor())
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks == [{"global_step": 5, "should_stop": True}] * 2
