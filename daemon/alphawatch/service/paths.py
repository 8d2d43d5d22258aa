"""What makes one version of a checkpoint distinct (stdlib only).

"Does this path stay inside the watched folder?" is not here: it is
`alphawatch.checkpoints.safety.resolve_within`, the one check every hop uses.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    """What makes one version of a checkpoint distinct: a rewrite changes at least one field."""

    size: int
    mtime_ns: int
    inode: int


def identity_of(path: Path) -> Identity | None:
    """Identity of a file or a checkpoint folder, never following symlinks; None if it is gone.

    A folder's identity aggregates its tree (sum of file sizes, newest mtime) so that
    any file written inside it counts as a change of the folder.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return Identity(st.st_size, st.st_mtime_ns, st.st_ino)
    size, newest = 0, st.st_mtime_ns
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in filenames + dirnames:
            try:
                sub = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if not stat.S_ISDIR(sub.st_mode):
                size += sub.st_size
            newest = max(newest, sub.st_mtime_ns)
    return Identity(size, newest, st.st_ino)
