"""Tensors read one at a time, when analysis asks for them, and let go right after.

Why: a 2 GB checkpoint loaded whole costs 2 GB of worker memory, and a memory-mapped one
costs the same once every page has been touched (resident pages of a mapped file count
towards RSS while mapped). Here a state dict is a `TensorMap`: a read-only Mapping whose
values are read on access, never kept, so memory is bounded by the tensors in use.

- safetensors: each access opens the file, copies that one tensor out and closes it (the
  mapping, and its resident pages, go with the close).
- torch.save zip loaded with mmap=True: each access copies the tensor out of the mapping
  and tells the kernel to drop the mapped pages (madvise MADV_DONTNEED; the mapping is
  private and never written, so the pages simply fault in again from the file if needed).
- `meta` gives shapes and dtypes without reading anything (for layout decisions such as
  "is this network a chain of Linear layers?").
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_MADV_DONTNEED = 4


@dataclass(frozen=True)
class LazyTensor:
    """Shape and dtype of a tensor not read yet, and how to read it. Quacks enough like a tensor
    for unwrap/grouping (dim, shape, is_floating_point, is_meta)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    read: Callable[[], torch.Tensor]
    is_meta: bool = False

    def dim(self) -> int:
        return len(self.shape)

    def is_floating_point(self) -> bool:
        return bool(self.dtype.is_floating_point)

    @property
    def nbytes(self) -> int:
        count = 1
        for s in self.shape:
            count *= s
        return count * self.dtype.itemsize


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def drop_pages(tensor: torch.Tensor) -> None:
    """Release the resident pages behind a memory-mapped tensor (best effort, Linux/macOS)."""
    if _LIBC is None or tensor.numel() == 0:
        return
    storage = tensor.untyped_storage()
    start = storage.data_ptr()
    end = start + storage.nbytes()
    page = mmap.PAGESIZE
    first = start - start % page
    length = ((end + page - 1) // page) * page - first
    _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(length), _MADV_DONTNEED)


def from_mapped(tensor: torch.Tensor) -> LazyTensor:
    """A LazyTensor for a tensor living in a private read-only file mapping (torch.load mmap=True)."""

    def read() -> torch.Tensor:
        copy = tensor.detach().clone()
        drop_pages(tensor)
        return copy

    return LazyTensor(tuple(int(s) for s in tensor.shape), tensor.dtype, read)


def materialize(value: Any) -> Any:
    """A real tensor for a LazyTensor; anything else as it is."""
    return value.read() if isinstance(value, LazyTensor) else value


class TensorMap(Mapping[str, "torch.Tensor"]):
    """A network's state dict whose tensors are read on every access and never kept."""

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> torch.Tensor:
        return materialize(self._items[key])  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def meta(self) -> dict[str, torch.Tensor]:
        """Tensors on the 'meta' device with the same shapes and dtypes: layout without reading."""
        import torch

        return {k: torch.empty(tuple(v.shape), dtype=v.dtype, device="meta") for k, v in self._items.items()}

    @property
    def nbytes(self) -> int:
        return sum(int(v.nbytes) for v in self._items.values())


def mapped_ranges(path: str) -> list[tuple[int, int]]:
    """Address ranges where this process maps `path` (Linux /proc/self/maps; [] elsewhere)."""
    ranges: list[tuple[int, int]] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].strip() == path:
                    lo, hi = parts[0].split("-")
                    ranges.append((int(lo, 16), int(hi, 16)))
    except OSError:
        return []
    return ranges


def lazy_network(tensors: Mapping[str, Any], mapped: list[tuple[int, int]]) -> TensorMap:
    """Wrap a grouped network; torch tensors whose storage lies in `mapped` become LazyTensors.

    Only storage proven to be a file mapping gets its pages dropped: MADV_DONTNEED on
    ordinary memory would zero it.
    """
    import torch

    items: dict[str, Any] = {}
    for key, value in tensors.items():
        if isinstance(value, torch.Tensor) and _inside(value, mapped):
            items[key] = from_mapped(value)
        else:
            items[key] = value
    return TensorMap(items)


def _inside(tensor: torch.Tensor, mapped: list[tuple[int, int]]) -> bool:
    storage = tensor.untyped_storage()
    start = storage.data_ptr()
    end = start + storage.nbytes()
    return any(lo <= start and end <= hi for lo, hi in mapped)
