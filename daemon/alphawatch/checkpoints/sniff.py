"""What format is this? Decided from the bytes (and folder listing), never the extension.

No torch here: the daemon's main process calls `sniff` on every candidate. Raw
pickles are refused here, before anything could unpickle them.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from pathlib import Path

from alphawatch.checkpoints import pickle_scan, zipinfo
from alphawatch.errors import CheckpointError

HF_WEIGHT_FILE = re.compile(r"^(?:pytorch_model|model|adapter_model)(?:-\d+-of-\d+)?\.(?:bin|safetensors)$")
HF_INDEX_FILE = re.compile(r"^(?:pytorch_model|model)\.(?:bin|safetensors)\.index\.json$")
HF_CHECKPOINT_DIR = re.compile(r"^checkpoint-\d+$")
# Folders named for a step (HF `checkpoint-500`, DeepSpeed `global_step500`, DCP `step-1000`):
# one checkpoint each, even while empty, so the files a writer puts inside are not taken
# for checkpoints of their own.
STEP_FOLDER = re.compile(r"^(checkpoint|global_step|step)[-_=]?\d+$")
# Names of checkpoint *files*: a directory given to `alphawatch analyze` is expanded to these
# (besides anything whose content sniffs as a checkpoint; a known suffix that fails to load is
# reported, not skipped), and a watched folder named like one is refused as `is_directory`.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".zip", ".tar", ".pkl", ".model")
_HEAD = 64
MAX_SAFETENSORS_HEADER = 100_000_000  # safetensors' own limit


def _unreadable(path: Path, exc: OSError) -> CheckpointError:
    if isinstance(exc, PermissionError):
        return CheckpointError("unreadable", f"{path}: permission denied")
    if isinstance(exc, FileNotFoundError):
        return CheckpointError("unreadable", f"{path}: no such file or directory")
    return CheckpointError("unreadable", f"{path}: cannot read ({exc.strerror or exc})")


def sniff(path: Path) -> str:
    """Format of a checkpoint file or folder, from its content (see docs/checkpoints.md)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if stat.S_ISDIR(st.st_mode):
        return sniff_folder(path)
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError("not_a_checkpoint", f"{path}: not a regular file (device, socket or pipe)")
    if st.st_size == 0:
        raise CheckpointError("empty", f"{path}: the file is empty (0 bytes)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if head[:4] in (zipinfo.ZIP_MAGIC, zipinfo.EMPTY_ZIP_MAGIC):
        return _sniff_zip(path)
    if pickle_scan.is_torch_legacy_head(head):
        return "torch_legacy"
    if _looks_like_safetensors(path, head, st.st_size):
        return "safetensors"  # checked before raw pickles: a header length can start with 0x80
    if head[:1] == b"\x80":
        _refuse_raw_pickle(path)
    raise CheckpointError(
        "not_a_checkpoint",
        f"{path}: not a checkpoint (no torch zip, legacy torch, safetensors or SB3 signature)",
    )


def is_checkpoint_folder(path: Path) -> bool:
    """Is this folder ONE checkpoint (not a folder of them)? The one rule the watcher and
    `alphawatch analyze` use: its content sniffs as a checkpoint folder, or its name says
    it is one for a step and it is still being filled."""
    if STEP_FOLDER.match(Path(path).name):
        return True
    try:
        sniff_folder(Path(path))
    except (CheckpointError, OSError):
        return False
    return True


def named_like_a_file(path: Path) -> bool:
    """A name such as `model.pt`: what a folder by that name was surely meant to be is a file."""
    return Path(path).suffix.lower() in CHECKPOINT_SUFFIXES


def sniff_folder(path: Path) -> str:
    """`dcp_folder` (.metadata or .distcp files), `hf_folder` (weights files or an HF checkpoint-N/)."""
    try:
        names = set(os.listdir(path))
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if ".metadata" in names or any(n.endswith(".distcp") for n in names):
        return "dcp_folder"
    if any(HF_WEIGHT_FILE.match(n) or HF_INDEX_FILE.match(n) for n in names):
        return "hf_folder"
    if any(n.endswith(".safetensors") for n in names):
        return "hf_folder"
    if HF_CHECKPOINT_DIR.match(path.name) or "trainer_state.json" in names:
        return "hf_folder"
    raise CheckpointError(
        "is_directory",
        f"{path}: a directory, and not a Hugging Face or torch.distributed.checkpoint folder",
    )


def _sniff_zip(path: Path) -> str:
    try:
        complete = zipinfo.zip_is_complete(path)
    except zipinfo.TooManyMembers as exc:
        raise CheckpointError("not_a_checkpoint", f"{path}: {exc}; refused") from None
    if not complete:
        raise CheckpointError(
            "truncated",
            f"{path}: zip archive without a complete central directory (cut off or still being written)",
        )
    torchscript = data_pkl = policy = False
    try:
        for name in zipinfo.zip_names(path):  # streamed: only what decides the format is kept
            tail = name.split("/", 1)[1] if "/" in name else name
            torchscript = torchscript or tail == "constants.pkl" or tail.startswith("code/")
            data_pkl = data_pkl or tail == "data.pkl"
            policy = policy or name == "policy.pth"
    except (OSError, ValueError) as exc:
        raise CheckpointError("not_a_checkpoint", f"{path}: unreadable zip directory ({exc})") from exc
    if torchscript:
        raise CheckpointError(
            "torchscript", f"{path}: a TorchScript archive; loading it runs code, so it is refused"
        )
    if data_pkl:
        return "torch_zip"
    if policy:
        return "sb3_zip"
    raise CheckpointError("not_a_checkpoint", f"{path}: a zip archive, but neither torch.save nor SB3 output")


def _refuse_raw_pickle(path: Path) -> None:
    """A pickle not written by torch.save: never unpickled; refused with what it would run."""
    try:
        with open(path, "rb") as fh:
            names, calls = pickle_scan.globals_used(fh)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    except ValueError as exc:
        raise CheckpointError("not_a_checkpoint", f"{path}: a malformed or cut-off pickle ({exc})") from exc
    if calls:
        what = ", ".join(names[:5]) if names else "unnamed callables"
        raise CheckpointError(
            "unsafe_pickle",
            f"{path}: a plain pickle (not torch.save) that would import or call code ({what}); refused",
        )
    raise CheckpointError(
        "not_a_checkpoint", f"{path}: a plain pickle without tensors, not a torch.save checkpoint"
    )


def _looks_like_safetensors(path: Path, head: bytes, size: int) -> bool:
    """8-byte little-endian header length, then a JSON object; a cut-off file is `truncated`.

    Only the header's first and last bytes are read (`{` ... `}`, padded with spaces): this
    runs in the daemon's main process on every candidate, and a header may be 100 MB. The
    worker's loader parses and validates the header in full.
    """
    if len(head) < 10 or head[8:9] != b"{":
        return False
    header_len = struct.unpack("<Q", head[:8])[0]
    if header_len < 2 or header_len > MAX_SAFETENSORS_HEADER:
        return False
    if header_len > size - 8:
        raise CheckpointError(
            "truncated", f"{path}: safetensors header says {header_len} bytes, the file is {size} bytes"
        )
    try:
        with open(path, "rb") as fh:
            fh.seek(8 + max(header_len - 64, 0))
            last = fh.read(min(header_len, 64))
    except OSError:
        return False
    return last.rstrip(b" ").endswith(b"}")
