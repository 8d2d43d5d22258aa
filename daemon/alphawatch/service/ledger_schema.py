"""The ledger's table layout and its row type (split out of ledger.py to keep it small).

Why a module of its own: the SQL schema and the row dataclass are data, read by the
ledger's queries and by anyone who reads a row; the transactions stay in ledger.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

STATUSES = ("pending", "analyzing", "done", "failed", "skipped")
# Failures worth another try: the file or the machine may be fine next time.
TRANSIENT_REASONS = frozenset({"timeout", "out_of_memory", "worker_crashed", "truncated", "unreadable"})
SCHEMA_VERSION = 1
# Claim order: lowest training step first, unknown steps last, then file age, then seen order.
ORDER = "step IS NULL, step, mtime_ns, id"
# Newest first, for "which checkpoint is the newest" (backlog: latest, the gauges): the
# highest KNOWN step wins; a name without a step (`best_model.pt`, `last.ckpt`, a plain
# state_dict) is usually a copy of an older or equal checkpoint, so it is the newest only
# when no checkpoint of the run has a step.
DESC = "step IS NULL, step DESC, mtime_ns DESC, id DESC"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    inode INTEGER,
    step INTEGER,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    message TEXT,
    seen_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    duration_seconds REAL,
    result TEXT,
    UNIQUE (run, path)
);
CREATE INDEX IF NOT EXISTS checkpoints_status ON checkpoints (status, run);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checkpoint_id INTEGER NOT NULL,
    run TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('done', 'failed')),
    reason TEXT,
    duration_seconds REAL,
    finished_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run, outcome);
CREATE TABLE IF NOT EXISTS stop_signals (
    run TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    payload TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
"""

FIELDS = ("id", "run", "path", "size", "mtime_ns", "inode", "step", "status", "attempts", "reason",
           "message", "seen_at", "started_at", "finished_at", "duration_seconds", "result")
COLUMNS = ("id, run, path, size, mtime_ns, inode, step, status, attempts, reason, message, "
            "seen_at, started_at, finished_at, duration_seconds, result")


@dataclass(frozen=True)
class LedgerRow:
    """One checkpoint as the ledger knows it; `result` is the parsed CheckpointResult."""

    id: int
    run: str
    path: str
    size: int | None
    mtime_ns: int | None
    inode: int | None
    step: int | None
    status: str
    attempts: int
    reason: str | None
    message: str | None
    seen_at: float
    started_at: float | None
    finished_at: float | None
    duration_seconds: float | None
    result: dict[str, Any] | None

    @classmethod
    def _from_db(cls, row: tuple[Any, ...]) -> LedgerRow:
        values = dict(zip(FIELDS, row, strict=True))
        text = values["result"]
        values["result"] = json.loads(text) if text is not None else None
        return cls(**values)


def training_order(rows: list[LedgerRow]) -> list[LedgerRow]:
    """Rows in training order: known steps ascending; a row without a step goes where its
    mtime puts it among them (after every stepped row written no later than it).

    Why not "unknown last" (the claim order): `torch.save(model.state_dict(),
    "best_model.pt")` next to `model_<epoch>.pt` has no step anywhere, and sorting it last
    would make a stale best model the stop rule's "newest checkpoint" forever.
    """
    known = sorted((r for r in rows if r.step is not None), key=lambda r: (r.step, r.mtime_ns or 0, r.id))
    unknown = sorted((r for r in rows if r.step is None), key=lambda r: (r.mtime_ns or 0, r.id))
    out: list[LedgerRow] = []
    i = 0
    for row in known:
        while i < len(unknown) and (unknown[i].mtime_ns or 0) < (row.mtime_ns or 0):
            out.append(unknown[i])
            i += 1
        out.append(row)
    out.extend(unknown[i:])
    return out
