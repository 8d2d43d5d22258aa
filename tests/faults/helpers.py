"""Shared by the fault tests: sizes (CI or full), /proc figures, and the ledger audit.

Why an audit instead of counting log lines: the ledger is the daemon's record of what it
did, so "lost" (a checkpoint written but never analyzed) and "duplicated" (one checkpoint
analyzed twice) are read from it, from another process, exactly as an operator would.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FULL = os.environ.get("ALPHAWATCH_FAULTS", "").lower() == "full"


def sized(ci: int, full: int) -> int:
    """`full` under `make faults` (ALPHAWATCH_FAULTS=full), else the compressed CI size."""
    return full if FULL else ci


# ------------------------------------------------------------------ /proc


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in KiB, threads and open descriptors of a live process."""
    out = {"rss_kb": 0, "hwm_kb": 0, "threads": 0, "fds": 0}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                out["rss_kb"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["hwm_kb"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _live_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the /proc/PID/stat fields after the command name) of every process still there."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                yield int(entry), fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from each process's parent in /proc)."""
    return [child for child, fields in _live_stats() if int(fields[1]) == pid]


def processes_mentioning(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (e.g. a worker's parent pid)."""
    found = []
    for pid, fields in _live_stats():
        if fields[0] == "Z":
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(pid)
    return found


# ------------------------------------------------------------------ the ledger, read-only


def read_ledger(state: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(checkpoint rows, attempts) from the ledger file, read-only from this process."""
    if not state.exists():
        return [], []
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM checkpoints ORDER BY id")]
        for row in rows:  # a name that is not UTF-8 is stored as its bytes (ledger_schema.path_to_db)
            if isinstance(row["path"], bytes):
                row["path"] = os.fsdecode(row["path"])
        attempts = [dict(r) for r in conn.execute("SELECT * FROM attempts ORDER BY id")]
    finally:
        conn.close()
    return rows, attempts


@dataclass
class Audit:
    """What the ledger says about the checkpoints a test wrote."""

    count: int
    lost: int
    duplicated: int
    worst_latency_s: float | None
    missing: list[str] = field(default_factory=list)


def audit(state: Path, written: dict[str, float], done_only: Iterable[str] | None = None) -> Audit:
    """Every path in `written` (path -> unix time its last byte was down) must have exactly
    one `done` attempt: lost = none, duplicated = more than one. Latency = the row's
    finish time minus the write time."""
    rows, attempts = read_ledger(state)
    by_path = {r["path"]: r for r in rows}
    done_attempts: dict[int, int] = {}
    for a in attempts:
        if a["outcome"] == "done":
            done_attempts[a["checkpoint_id"]] = done_attempts.get(a["checkpoint_id"], 0) + 1
    expected = set(done_only) if done_only is not None else set(written)
    missing, duplicated, worst = [], 0, None
    for path in sorted(expected):
        row = by_path.get(path)
        if row is None or row["status"] != "done":
            missing.append(path)
            continue
        duplicated += max(done_attempts.get(row["id"], 0) - 1, 0)
        latency = row["finished_at"] - written[path]
        worst = latency if worst is None else max(worst, latency)
    return Audit(len(expected), len(missing), duplicated, worst, missing)


# ------------------------------------------------------------------ producers


class Producer:
    """Renames pre-written checkpoints into the watched folder, one every `interval` seconds,
    from a thread (like a training job), and remembers when each arrived."""

    def __init__(self, staged: list[Path], folder: Path, interval: float) -> None:
        import threading

        self.staged, self.folder, self.interval = staged, folder, interval
        self.written: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def start(self) -> Producer:
        self._thread.start()
        return self

    def _run(self) -> None:
        import time

        for path in self.staged:
            if self._stop.wait(self.interval):
                return
            target = self.folder / path.name
            path.rename(target)
            self.written[str(target)] = time.time()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def stage_checkpoints(folder: Path, count: int, *, hidden: int = 16, overfit_last: int = 0) -> list[Path]:
    """`count` distinct SAC checkpoints step_1.pt ... (the last `overfit_last` heavy-tailed:
    alpha ~1.5, below the stop threshold), written into `folder` to be renamed in later."""
    from tests.factories import save_sac_checkpoint
    from tests.service.conftest import save_heavy_tailed_sac

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for step in range(1, count + 1):
        path = folder / f"step_{step}.pt"
        if step > count - overfit_last:
            save_heavy_tailed_sac(path, step=step, hidden=max(hidden, 64), seed=step)
        else:
            save_sac_checkpoint(path, step=step, seed=step, hidden=hidden)
        out.append(path)
    return out
