"""`load`: resolve safely, sniff, read with the format's module, unwrap, group.

The one place untrusted checkpoint bytes become tensors. Every failure leaves as a
CheckpointError naming the file; anything unexpected is `internal_error`, never a raw
exception (the worker turns it into a ledger row, not a crash).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphawatch.checkpoints import grouping, unwrap
from alphawatch.checkpoints.dcp_folder import load_dcp_folder
from alphawatch.checkpoints.hf_folder import load_hf_folder
from alphawatch.checkpoints.lazy import lazy_network, mapped_ranges
from alphawatch.checkpoints.model import Checkpoint
from alphawatch.checkpoints.safetensors_file import load_safetensors
from alphawatch.checkpoints.safety import resolve_within
from alphawatch.checkpoints.sb3_zip import load_sb3_zip
from alphawatch.checkpoints.sniff import sniff
from alphawatch.checkpoints.steps import parse_step, step_from_content
from alphawatch.checkpoints.torch_file import load_torch_file
from alphawatch.errors import CheckpointError


def load_checkpoint(
    path: Path,
    *,
    root: Path | None = None,
    network_patterns: Mapping[str, Sequence[str]] | None = None,
) -> Checkpoint:
    """See `alphawatch.checkpoints.load`."""
    try:
        return _load(path, root, network_patterns)
    except CheckpointError:
        raise
    except MemoryError:
        raise CheckpointError("out_of_memory", f"{path}: ran out of memory while loading") from None
    except PermissionError:
        raise CheckpointError("unreadable", f"{path}: permission denied") from None
    except Exception as exc:
        raise CheckpointError(
            "internal_error", f"{path}: unexpected {type(exc).__name__} while loading: {str(exc)[:200]}"
        ) from exc


def _read(
    resolved: Path, fmt: str, display: str, root: Path | None
) -> tuple[Any, str, list[str], int | None]:
    """(object holding the weights, reported format, notes, step the format itself knows).

    Tensors are LazyTensors (safetensors) or memory-mapped (torch zip) where the format
    allows, so nothing is read whole here (checkpoints/lazy.py).
    """
    if fmt in ("torch_zip", "torch_legacy"):
        obj = load_torch_file(resolved, display, mmap=fmt == "torch_zip")
        reported = "lightning" if unwrap.is_lightning(obj) else fmt
        return obj, reported, [], step_from_content(obj)
    if fmt == "safetensors":
        tensors, skipped = load_safetensors(resolved, display)
        notes = [f"ignored {skipped} non-floating tensors"] if skipped else []
        return tensors, fmt, notes, None
    if fmt == "hf_folder":
        merged, notes, step = load_hf_folder(resolved, display, root)
        return merged, fmt, notes, step
    if fmt == "sb3_zip":
        obj, notes, step = load_sb3_zip(resolved, display)
        return obj, fmt, notes, step
    if fmt == "dcp_folder":
        nested, notes = load_dcp_folder(resolved, display, root)
        return nested, fmt, notes, None
    raise CheckpointError("unsupported", f"{display}: format {fmt} is not analyzed")


def _load(
    path: Path, root: Path | None, network_patterns: Mapping[str, Sequence[str]] | None
) -> Checkpoint:
    display = str(path)
    resolved = resolve_within(path, root)
    try:
        fmt = sniff(resolved)
    except CheckpointError as exc:  # name the file as the user gave it
        if str(resolved) == display:
            raise
        # the arrow only when a link was followed; a relative path is just named as given
        linked = resolved != Path(os.path.abspath(path))
        shown = f"{display} (-> {resolved})" if linked else display
        raise CheckpointError(exc.reason, exc.message.replace(str(resolved), shown)) from None
    obj, reported, notes, step = _read(resolved, fmt, display, root)
    try:
        found = unwrap.unwrap(obj)
    except unwrap.TooComplex as exc:
        raise CheckpointError(
            "not_a_checkpoint", f"{display}: {exc}; no training checkpoint holds that many, so it is "
            "refused rather than walked") from None
    notes.extend(found.notes)
    if not found.tensors:
        if found.meta_tensors:
            raise CheckpointError(
                "no_weights",
                f"{display}: every tensor is on the 'meta' device and holds no data (a model built "
                "with torch.device('meta') or init_empty_weights was saved before its weights were "
                "loaded)",
            )
        raise CheckpointError("no_weights", f"{display}: no floating-point tensors found")
    if not any(len(tensor.shape) >= 2 for _parts, tensor in found.tensors):
        raise CheckpointError(
            "no_weights",
            f"{display}: no weight matrix, only 1-D tensors (biases, norm scales); "
            "there is nothing to fit",
        )
    networks, keys = grouping.group(found, network_patterns, notes)
    mapped = _mapped(resolved)
    lazy: dict[str, Mapping[str, Any]] = {name: lazy_network(t, mapped) for name, t in networks.items()}
    if not networks:
        raise CheckpointError("no_weights", f"{display}: no tensor matched the configured network_patterns")
    if step is None:
        step = parse_step(path.name)
    if step is None and resolved.name != path.name:
        step = parse_step(resolved.name)
    return Checkpoint(path=display, format=reported, step=step, networks=lazy, keys=keys, notes=notes)


def _mapped(resolved: Path) -> list[tuple[int, int]]:
    """Where torch.load(mmap=True) mapped this checkpoint's files (a folder: any file in it)."""
    files = [resolved] if resolved.is_file() else [p for p in resolved.iterdir() if p.is_file()]
    return [r for f in files for r in mapped_ranges(str(f.resolve()))]
