"""Shared helpers for the analysis tests: a Checkpoint-shaped value and seeded tensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from alphawatch.analysis.options import AnalysisOptions


@dataclass
class FakeCheckpoint:
    """What analyze_checkpoint reads from alphawatch.checkpoints.Checkpoint."""

    path: str
    format: str
    step: int | None
    networks: dict[str, dict[str, torch.Tensor]]
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def make_checkpoint(
    networks: dict[str, dict[str, torch.Tensor]], step: int | None = 100, path: str = "ckpt.pt"
) -> Any:
    keys = {n: {k: f"{n}.{k}" for k in sd} for n, sd in networks.items()}
    return FakeCheckpoint(path=path, format="torch_zip", step=step, networks=networks, keys=keys)


@pytest.fixture
def options() -> AnalysisOptions:
    return AnalysisOptions()
