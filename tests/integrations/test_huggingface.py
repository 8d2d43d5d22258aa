"""The Hugging Face callback against a real `transformers.Trainer` (CPU, tiny model)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it

import torch  # noqa: E402
from alphawatch.integrations.huggingface import AlphawatchStopCallback  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from tests.integrations.helpers import write_signal  # noqa: E402

MAX_STEPS = 30


class TinyRegressor(torch.nn.Module):
    """A plain nn.Module is enough for the Trainer: it returns a dict with a loss."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        pred = self.layer(x)
        return {"loss": torch.nn.functional.mse_loss(pred, labels), "logits": pred}


class TinyDataset(torch.utils.data.Dataset):
    def __init__(self, size: int = 64) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 4, generator=gen)
        self.y = torch.randn(size, 1, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class WriteSignalAtStep(TrainerCallback):
    """Plays the daemon: writes the stop file once `global_step` reaches `step`."""

    def __init__(self, path: Path, step: int) -> None:
        self.path, self.step = path, step

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == self.step and not self.path.exists():
            write_signal(self.path)


def make_trainer(tmp_path: Path, callbacks: list[TrainerCallback]) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        learning_rate=0.01,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        seed=0,
    )
    return Trainer(model=TinyRegressor(), args=args, train_dataset=TinyDataset(), callbacks=callbacks)


@pytest.mark.parametrize(("every", "write_at", "expected"), [(1, 7, 7), (4, 7, 8)])
def test_stops_at_the_next_check_after_the_signal_appears(
    tmp_path: Path,
    stop_file: Path,
    caplog: pytest.LogCaptureFixture,
    every: int,
    write_at: int,
    expected: int,
) -> None:
    stop_file.parent.mkdir()
    stopper = AlphawatchStopCallback(stop_file, check_every_n_steps=every)
    trainer = make_trainer(tmp_path, [WriteSignalAtStep(stop_file, write_at), stopper])
    with caplog.at_level(logging.WARNING, logger="alphawatch"):
        trainer.train()
    assert trainer.state.global_step == expected < MAX_STEPS
    assert stopper.stopped_at_step == expected
    assert stopper.signal is not None and stopper.signal.recommended_checkpoint == "ckpt/generation_6.pt"
    [record] = [r for r in caplog.records if r.name == "alphawatch"]
    assert "actor alpha 1.93 fell below threshold 2.0" in record.getMessage()
    assert "recommended checkpoint: ckpt/generation_6.pt" in record.getMessage()


def test_no_signal_trains_to_the_end(tmp_path: Path, stop_file: Path) -> None:
    stopper = AlphawatchStopCallback(stop_file)
    trainer = make_trainer(tmp_path, [stopper])
    trainer.train()
    assert trainer.state.global_step == MAX_STEPS
    assert stopper.stopped_at_step is None
