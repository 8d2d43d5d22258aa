"""Fixtures for the framework-callback tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def stop_file(tmp_path: Path) -> Path:
    return tmp_path / "signals" / "alphawatch-stop.json"
