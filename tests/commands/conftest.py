"""Real SAC-shaped torch.save checkpoints and helpers that run the real CLI (subprocess or in-process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.factories import save_sac_checkpoint

REPO = Path(__file__).resolve().parents[2]
# Small networks keep each CLI run short; 64 wide still gives WeightWatcher enough eigenvalues.
SMALL = {"hidden": 64}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def json(self) -> Any:
        return json.loads(self.stdout, parse_constant=_refuse)


def _refuse(token: str) -> None:
    raise ValueError(f"non-strict JSON token {token}")


def run_cli(*args: str | os.PathLike[str], cwd: Path | None = None, timeout: float = 300,
            stderr: Any = subprocess.PIPE) -> Run:
    """`python -m alphawatch analyze ARGS` in a fresh process, as a user would run it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "alphawatch", "analyze", *map(str, args)],
        cwd=cwd or REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr or "")


def run_cli_in_process(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> Run:
    """`alphawatch analyze ARGS` through `alphawatch.cli.main`, in this process: for what fails
    before any analysis (usage errors), where a fresh interpreter would only add its start-up."""
    from alphawatch import cli

    capsys.readouterr()  # start from empty captures
    try:
        code = cli.main(["analyze", *map(str, args)])
    except SystemExit as exc:  # argparse's own usage errors exit from inside parse_args
        code = exc.code if isinstance(exc.code, int) else 2
    out = capsys.readouterr()
    return Run(code, out.out, out.err)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse)


@pytest.fixture(scope="module")
def sac_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three SAC checkpoints (steps 100, 200, 300; different seeds) plus broken neighbours."""
    folder = tmp_path_factory.mktemp("sac")
    for seed, step in enumerate((100, 200, 300)):
        save_sac_checkpoint(folder / f"generation_{step}.pt", step=step, seed=seed, **SMALL)
    return folder


@pytest.fixture(scope="module")
def broken_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A garbage file and a zero-byte file, both named like checkpoints."""
    folder = tmp_path_factory.mktemp("broken")
    (folder / "garbage.pt").write_bytes(b"this is not a checkpoint, just text\n" * 20)
    (folder / "empty.pt").write_bytes(b"")
    return folder
