"""A name for a file that torch's and safetensors' native readers accept, whatever its bytes.

Why: Linux file names are bytes, and Python hands a name that is not valid UTF-8
(b"bad\\xff.pt") over with surrogate escapes ('bad\\udcff.pt'). Python's own `open` takes
those back, but torch.load and safetensors pass the name to C++ / Rust as UTF-8 text and
fail ("surrogates not allowed"), so such a checkpoint could never be analyzed. Here the
file is opened by Python and named through /proc/self/fd/N: the same file, an ASCII name.
Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alphawatch.errors import CheckpointError


@contextmanager
def native_path(path: Path) -> Iterator[str]:
    """`str(path)` when it is valid UTF-8; else a /proc/self/fd name valid while in the block."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield text
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        alias = f"/proc/self/fd/{fd}"
        if not os.path.exists(alias):
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            raise CheckpointError("unreadable", f"{shown}: the name is not valid UTF-8, and without "
                                  "/proc the native readers cannot be given it; rename the file")
        yield alias
    finally:
        os.close(fd)
