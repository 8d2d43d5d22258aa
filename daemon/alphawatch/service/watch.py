"""Detect COMPLETE checkpoints in a watched folder (watchdog + rescans).

Why it is careful: producers write checkpoints progressively (`torch.save` in
place), copy them in slowly (Lightning across filesystems), or build folders file
by file (Hugging Face `checkpoint-N/`, torch.distributed.checkpoint). A creation
event fires when writing *starts*. So an event only makes a path a *candidate*;
it is handed on once

1. (inotify only) every file written inside it has been closed after writing
   (`FileClosedEvent`) or it was renamed into place (moved event, `dest_path`);
2. its identity (size, mtime, inode; summed over a folder's tree) has not changed
   for `quiet_period_seconds` — the rule that also covers polling, NFS and events
   inotify dropped;
3. `alphawatch.checkpoints.is_complete(path)` accepts its structure (zip central
   directory, safetensors header, `trainer_state.json`, DCP `.metadata`).

A file whose bytes can never become a checkpoint (not a format we read, a code-running
pickle) is handed on after the quiet period, so its failure is reported at once. A
*file* that stays structurally incomplete but untouched for the stale hold
(`max(rescan_interval, 10 x quiet period)`) is handed on anyway, marked `incomplete`,
so a truncated file becomes a failed ledger row with a reason instead of vanishing. A
symlink that leads outside the watched folder (or nowhere) is handed on marked with the
reason, without reading its target (the daemon refuses it). Which folders are one
checkpoint is `alphawatch.checkpoints.is_checkpoint_folder`, the rule the CLI uses too.

A startup scan and a periodic rescan catch what the observer missed; a folder
that does not exist yet is waited for; one deleted and recreated is re-armed.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirDeletedEvent,
    FileClosedEvent,
    FileModifiedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from alphawatch.checkpoints import completeness, is_checkpoint_folder
from alphawatch.checkpoints.safety import resolve_within
from alphawatch.checkpoints.sniff import named_like_a_file
from alphawatch.config import RunConfig, WatchConfig
from alphawatch.errors import CheckpointError
from alphawatch.service.observers import choose_observer, make_observer, on_inotify_overflow
from alphawatch.service.paths import Identity, identity_of


@dataclass(frozen=True)
class Candidate:
    """A checkpoint ready for the ledger. `note`: None, "incomplete", or the reason a link is
    refused ("outside_watch", "unreadable")."""

    run: str
    path: Path
    identity: Identity
    step: int | None
    note: str | None = None


@dataclass
class _Pending:
    identity: Identity | None = None
    changed_at: float = 0.0
    writers: set[str] = field(default_factory=set)  # files modified and not yet closed (inotify)
    failures: int = 0  # hand-overs that failed in a row (the ledger refused): the wait doubles


class _Handler(FileSystemEventHandler):
    """Turns watchdog events into candidate touches (runs on the observer's thread)."""

    def __init__(self, watcher: RunWatcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        w = self.watcher
        src = Path(os.fsdecode(event.src_path)) if event.src_path else None
        if isinstance(event, DirDeletedEvent) and src == w.root:
            w.root_gone.set()
            return
        if event.event_type == "moved":
            dest = Path(os.fsdecode(event.dest_path))
            if src is not None:  # the name a writer had open is gone: that writer is done
                w.touch(src, closed=True)
                w.renamed(src, dest)
            w.touch(dest, closed=True)
        elif isinstance(event, FileModifiedEvent) and src is not None:
            w.touch(src, writing=True)
        elif isinstance(event, FileClosedEvent) and src is not None:
            w.touch(src, closed=True)
        elif event.event_type in ("created", "deleted", "modified") and src is not None:
            w.touch(src)


class RunWatcher:
    """Watches one run's folder and calls `emit(Candidate)` once per complete version."""

    def __init__(
        self,
        run: RunConfig,
        cfg: WatchConfig,
        emit: Callable[[Candidate], None],
        logger: Any = None,
        moved_away: Callable[[str, Path], None] | None = None,
    ) -> None:
        from alphawatch.service.logging import get_logger

        self.run, self.cfg, self.emit, self.moved_away = run, cfg, emit, moved_away
        self.log = logger if logger is not None else get_logger("alphawatch.watch")
        self.root = Path(os.path.abspath(run.watch))
        self.root_gone = threading.Event()
        self.observer_kind: str | None = None
        self._observer: BaseObserver | None = None
        self._armed_id: tuple[int, int] | None = None
        self._pending: dict[Path, _Pending] = {}
        self._settled: dict[Path, Identity] = {}  # last identity emitted or found dormant
        # completeness verdict per pending candidate, for the identity it was reached on: an
        # unchanged file is judged once, not on every tick (a crafted file may be costly to read)
        self._verdicts: dict[Path, tuple[Identity, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_rescan = 0.0
        self._cancel_alarm: Callable[[], None] | None = None
        self.tick = max(0.05, min(0.5, cfg.quiet_period_seconds / 4))
        self.stale_hold = max(cfg.rescan_interval_seconds, 10 * cfg.quiet_period_seconds)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"watch-{self.run.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._disarm()

    def status(self) -> tuple[bool, str]:
        """(running, detail) for /readyz: waiting for a missing folder counts as running."""
        if self._thread is None or not self._thread.is_alive():
            return False, f"watcher for {self.root} is not running"
        if self._observer is None:
            return True, f"waiting for {self.root} to exist"
        if not self._observer.is_alive():
            return False, f"{self.observer_kind} observer for {self.root} stopped"
        return True, f"{self.observer_kind} observer on {self.root}"

    # ---------------------------------------------------------------- events
    def touch(self, path: Path, *, writing: bool = False, closed: bool = False) -> None:
        """Mark the candidate containing `path` as changed (called from observer threads)."""
        cand = self.candidate_for(path)
        if cand is None:
            return
        with self._lock:
            entry = self._pending.get(cand)
            if entry is None:
                entry = self._pending[cand] = _Pending()
                self.log.info("checkpoint_seen", run=self.run.name, path=str(cand))
            if writing:
                entry.writers.add(str(path))
            elif closed:
                entry.writers.discard(str(path))

    def renamed(self, src: Path, dest: Path) -> None:
        """A candidate renamed to a name that is not one (ignored, or outside the watched set)
        has left: `moved_away(run, src)` tells the ledger. A rename to another candidate needs
        nothing here: the destination is recorded, and the ledger sees the same identity."""
        if self.moved_away is None or self.candidate_for(src) != src or self.candidate_for(dest) is not None:
            return
        try:
            self.moved_away(self.run.name, src)
        except Exception as exc:  # the ledger may be briefly unavailable; the row stays as it was
            self.log.warning("watch_emit_failed", run=self.run.name, path=str(src),
                             error=f"{type(exc).__name__}: {exc}")

    def candidate_for(self, path: Path) -> Path | None:
        """The checkpoint (file or checkpoint folder) that `path` belongs to, or None."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return None
        parts = rel.parts
        if not parts:
            return None
        cur = self.root
        for i, part in enumerate(parts):
            if self._ignored(part):
                return None
            cur = cur / part
            if not os.path.isdir(cur) or os.path.islink(cur):
                # a file, a link or a path that is gone: only the last component can be one
                at_top_or_deep = self.run.recursive or i == 0
                return cur if at_top_or_deep and i == len(parts) - 1 else None
            if is_checkpoint_folder(cur):
                return cur  # a folder that is one checkpoint (HF, DCP, save_pretrained)
            if named_like_a_file(cur) and i == len(parts) - 1 and (self.run.recursive or i == 0):
                return cur  # `model.pt/`: refused as `is_directory`, once, instead of ignored
            if not self.run.recursive:
                return None  # other folders are only descended into with `recursive`
        return None

    def _ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pat) for pat in self.cfg.ignore)

    # ---------------------------------------------------------------- the loop
    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.step(time.monotonic())
                failures = 0
            except Exception as exc:  # never let the watcher thread die; say so, back off
                failures += 1
                if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th ... in a row
                    self.log.error("watch_error", run=self.run.name, error=f"{type(exc).__name__}: {exc}",
                                   failures_in_a_row=failures)
            self._stop.wait(min(self.tick * 2 ** min(failures, 10), 30.0))

    def step(self, now: float) -> None:
        """One turn of the loop at time `now` (monotonic seconds). The loop passes the real
        clock; tests call it with a fake one, without start(), so no time passes unseen."""
        self._check_root()
        if self._observer is None:
            return
        if now >= self._next_rescan:
            self.rescan()
            interval = self.cfg.rescan_interval_seconds  # 0: only the scan when the folder is armed
            self._next_rescan = now + interval if interval > 0 else float("inf")
        self._process(now)

    def _check_root(self) -> None:
        try:
            st = os.stat(self.root)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino) if os.path.isdir(self.root) else None
        except OSError:
            current = None
        dead = self._observer is not None and (
            not self._observer.is_alive() or any(not e.is_alive() for e in self._observer.emitters)
        )
        if self._observer is not None and (self.root_gone.is_set() or current != self._armed_id or dead):
            self.log.warning("watch_folder_lost", run=self.run.name, folder=str(self.root))
            self._disarm()
        if self._observer is None and current is not None:
            self._arm(current)

    def _arm(self, root_id: tuple[int, int]) -> None:
        choice = choose_observer(self.cfg.observer, self.root)
        kind, reason = choice.kind, choice.reason
        try:
            observer = self._start_observer(kind)
        except Exception as exc:
            if kind == "polling":
                raise
            error = f"{type(exc).__name__}: {exc}"
            self.log.warning("observer_fallback", run=self.run.name, wanted=kind, error=error)
            kind, reason = "polling", f"inotify unavailable ({exc})"
            observer = self._start_observer(kind)
        self.root_gone.clear()
        self._observer, self.observer_kind, self._armed_id = observer, kind, root_id
        self._next_rescan = 0.0  # scan at once: the startup scan, or what appeared while away
        if kind == "inotify":
            self._cancel_alarm = on_inotify_overflow(self._overflowed)
        self.log.info("watch_started", run=self.run.name, folder=str(self.root), observer=kind, reason=reason)

    def _start_observer(self, kind: str) -> BaseObserver:
        observer = make_observer(kind, self.cfg.polling_interval_seconds)
        observer.schedule(_Handler(self), str(self.root), recursive=True)
        observer.start()
        return observer

    def _overflowed(self) -> None:
        """The kernel dropped file events (its inotify queue overflowed): rescan now."""
        self.log.warning("watch_overflow", run=self.run.name, folder=str(self.root),
                         detail="the inotify queue overflowed and events were lost; rescanning now")
        self._next_rescan = 0.0

    def _disarm(self) -> None:
        if self._cancel_alarm is not None:
            self._cancel_alarm()
            self._cancel_alarm = None
        observer, self._observer, self._armed_id = self._observer, None, None
        if observer is not None:
            observer.stop()
            if observer.is_alive() and observer is not threading.current_thread():
                observer.join(timeout=5)
        with self._lock:
            self._pending.clear()
        self._settled.clear()  # a recreated folder holds new files, whatever their names
        self._verdicts.clear()

    def rescan(self) -> None:
        """Touch every candidate whose identity differs from the last one handed on."""
        found: set[Path] = set()
        listed, errors = self._scan()
        for cand in listed:
            found.add(cand)
            ident = identity_of(cand)
            if ident is not None and self._settled.get(cand) != ident:
                self.touch(cand)
        if errors:  # a folder could not be listed (no descriptors left, permissions): what it
            return  # holds is unknown, not gone; forgetting it would hand everything on again
        for gone in set(self._settled) - found:
            del self._settled[gone]

    def _scan(self) -> tuple[list[Path], list[OSError]]:
        out: list[Path] = []
        errors: list[OSError] = []
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=errors.append, followlinks=False):
            here = Path(dirpath)
            for name in list(dirnames):
                sub = here / name
                cand = self.candidate_for(sub)
                if cand is not None and cand == sub:
                    out.append(sub)
                    dirnames.remove(name)
                elif not self.run.recursive or self._ignored(name):
                    dirnames.remove(name)
            for name in filenames:
                cand = self.candidate_for(here / name)
                if cand == here / name:
                    out.append(cand)
        return out, errors

    def _process(self, now: float) -> None:
        with self._lock:
            items = list(self._pending.items())
        for cand, entry in items:
            if self._stop.is_set():
                return
            verdict = self._judge(cand, entry, now)
            if verdict is None:
                continue
            self._verdicts.pop(cand, None)
            with self._lock:
                if self._pending.get(cand) is entry:
                    del self._pending[cand]

    def _judge(self, cand: Path, entry: _Pending, now: float) -> str | None:
        """Decide one pending candidate; returns a verdict when it leaves the pending set."""
        ident = identity_of(cand)
        if ident is None:  # renamed away (a temp file) or deleted before it settled
            if self._settled.get(cand) is None:
                self.log.info("checkpoint_vanished", run=self.run.name, path=str(cand))
            return "gone"
        if ident != entry.identity:
            entry.identity, entry.changed_at = ident, now
            return None
        quiet = now - entry.changed_at
        if quiet < self.cfg.quiet_period_seconds:
            return None
        if self._settled.get(cand) == ident:
            return "already"
        if self.observer_kind == "inotify" and entry.writers and quiet < self.stale_hold:
            return None  # a writer has the file open: wait for its close-after-write
        note = self._classify(cand, ident, quiet)
        if note == "wait":
            return None
        if note == "dormant" or note == "duplicate":
            self._settled[cand] = ident
            return note
        verdict = self._emit(Candidate(self.run.name, cand, ident, _step_of(cand), note), entry)
        if verdict is None:  # retry after 2, 4, 8 ... quiet periods (at most the stale hold)
            entry.failures += 1
            wait = min(self.cfg.quiet_period_seconds * (2 ** entry.failures - 1), self.stale_hold)
            entry.changed_at = now + wait
        return verdict

    def _classify(self, cand: Path, ident: Identity, quiet: float) -> str | None:
        """None (hand it on), "incomplete", a link's refusal reason, "duplicate", "dormant" or "wait"."""
        if os.path.islink(cand):
            try:
                target = resolve_within(cand, self.root)
            except CheckpointError as exc:
                return exc.reason  # never read the target: it is not ours to open
            if self.candidate_for(target) == target:
                return "duplicate"  # e.g. Lightning's last.ckpt link: the target is analyzed itself
        if self._completeness(cand, ident) != "incomplete":  # complete, or never one: say so now
            return None
        if quiet < self.stale_hold:
            return "wait"
        return "dormant" if os.path.isdir(cand) else "incomplete"

    def _completeness(self, cand: Path, ident: Identity) -> str:
        """`checkpoints.completeness`, computed once per identity (size, mtime, inode)."""
        known = self._verdicts.get(cand)
        if known is not None and known[0] == ident:
            return known[1]
        verdict = completeness(cand)
        self._verdicts[cand] = (ident, verdict)
        return verdict

    def _emit(self, cand: Candidate, entry: _Pending) -> str | None:
        try:
            self.emit(cand)
        except Exception as exc:  # the ledger may be briefly unavailable: retried, backing off
            error = f"{type(exc).__name__}: {exc}"
            level = self.log.warning if entry.failures == 0 else self.log.debug  # said once
            level("watch_emit_failed", run=cand.run, path=str(cand.path), error=error,
                  attempt=entry.failures + 1)
            return None
        self._settled[cand.path] = cand.identity
        return "emitted"


def _step_of(path: Path) -> int | None:
    from alphawatch.checkpoints import parse_step

    try:
        return parse_step(path.name)
    except Exception:
        return None
