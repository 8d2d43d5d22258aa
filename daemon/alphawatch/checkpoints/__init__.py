"""What is in this file? Sniff by content, check completeness, load safely, group into networks.

One module per format behind this small API (like watchdog's observers):

- `sniff(path)`        format from magic bytes / folder listing (no torch)
- `is_complete(path)`  cheap structural completeness check (no torch, never raises);
                       `completeness(path)` also tells a file that can never become one
- `is_checkpoint_folder(path)`  is this folder one checkpoint (the watcher's and the CLI's rule)
- `parse_step(name)`   training step from a file or folder name
- `load(path, ...)`    a `Checkpoint`: floating tensors grouped into networks (imports torch)

Importing this package must not import torch: the daemon's main process uses
`sniff` / `is_complete` / `parse_step` and stays small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from alphawatch.checkpoints.complete import completeness, is_complete
from alphawatch.checkpoints.model import FORMATS, Checkpoint
from alphawatch.checkpoints.sniff import is_checkpoint_folder, sniff
from alphawatch.checkpoints.steps import parse_step

__all__ = ["FORMATS", "Checkpoint", "completeness", "is_checkpoint_folder", "is_complete", "load",
           "parse_step", "sniff"]


def load(
    path: Path,
    *,
    root: Path | None = None,
    network_patterns: Mapping[str, Sequence[str]] | None = None,
) -> Checkpoint:
    """Load a checkpoint's weights safely (never runs code from it); raises CheckpointError.

    torch is imported here, on first use, not when the package is imported.
    """
    from alphawatch.checkpoints.loader import load_checkpoint

    return load_checkpoint(Path(path), root=root, network_patterns=network_patterns)
