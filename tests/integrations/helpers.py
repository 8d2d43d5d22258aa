"""Shared by the framework-callback tests: write a real stop signal mid-run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphawatch.service.stop_signal import write_stop_signal

from tests.support import as_signal

SIGNAL = {
    "stop": True,
    "reason": "actor alpha 1.93 fell below threshold 2.0",
    "run": "test",
    "network": "actor",
    "metric": "alpha",
    "value": 1.93,
    "threshold": 2.0,
    "checkpoint": "ckpt/generation_7.pt",
    "step": 7,
    "recommended_checkpoint": "ckpt/generation_6.pt",
    "created_at": "2026-11-26T01:00:00Z",
    "version": 1,
}


def write_signal(path: Path, **overrides: Any) -> None:
    """Write the stop file with the daemon's own atomic writer."""
    assert write_stop_signal(path, as_signal({**SIGNAL, **overrides})) is True
