"""The value `load` returns: what a checkpoint holds, grouped into networks.

Kept free of torch imports (only a type-checking reference) so the daemon's main
process can import the package without pulling torch in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

FORMATS = (
    "torch_zip",
    "torch_legacy",
    "safetensors",
    "hf_folder",
    "sb3_zip",
    "torchscript",
    "dcp_folder",
)


@dataclass
class Checkpoint:
    """Weights found in one checkpoint file or folder (see docs/checkpoints.md)."""

    path: str
    """The path as the caller gave it (not resolved), so reports show what the user typed."""
    format: str
    """From `sniff()`; "lightning" for a Lightning .ckpt (a torch zip with Lightning's keys)."""
    step: int | None
    """From the content (step / global_step / num_timesteps / epoch) else the file name."""
    networks: dict[str, Mapping[str, torch.Tensor]] = field(default_factory=dict)
    """network name -> {layer name inside that network's own state dict: floating tensor}.

    From `load` these are `lazy.TensorMap`s: each tensor is read when it is accessed and not
    kept, so iterate, don't hold; `dict(...)` reads the whole network."""
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    """network name -> layer name -> full dotted path of the tensor inside the file."""
    notes: list[str] = field(default_factory=list)
    """Things left out on purpose (optimizer state, integer buffers, ...), one line each."""
