"""Which watchdog observer to use for a folder, and building it.

Why this matters: inotify only reports changes made through the local kernel. On
NFS/SMB, FUSE mounts and folders shared into a VM (9p, virtiofs, vboxsf, Docker
Desktop's grpcfuse), files written by another machine or by the host never raise
an inotify event, so a daemon relying on it would silently see nothing. `auto`
therefore looks up the filesystem type of the watched path in
/proc/self/mountinfo and polls on those; everywhere else it uses inotify (with
close-after-write events), and falls back to polling if inotify cannot be set up
(no inotify on this OS, watch or instance limits reached).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

# Filesystem types on which inotify misses writes made elsewhere (remote, FUSE, VM shares).
POLLING_FSTYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "coda",
        "9p",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
        "prl_fs",
        "drvfs",
        "v9fs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ocfs2",
        "gfs2",
        "orangefs",
        "davfs",
        "fuse",
        "fuseblk",
        "sshfs",
    }
)


@dataclass(frozen=True)
class ObserverChoice:
    kind: str  # "inotify" | "polling"
    reason: str  # one phrase for the log: why this kind


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: Path, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """fstype of the mount holding `path` (or its nearest existing parent); None if unknown."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    real = os.path.realpath(probe)
    best, best_type = "", None
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount_point = _unescape(fields[4])
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, right.split()[0]
    return best_type


def needs_polling(fstype: str | None) -> bool:
    if fstype is None:
        return False
    return fstype in POLLING_FSTYPES or fstype.startswith("fuse.") or fstype.startswith("nfs")


def choose_observer(requested: str, path: Path) -> ObserverChoice:
    """Resolve `watch.observer` (auto | inotify | polling) for one watched folder."""
    if requested == "polling":
        return ObserverChoice("polling", "configured")
    if requested == "inotify":
        return ObserverChoice("inotify", "configured")
    if not sys.platform.startswith("linux"):
        return ObserverChoice("polling", f"no inotify on {sys.platform}")
    fstype = filesystem_type(path)
    if needs_polling(fstype):
        return ObserverChoice("polling", f"{fstype} filesystem: inotify misses remote writes")
    return ObserverChoice("inotify", f"local {fstype or 'unknown'} filesystem")


def make_observer(kind: str, polling_interval: float) -> BaseObserver:
    """A fresh, unstarted observer; raises on platforms without inotify."""
    if kind == "polling":
        return PollingObserver(timeout=polling_interval)
    from watchdog.observers.inotify import InotifyObserver

    return InotifyObserver()
