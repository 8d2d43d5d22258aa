"""Real checkpoint files written by the real libraries, shared by the checkpoint tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests import factories


@pytest.fixture
def sac_file(tmp_path: Path) -> Path:
    """A SAC checkpoint as `save_sac_checkpoint` writes it (small hidden size keeps it fast)."""
    return factories.save_sac_checkpoint(tmp_path / "sac_step_300.pt", step=300, hidden=32)


@pytest.fixture
def cut(tmp_path: Path):
    """cut(src, n_bytes) -> a copy of src with only its first n_bytes."""

    def _cut(src: Path, n_bytes: int, name: str | None = None) -> Path:
        dst = tmp_path / (name or f"cut_{n_bytes}_{src.name}")
        dst.write_bytes(src.read_bytes()[:n_bytes])
        return dst

    return _cut


@pytest.fixture
def torch_load_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record the keyword arguments of every torch.load call (the loader must pass safe ones)."""
    calls: list[dict] = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(dict(kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return calls
