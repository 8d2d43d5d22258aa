"""Is this checkpoint finished? Cheap structural checks, no torch, never raises.

Producers write in place (torch.save), copy slowly, or rename folders into place; the
daemon asks this before queuing anything. Each rule checks the part a writer puts
down last (see docs/checkpoints.md, "Completeness").

`completeness` also tells a file that can never become a checkpoint (`invalid`: not a
format we read, a code-running pickle, TorchScript) from one that may still be being
written (`incomplete`), so the daemon reports the first at once instead of waiting for
it to stay unchanged for minutes.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Literal

from alphawatch.checkpoints import pickle_scan, zipinfo
from alphawatch.checkpoints.sniff import (
    HF_CHECKPOINT_DIR,
    HF_INDEX_FILE,
    HF_WEIGHT_FILE,
    MAX_SAFETENSORS_HEADER,
    named_like_a_file,
    sniff,
)
from alphawatch.errors import CheckpointError

Completeness = Literal["complete", "incomplete", "invalid"]
# Sniffing verdicts on a file that more bytes cannot change.
_FINAL_REASONS = frozenset({"not_a_checkpoint", "unsafe_pickle", "torchscript"})


def completeness(path: Path) -> Completeness:
    """`complete`, `incomplete` (maybe still being written) or `invalid` (never a checkpoint)."""
    try:
        return "complete" if _is_whole(Path(path)) else "incomplete"
    except CheckpointError as exc:
        if Path(path).is_dir():  # a folder may still be filled, unless no checkpoint has its name
            return "invalid" if exc.reason == "is_directory" and named_like_a_file(path) else "incomplete"
        return "invalid" if exc.reason in _FINAL_REASONS else "incomplete"
    except Exception:  # the contract: never raises; "not complete" is the safe answer
        return "incomplete"


def is_complete(path: Path) -> bool:
    """True only when the file/folder is structurally whole; False on any doubt or error."""
    return completeness(path) == "complete"


def _is_whole(path: Path) -> bool:
    fmt = sniff(path)
    try:
        if fmt in ("torch_zip", "sb3_zip"):
            return zipinfo.zip_is_complete(path)
        if fmt == "torch_legacy":
            return pickle_scan.legacy_torch_is_complete(path)
        if fmt == "safetensors":
            return safetensors_is_complete(path)
        if fmt == "dcp_folder":
            return (path / ".metadata").is_file()
        if fmt == "hf_folder":
            return hf_folder_is_complete(path)
        return False
    except Exception:  # a structural check that trips over a half-written file
        return False


# Where a header names a tensor's bytes. A JSON string cannot hold an unescaped quote, so
# this only ever matches a key of the header itself.
_DATA_OFFSETS = re.compile(rb'"data_offsets"\s*:\s*\[\s*(\d{1,20})\s*,\s*(\d{1,20})\s*\]')
_HEADER_CHUNK = 1 << 20


def safetensors_expected_size(path: Path) -> int | None:
    """8 + header length + end of the last tensor's data, per the header; None if unreadable.

    Why not `json.loads` of the header: the main process runs this on every candidate, and a
    header may be up to 100 MB (safetensors' limit): three crafted 95 MB headers re-parsed
    every tick once cost 75% of a core and hundreds of MB. The header is scanned in 1 MB
    chunks for its `data_offsets` instead (constant memory; the worker's loader parses
    and validates it fully).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                return None
            header_len = struct.unpack("<Q", raw)[0]
            if header_len > path.stat().st_size - 8 or header_len > MAX_SAFETENSORS_HEADER:
                return None
            end, found, left, tail, first = 0, False, header_len, b"", True
            while left > 0:
                chunk = fh.read(min(_HEADER_CHUNK, left))
                if not chunk:
                    return None
                if first and not chunk.lstrip().startswith(b"{"):
                    return None
                first, left = False, left - len(chunk)
                window = tail + chunk  # a match may straddle two chunks; max() does not mind twice
                for match in _DATA_OFFSETS.finditer(window):
                    end, found = max(end, int(match.group(2))), True
                tail = window[-128:]
            if not tail.rstrip().endswith(b"}") or not found:
                return None
        return 8 + header_len + end
    except (OSError, ValueError):
        return None


def safetensors_is_complete(path: Path) -> bool:
    """Header length + the largest data offset account for every byte of the file."""
    try:
        return safetensors_expected_size(path) == path.stat().st_size
    except OSError:
        return False


def _weight_files(folder: Path, names: set[str]) -> list[Path] | None:
    """The weights an HF folder promises: an index's shards, else its weight files."""
    for index_name in sorted(n for n in names if HF_INDEX_FILE.match(n)):
        with open(folder / index_name, encoding="utf-8") as fh:
            index = json.load(fh)
        shards = set(index.get("weight_map", {}).values())
        if not shards or any("/" in s or s.startswith(".") for s in shards):
            return None
        return [folder / s for s in sorted(shards)]
    files = [folder / n for n in sorted(names) if HF_WEIGHT_FILE.match(n)]
    if not files:
        files = [folder / n for n in sorted(names) if n.endswith(".safetensors")]
    return files or None


def _weights_file_complete(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        fmt = sniff(path)
    except Exception:
        return False
    if fmt == "safetensors":
        return safetensors_is_complete(path)
    if fmt == "torch_zip":
        return zipinfo.zip_is_complete(path)
    if fmt == "torch_legacy":
        return pickle_scan.legacy_torch_is_complete(path)
    return False


def hf_folder_is_complete(folder: Path) -> bool:
    """`checkpoint-N/`: trainer_state.json (the HF Trainer writes it last) and whole weights.

    Any other HF folder (a plain `save_pretrained`): every weights file it names is whole.
    """
    names = set(os.listdir(folder))
    if HF_CHECKPOINT_DIR.match(folder.name) and "trainer_state.json" not in names:
        return False
    files = _weight_files(folder, names)
    if not files:
        return False
    return all(_weights_file_complete(f) for f in files)
