"""Hugging Face model folders: `model.safetensors`, sharded safetensors/bin + index, `pytorch_model.bin`.

Only weight files are opened. `training_args.bin`, `optimizer.pt`, `scheduler.pt` and
`rng_state.pth` in a Trainer `checkpoint-N/` are never loaded (training_args.bin is a
pickle of a Python class). The step comes from `trainer_state.json`'s `global_step`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alphawatch.checkpoints.safetensors_file import load_safetensors, natural_order
from alphawatch.checkpoints.safety import member_within
from alphawatch.checkpoints.sniff import HF_INDEX_FILE, HF_WEIGHT_FILE, sniff
from alphawatch.checkpoints.torch_file import load_torch_file
from alphawatch.errors import CheckpointError

_NOT_WEIGHTS = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "scaler.pt")


def weight_file_names(folder: Path, display: str | Path) -> list[str]:
    """Shards named by an index (safetensors preferred), else the folder's weight files."""
    names = set(os.listdir(folder))
    indexes = sorted((n for n in names if HF_INDEX_FILE.match(n)), key=lambda n: "safetensors" not in n)
    for index_name in indexes:
        try:
            with open(folder / index_name, encoding="utf-8") as fh:
                weight_map = json.load(fh).get("weight_map", {})
        except (OSError, ValueError, AttributeError) as exc:
            raise CheckpointError("not_a_checkpoint", f"{display}: unreadable {index_name} ({exc})") from exc
        shards = sorted({str(v) for v in weight_map.values()}) if isinstance(weight_map, Mapping) else []
        if shards:
            return shards
    files = sorted(n for n in names if HF_WEIGHT_FILE.match(n))
    safetensors = [n for n in files if n.endswith(".safetensors")]
    if safetensors:
        return safetensors
    if files:
        return files
    return sorted(n for n in names if n.endswith(".safetensors"))


def trainer_step(folder: Path) -> int | None:
    """`global_step` from trainer_state.json, when present and sane."""
    try:
        with open(folder / "trainer_state.json", encoding="utf-8") as fh:
            step = json.load(fh).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def load_hf_folder(
    folder: Path, display: str | Path, root: Path | None
) -> tuple[dict[str, Any], list[str], int | None]:
    """(merged flat state dict, notes, step from trainer_state.json)."""
    names = weight_file_names(folder, display)
    if not names:
        raise CheckpointError("no_weights", f"{display}: a Hugging Face folder without weight files (yet)")
    merged: dict[str, Any] = {}
    notes: list[str] = []
    skipped = 0
    for name in names:
        file = member_within(folder, name, root)
        shown = f"{display}/{name}"
        fmt = sniff(file)
        if fmt == "safetensors":
            tensors, n_skipped = load_safetensors(file, shown)
            skipped += n_skipped
            merged.update(tensors)
        elif fmt in ("torch_zip", "torch_legacy"):
            obj = load_torch_file(file, shown, mmap=fmt == "torch_zip")
            if not isinstance(obj, Mapping):
                raise CheckpointError("not_a_checkpoint", f"{shown}: not a state dict")
            merged.update({str(k): v for k, v in obj.items()})
        else:
            raise CheckpointError("not_a_checkpoint", f"{shown}: a {fmt}, not a weights file")
    if skipped:
        notes.append(f"ignored {skipped} non-floating tensors")
    if len(names) > 1:  # shards split the model at arbitrary points: back into layer order
        merged = {name: merged[name] for name in natural_order(merged)}
    present = sorted(n for n in _NOT_WEIGHTS if (folder / n).exists())
    if present:
        notes.append(f"not loaded (training state, not weights): {', '.join(present)}")
    return merged, notes, trainer_step(folder)
