"""Which watchdog observer to use for a folder, and building it.

Why this matters: native file events (inotify, FSEvents, ReadDirectoryChangesW) only
report changes made through the local kernel. On NFS/SMB, FUSE mounts and folders shared
into a VM (9p, virtiofs, vboxsf, Docker Desktop's grpcfuse), files written by another
machine or by the host raise no event, so a daemon relying on them would silently see
nothing. `auto` therefore looks up the filesystem type of the watched path
(/proc/self/mountinfo on Linux, `mount`'s table on macOS) and polls on those; everywhere
else it uses the platform's native observer: inotify on Linux (with close-after-write
events), FSEvents on macOS, the Windows API, kqueue on BSD (watchdog's `Observer`). It
falls back to polling if the native one cannot be set up (watch or instance limits).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
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
        "afpfs",
        "webdav",
    }
)


@dataclass(frozen=True)
class ObserverChoice:
    kind: str  # "inotify" | "native" | "polling"
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


def _mountinfo_table(text: str) -> list[tuple[str, str]]:
    """(mount point, fstype) from Linux's /proc/self/mountinfo."""
    table = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5 and right.split():
            table.append((_unescape(fields[4]), right.split()[0]))
    return table


# macOS / BSD `mount` lines: "map auto_home on /System/Volumes/Data/home (autofs, automounted)"
_MOUNT_LINE = re.compile(r"^.* on (?P<point>/.*?) \((?P<fstype>[^,)]+)")


def mount_table(text: str) -> list[tuple[str, str]]:
    """(mount point, fstype) from the output of `mount` on macOS and the BSDs."""
    return [(m["point"], m["fstype"].strip()) for line in text.splitlines() if (m := _MOUNT_LINE.match(line))]


def _system_table(mountinfo: str) -> list[tuple[str, str]]:
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            return _mountinfo_table(fh.read())
    except OSError:
        pass
    try:  # no /proc: macOS, BSD
        out = subprocess.run(["mount"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return mount_table(out)


def filesystem_type(path: Path, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """fstype of the mount holding `path` (or its nearest existing parent); None if unknown."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    real = os.path.realpath(probe)
    best, best_type = "", None
    for mount_point, fstype in _system_table(mountinfo):
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fstype
    return best_type


def needs_polling(fstype: str | None) -> bool:
    if fstype is None:
        return False
    return fstype in POLLING_FSTYPES or fstype.startswith(("fuse.", "nfs", "macfuse", "osxfuse"))


def choose_observer(requested: str, path: Path) -> ObserverChoice:
    """Resolve `watch.observer` (auto | inotify | polling) for one watched folder."""
    if requested == "polling":
        return ObserverChoice("polling", "configured")
    if requested == "inotify":
        return ObserverChoice("inotify", "configured")
    fstype = filesystem_type(path)
    if needs_polling(fstype):
        return ObserverChoice("polling", f"{fstype} filesystem: file events miss remote writes")
    if sys.platform.startswith("linux"):
        return ObserverChoice("inotify", f"local {fstype or 'unknown'} filesystem")
    return ObserverChoice("native", f"local {fstype or 'unknown'} filesystem on {sys.platform}")


def make_observer(kind: str, polling_interval: float) -> BaseObserver:
    """A fresh, unstarted observer; raises where the kind cannot work (inotify off Linux)."""
    if kind == "polling":
        return PollingObserver(timeout=polling_interval)
    if kind == "native":
        from watchdog.observers import Observer

        return Observer()  # type: ignore[no-any-return]
    from watchdog.observers.inotify import InotifyObserver

    return InotifyObserver()


# ---------------------------------------------------------------- inotify queue overflow

_INOTIFY_LOGGER = "watchdog.observers.inotify_c"


class _OverflowAlarm(logging.Handler):
    """Turns watchdog's "Inotify queue overflowed" log record into calls.

    Why a log handler: when the kernel's queue (fs.inotify.max_queued_events) overflows,
    events are lost and watchdog says so only in that record; it has no event or callback
    for it. A watcher that hears it rescans its folder at once, instead of at its next
    periodic rescan (a minute by default).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.callbacks: list[Callable[[], None]] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" not in record.getMessage().lower():
            return
        with self.guard:
            callbacks = list(self.callbacks)
        for callback in callbacks:
            callback()


_ALARM = _OverflowAlarm()


def on_inotify_overflow(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` (from an observer thread) whenever an inotify queue overflows; returns
    the function that stops it."""
    logger = logging.getLogger(_INOTIFY_LOGGER)
    if _ALARM not in logger.handlers:
        logger.addHandler(_ALARM)
        logger.setLevel(logging.WARNING)  # the record must exist whatever the log level
    with _ALARM.guard:
        _ALARM.callbacks.append(callback)

    def cancel() -> None:
        with _ALARM.guard:
            if callback in _ALARM.callbacks:
                _ALARM.callbacks.remove(callback)

    return cancel
