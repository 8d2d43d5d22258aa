"""torch.distributed.checkpoint folders (FSDP / large-scale training): `.metadata` + `*.distcp`.

`.metadata` is a pickle. It is read with `DcpMetadataUnpickler`, which resolves only DCP's
own metadata classes and the few torch values they hold (dtypes, torch.Size, layouts,
memory formats); any other global is refused as `unsafe_pickle`, nothing else is imported
or called. Each tensor (or each shard of it) is a torch.save blob at (file, offset, length)
inside a `.distcp` file, read when analysis asks for it (checkpoints/lazy.py) with
torch.load(weights_only=True). Non-tensor entries (BytesStorageMetadata: arbitrary pickled
objects such as optimizer hyper-parameters) are never read.
"""

from __future__ import annotations

import io
import pathlib
import pickle
from pathlib import Path
from typing import Any

from alphawatch.checkpoints.lazy import LazyTensor
from alphawatch.checkpoints.safety import member_within
from alphawatch.checkpoints.torch_file import load_torch_bytes
from alphawatch.errors import CheckpointError

METADATA = ".metadata"
_MAX_METADATA_BYTES = 256 * 2**20
_DCP_METADATA_CLASSES = (
    "Metadata", "MetadataIndex", "TensorStorageMetadata", "BytesStorageMetadata",
    "ChunkStorageMetadata", "TensorProperties", "StorageMeta", "_MEM_FORMAT_ENCODING",
)  # fmt: skip


def allowed_dcp_globals() -> dict[tuple[str, str], Any]:
    """(module, name) -> object: DCP's metadata classes and the torch values they contain."""
    import torch
    from torch.distributed.checkpoint import filesystem, metadata

    allowed: dict[tuple[str, str], Any] = {
        ("torch.distributed.checkpoint.metadata", name): getattr(metadata, name)
        for name in _DCP_METADATA_CLASSES
        if hasattr(metadata, name)
    }
    allowed[("torch.distributed.checkpoint.filesystem", "_StorageInfo")] = filesystem._StorageInfo
    allowed[("torch", "Size")] = torch.Size
    allowed[("torch.serialization", "_get_layout")] = torch.serialization._get_layout
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype | torch.layout | torch.memory_format):
            allowed[("torch", name)] = value
    # StorageMeta.checkpoint_id: a path; a pure path touches no file system
    allowed[("pathlib", "PosixPath")] = pathlib.PurePosixPath
    allowed[("pathlib", "WindowsPath")] = pathlib.PureWindowsPath
    allowed[("pathlib", "PurePosixPath")] = pathlib.PurePosixPath
    allowed[("pathlib", "PureWindowsPath")] = pathlib.PureWindowsPath
    allowed[("collections", "OrderedDict")] = dict
    return allowed


class DcpMetadataUnpickler(pickle.Unpickler):
    """Unpickles DCP's `.metadata`; every global outside `allowed_dcp_globals()` is refused."""

    def __init__(self, data: bytes, display: str) -> None:
        super().__init__(io.BytesIO(data))
        self.display = display
        self.allowed = allowed_dcp_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise CheckpointError(
                "unsafe_pickle",
                f"{self.display}: .metadata names {module}.{name}, which is not one of "
                "torch.distributed.checkpoint's own metadata classes; it was not loaded",
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("unsafe_pickle", f"{self.display}: .metadata uses persistent ids; not loaded")


def read_metadata(folder: Path, display: str) -> Any:
    """DCP's Metadata object, through the allowlisting unpickler."""
    path = folder / METADATA
    try:
        size = path.stat().st_size
        if size > _MAX_METADATA_BYTES:
            raise CheckpointError("unsupported", f"{display}: .metadata is over 256 MiB")
        data = path.read_bytes()
    except PermissionError as exc:
        raise CheckpointError("unreadable", f"{display}: permission denied") from exc
    except OSError as exc:
        raise CheckpointError("unreadable", f"{display}: cannot read .metadata ({exc})") from exc
    try:
        meta = DcpMetadataUnpickler(data, display).load()
    except CheckpointError:
        raise
    except Exception as exc:
        detail = str(exc)[:200]
        raise CheckpointError("not_a_checkpoint", f"{display}: unreadable .metadata ({detail})") from exc
    if not hasattr(meta, "state_dict_metadata") or not hasattr(meta, "storage_data"):
        raise CheckpointError("not_a_checkpoint", f"{display}: .metadata is not DCP Metadata")
    return meta


def _read_blob(folder: Path, info: Any, display: str, root: Path | None) -> Any:
    if getattr(info, "transform_descriptors", None):
        raise CheckpointError("unsupported", f"{display}: transformed (e.g. compressed) DCP storage")
    file = member_within(folder, str(info.relative_path), root)
    with open(file, "rb") as fh:
        fh.seek(int(info.offset))
        data = fh.read(int(info.length))
    if len(data) != int(info.length):
        raise CheckpointError("truncated", f"{display}/{info.relative_path}: ends before its last tensor")
    return load_torch_bytes(data, f"{display}/{info.relative_path}")


def _reader(
    folder: Path, fqn: str, entry: Any, storage: dict[Any, Any], display: str, root: Path | None
) -> Any:
    """Reads one tensor, assembling it from its chunks (one per rank that held a shard)."""

    def read() -> Any:
        import torch

        chunks = [(index, info) for index, info in storage.items() if index.fqn == fqn]
        out = torch.empty(tuple(entry.size), dtype=entry.properties.dtype)
        for index, info in chunks:
            part = _read_blob(folder, info, display, root)
            if not isinstance(part, torch.Tensor):
                raise CheckpointError("not_a_checkpoint", f"{display}: {fqn} is not stored as a tensor")
            offsets = tuple(index.offset or (0,) * out.dim())
            region = out[tuple(slice(o, o + s) for o, s in zip(offsets, part.shape, strict=True))]
            region.copy_(part)
        return out

    return read


def load_dcp_folder(folder: Path, display: str, root: Path | None) -> tuple[dict[str, Any], list[str]]:
    """(nested state dict of LazyTensors, notes): nested as DCP's planner recorded it."""
    meta = read_metadata(folder, display)
    storage = dict(meta.storage_data)
    paths = meta.planner_data if isinstance(meta.planner_data, dict) else {}
    nested: dict[str, Any] = {}
    skipped = 0
    for fqn, entry in meta.state_dict_metadata.items():
        props = getattr(entry, "properties", None)
        if props is None or not getattr(props.dtype, "is_floating_point", False):
            skipped += 1
            continue
        read = _reader(folder, fqn, entry, storage, display, root)
        lazy = LazyTensor(tuple(int(s) for s in entry.size), props.dtype, read)
        where = paths.get(fqn)
        parts = [str(p) for p in where] if isinstance(where, tuple) and where else [fqn]
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = lazy
    notes = [f"not read: {skipped} non-tensor or non-floating entries"] if skipped else []
    return nested, notes
