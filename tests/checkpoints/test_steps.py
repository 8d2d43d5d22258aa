from __future__ import annotations

import pytest
import torch
from alphawatch.checkpoints import parse_step
from alphawatch.checkpoints.steps import step_from_content


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("generation_12.pt", 12),
        ("step=1000.ckpt", 1000),
        ("checkpoint-500", 500),
        ("/runs/a/checkpoint-500/", 500),
        ("epoch=3-step=1200.ckpt", 1200),
        ("epoch=3-step=1200-v1.ckpt", 1200),
        ("model_000100.safetensors", 100),
        ("rl_model_5000_steps.zip", 5000),
        ("global_step1000", 1000),
        ("iter_300.pth", 300),
        ("epoch_7.pt", 7),
        ("sac_v2_100.pt", 100),
        ("last.ckpt", None),
        ("last-v1.ckpt", None),
        ("resnet50.pt", None),
        ("llama-7b.safetensors", None),
        ("model.pt", None),
    ],
)
def test_parse_step(name: str, step: int | None) -> None:
    assert parse_step(name) == step


def test_step_from_content_prefers_step_over_epoch() -> None:
    assert step_from_content({"epoch": 3, "global_step": 1200}) == 1200
    assert step_from_content({"epoch": 3}) == 3
    assert step_from_content({"num_timesteps": 5000}) == 5000
    assert step_from_content({"step": torch.tensor(42)}) == 42


@pytest.mark.parametrize("value", [True, -1, 1.5, "100", torch.tensor([1, 2]), torch.tensor(2.0), None])
def test_step_from_content_rejects_non_steps(value: object) -> None:
    assert step_from_content({"step": value}) is None


def test_step_from_content_on_non_mapping() -> None:
    assert step_from_content([1, 2]) is None
