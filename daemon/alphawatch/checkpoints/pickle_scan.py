"""Read pickles without unpickling them: which code would they import or call?

Used to refuse plain pickles (not written by torch.save) with a message naming what
they would have run, and to check that a legacy torch file is complete. Nothing here
imports or calls anything named in the file: `pickletools.genops` only decodes
opcodes, and `_InertUnpickler` turns every global into a recording stub.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
from pathlib import Path
from typing import Any, BinaryIO

# Opcodes that import a global or call/instantiate one.
_CODE_OPCODES = {
    "GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
}  # fmt: skip
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}

# torch's legacy format starts with pickle(MAGIC_NUMBER): PROTO 2, LONG1 with 10 bytes.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PREFIX = b"\x8a\x0a" + TORCH_LEGACY_MAGIC.to_bytes(10, "little")


def is_torch_legacy_head(head: bytes) -> bool:
    """A pickle whose first value is torch's magic number (pre-1.6 `torch.save`)."""
    return len(head) >= 14 and head[0] == 0x80 and head[2:14] == TORCH_LEGACY_PREFIX


def globals_used(fh: BinaryIO, max_ops: int = 5_000_000) -> tuple[list[str], bool]:
    """Globals a pickle would import (best effort names), and whether it calls anything.

    Stops at the pickle's STOP opcode. Raises ValueError on a malformed or cut-off pickle.
    """
    names: list[str] = []
    calls = False
    strings: list[str] = []  # strings pushed so far (STACK_GLOBAL takes the last two)
    memo: dict[int, str] = {}  # memo slot -> string, to follow BINGET back to a name
    memo_count = 0
    top: str | None = None  # the string on top of the stack, if the last push was one
    for count, (op, arg, _pos) in enumerate(pickletools.genops(fh)):
        if count > max_ops:
            break
        name = op.name
        if name in _STRING_OPCODES and isinstance(arg, str | bytes):
            top = arg if isinstance(arg, str) else arg.decode("latin-1")
            strings.append(top)
            continue
        if name in ("BINPUT", "LONG_BINPUT", "PUT"):
            if top is not None:
                memo[int(str(arg))] = top
            continue
        if name == "MEMOIZE":
            if top is not None:
                memo[memo_count] = top
            memo_count += 1
            continue
        if name in ("BINGET", "LONG_BINGET", "GET") and int(str(arg)) in memo:
            top = memo[int(str(arg))]
            strings.append(top)
            continue
        top = None
        if name in _CODE_OPCODES:
            calls = True
            if name in ("GLOBAL", "INST") and isinstance(arg, str):
                names.append(arg.replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
        if name == "STOP":
            break
    return sorted(set(names)), calls


class _Stub:
    """Stands in for any global: records its name, accepts any call or state, does nothing."""

    stub_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _InertUnpickler(pickle.Unpickler):
    """Unpickles structure only: every global becomes a fresh `_Stub` subclass."""

    def __init__(self, fh: BinaryIO) -> None:
        super().__init__(fh, encoding="latin-1")
        self.persistent_ids: list[tuple[Any, ...]] = []

    def find_class(self, module: str, name: str) -> type[_Stub]:
        return type("Stub", (_Stub,), {"stub_name": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple):
            self.persistent_ids.append(pid)
        return _Stub()


_ELEMENT_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
    "ByteStorage": 1, "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
    "UntypedStorage": 1, "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4,
}  # fmt: skip


# The object pickle of a real legacy file is ~100 bytes per tensor (4 MiB: ~40,000
# tensors); beyond this the inert rebuild (objects are ~20x their opcodes) would cost the
# daemon's main process real memory, so only the cheaper structural check is made.
MAX_INERT_PICKLE = 4 * 2**20


def _skip_pickle(fh: BinaryIO) -> None:
    for op, _arg, _pos in pickletools.genops(fh):
        if op.name == "STOP":
            return


def legacy_torch_is_complete(path: Path) -> bool:
    """Best-effort completeness of a legacy (pre-1.6) torch file (see `legacy_torch_state`)."""
    return legacy_torch_state(path) == "complete"


def legacy_torch_state(path: Path) -> str:
    """"complete", "truncated" (ends early) or "malformed" for a legacy torch file.

    Layout: five pickles (magic, protocol, sys info, the object, the storage keys)
    then, per storage key in order, an 8-byte element count and the raw bytes. The
    object pickle is read with `_InertUnpickler` to learn each storage's type and size;
    the file is complete when those storages end exactly at end of file.
    """
    try:
        size = path.stat().st_size
        fh = open(path, "rb")
    except OSError:
        return "malformed"
    with fh:
        try:
            return _legacy_layout(fh, size)
        except Exception:  # a malformed pickle: cut off if it ran into the end of the file
            return "truncated" if fh.tell() >= size else "malformed"


def _legacy_layout(fh: BinaryIO, size: int) -> str:
    for _ in range(3):
        _skip_pickle(fh)
    start = fh.tell()
    _skip_pickle(fh)
    end = fh.tell()
    if end - start > MAX_INERT_PICKLE:
        # Too big to rebuild even inertly in the daemon's process: settle for "the
        # storage-key list parses and raw storage bytes follow it".
        _skip_pickle(fh)
        return "complete" if fh.tell() < size else "truncated"
    fh.seek(start)
    inert = _InertUnpickler(io.BytesIO(fh.read(end - start)))
    inert.load()
    fh.seek(end)
    keys = _InertUnpickler(fh).load()
    if not isinstance(keys, list):
        return "malformed"
    storages: dict[str, tuple[int, int]] = {}
    for pid in inert.persistent_ids:
        if len(pid) >= 5 and pid[0] == "storage":
            type_name = getattr(pid[1], "stub_name", "").rsplit(".", 1)[-1]
            storages[str(pid[2])] = (_ELEMENT_SIZES.get(type_name, 0), int(pid[4]))
    offset = fh.tell()
    for key in keys:
        elem, numel = storages.get(str(key), (0, -1))
        if elem == 0:
            return "malformed"
        if offset + 8 > size:
            return "truncated"
        fh.seek(offset)
        if struct.unpack("<q", fh.read(8))[0] != numel:
            return "malformed"
        offset += 8 + numel * elem
    if offset > size:
        return "truncated"
    return "complete" if offset == size else "malformed"
