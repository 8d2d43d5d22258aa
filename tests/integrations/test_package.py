"""`alphawatch.integrations` itself is free to import; each framework is an optional extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("lightning", "transformers", "stable_baselines3", "torch")


def test_the_package_imports_no_framework() -> None:
    code = (
        "import sys, alphawatch.integrations, alphawatch.integrations._common; "
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["lightning", "huggingface", "sb3"])
def test_check_every_must_be_positive(module: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mod = pytest.importorskip(f"alphawatch.integrations.{module}")
    with pytest.raises(ValueError, match="check_every_n_steps"):
        mod.AlphawatchStopCallback(tmp_path / "stop.json", check_every_n_steps=0)
