"""Where untrusted paths are resolved: symlinks must not lead out of the watched tree.

torch.load, safe_open and zipfile all follow symlinks, so a link planted in the
watched folder (`last.ckpt -> /etc/shadow`, or `-> /home/me/secret.pt`) would make
alphawatch read files its operator never pointed it at. Every path is resolved once
here and only the resolved path is opened afterwards.

This is the one containment check: the watcher, the daemon, its worker and the loader all
call `resolve_within`, so they agree on what is inside, and a dangling link or a link loop
is reported as what it is (`unreadable`), not as "outside the watched folder".
Standard library only: the daemon's main process uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from alphawatch.errors import CheckpointError


def resolve_within(path: Path, root: Path | None) -> Path:
    """The fully resolved `path`; CheckpointError if missing or outside `root` (when given)."""
    try:
        resolved = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError as exc:
        raise CheckpointError("unreadable", f"{path}: no such file or directory") from exc
    except PermissionError as exc:
        raise CheckpointError("unreadable", f"{path}: permission denied while resolving the path") from exc
    except OSError as exc:  # symlink loops, names too long, I/O errors
        reason = exc.strerror or exc
        raise CheckpointError("unreadable", f"{path}: cannot resolve the path ({reason})") from exc
    if root is not None:
        try:
            root_resolved = Path(os.path.realpath(root, strict=True))
        except OSError as exc:  # nothing can be inside a folder that is not there
            raise CheckpointError("unreadable", f"{path}: the watched folder {root} cannot be resolved "
                                  f"({exc.strerror or exc})") from exc
        if resolved != root_resolved and not resolved.is_relative_to(root_resolved):
            raise CheckpointError(
                "outside_watch",
                f"{path}: resolves to {resolved}, outside the watched folder {root_resolved}; refused",
            )
    return resolved


def member_within(folder: Path, name: str, root: Path | None) -> Path:
    """A file named inside a folder (HF shard from an index), re-checked against `root`.

    Names that climb out (`../x`, `/etc/x`) are refused even without a root: an index
    file has no business pointing there.
    """
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise CheckpointError("outside_watch", f"{folder}: refers to {name!r}, outside the folder; refused")
    return resolve_within(folder / name, root)
