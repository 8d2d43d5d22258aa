"""What both examples share: command-line options, atomic checkpoint writes, the stop check.

Kept next to the examples (not in the package) so each example stays readable as plain
training code that a user can copy.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from alphawatch.client import StopSignal

DEFAULT_STOP_FILE = "signals/alphawatch-stop.json"


def add_common_arguments(
    parser: argparse.ArgumentParser, *, max_steps: int, save_every: int, hidden: int, batch_size: int
) -> None:
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"),
                        help="folder the checkpoints go to (the folder alphawatch watches)")
    parser.add_argument("--stop-file", type=Path, default=Path(DEFAULT_STOP_FILE),
                        help="alphawatch stop-signal file to obey")
    parser.add_argument("--max-steps", type=int, default=max_steps, help="train at most this many steps")
    parser.add_argument("--save-every", type=int, default=save_every,
                        help="write generation_<n>.pt every this many steps")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, data and sampling")
    parser.add_argument("--hidden", type=int, default=hidden, help="width of the hidden layers")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="samples per gradient step")


def check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a hidden temp file in the same folder, fsync, then rename into place.

    A watcher never sees a half-written checkpoint: until the rename, the file has a
    temp name alphawatch ignores (dotfile, ``.tmp``); the rename is atomic on one filesystem.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def stop_requested(reader: StopSignal, step: int) -> bool:
    """Poll the stop signal; on a stop, print why (and where to go back to) and say so."""
    if not reader.should_stop():
        return False
    signal = reader.signal
    why = signal.describe() if signal is not None else "stop file present"
    print(f"alphawatch stop signal at step {step}: {why}", flush=True)
    print(f"  stop file: {reader.path} (clear it with `alphawatch signal clear --stop-file "
          f"{reader.path}` before training again)", flush=True)
    return True


def limit_threads() -> None:
    """One thread: leaves the other cores to the daemon analyzing next to us."""
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
