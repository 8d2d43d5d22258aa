"""The ledger's table layout and its row type (split out of ledger.py to keep it small).

Why a module of its own: the SQL schema and the row dataclass are data, read by the
ledger's queries and by anyone who reads a row; the transactions stay in ledger.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, cast

from alphawatch.results import CheckpointResult

STATUSES = ("pending", "analyzing", "done", "failed", "skipped")
# Failures worth another try: the file or the machine may be fine next time.
TRANSIENT_REASONS = frozenset({"timeout", "out_of_memory", "worker_crashed", "truncated", "unreadable"})
# 2: order_step (training-order anchor), fingerprint and copy_of (copies count once),
#    not_before (retry backoff).
# 3: interruptions (attempts cut short by the daemon's own death, not counted as attempts).
SCHEMA_VERSION = 3

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
    order_step INTEGER,
    fingerprint TEXT,
    copy_of INTEGER,
    not_before REAL,
    interruptions INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run, path)
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checkpoint_id INTEGER NOT NULL,
    run TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('done', 'failed')),
    reason TEXT,
    duration_seconds REAL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stop_signals (
    run TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    payload TEXT NOT NULL,
    recorded_at REAL NOT NULL
);
"""
# Created after ADDED_COLUMNS exist (a schema-1 file gains them first).
INDEXES = """
CREATE INDEX IF NOT EXISTS checkpoints_status ON checkpoints (status, run);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run, outcome);
CREATE INDEX IF NOT EXISTS checkpoints_order ON checkpoints (run, order_step, mtime_ns, id);
CREATE INDEX IF NOT EXISTS checkpoints_fingerprint ON checkpoints (run, fingerprint);
CREATE INDEX IF NOT EXISTS checkpoints_stepped ON checkpoints (run, step, mtime_ns);
CREATE INDEX IF NOT EXISTS checkpoints_inode ON checkpoints (run, inode);
CREATE INDEX IF NOT EXISTS checkpoints_distinct ON checkpoints (run, order_step, step IS NULL, mtime_ns, id)
    WHERE status = 'done' AND copy_of IS NULL;
"""
# Columns added since schema 1 (ALTER TABLE ... ADD COLUMN, in this order).
ADDED_COLUMNS = (("order_step", "INTEGER"), ("fingerprint", "TEXT"), ("copy_of", "INTEGER"),
                 ("not_before", "REAL"), ("interruptions", "INTEGER NOT NULL DEFAULT 0"))

FIELDS = ("id", "run", "path", "size", "mtime_ns", "inode", "step", "status", "attempts", "reason",
           "message", "seen_at", "started_at", "finished_at", "duration_seconds", "result",
           "fingerprint", "copy_of", "interruptions")
COLUMNS = ", ".join(FIELDS)


def path_to_db(path: str) -> str | bytes:
    """A path as the ledger stores it: text when it is valid UTF-8, else the name's raw bytes.

    Why: Linux file names are bytes. Python hands a name like b"bad\\xff.pt" over as
    'bad\\udcff.pt' (surrogateescape), which SQLite cannot store as text; such a name is stored
    as a BLOB of its bytes instead, so every name round-trips exactly (`path_from_db`), and the
    same name is always stored the same way (the UNIQUE (run, path) rule holds).
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def path_from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def text_to_db(text: str) -> str:
    """A message for people (it may name a file whose name is not UTF-8) as storable text:
    such bytes are shown as \\xff escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
    result: CheckpointResult | None
    fingerprint: str | None  # results.fingerprint of the result (None: cannot tell copies apart)
    copy_of: int | None  # the row this one is a copy of (same fingerprint); None for originals
    interruptions: int  # analyses cut short by the daemon's own death (not counted in attempts)

    @classmethod
    def _from_db(cls, row: tuple[Any, ...]) -> LedgerRow:
        values = dict(zip(FIELDS, row, strict=True))
        values["path"] = path_from_db(values["path"])
        text = values["result"]
        values["result"] = cast(CheckpointResult, json.loads(text)) if text is not None else None
        return cls(**values)
