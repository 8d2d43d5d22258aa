"""The durable ledger: every checkpoint the daemon has seen, its status and its result.

Why SQLite in WAL mode: one file, stdlib only, transactional. Every write below is one
transaction with `synchronous=FULL`, so a `kill -9` (or a power cut) at any instant leaves
either the old or the new state, never a mix. Metrics and the stop rule are derived from
these tables, so they come back whole after a restart.

Threads: the ledger holds ONE connection guarded by a re-entrant lock. Every call is a
short statement or transaction (milliseconds), so a metrics scrape never waits long
behind the worker, and there is no per-thread connection to leak or close. Another
process (a test, `sqlite3` on the command line) may read the file at the same time.

Life of a row (`status`):

    record_seen ──► pending ──claim_next──► analyzing ──mark_done──► done
                       ▲                        │
                       └── transient failure ───┤ mark_failed (attempts < max_attempts
                           (timeout, oom, ...)  │  and reason in TRANSIENT_REASONS)
                                                └──────────────────► failed
    claim_next(backlog="latest") marks older pending rows of a run `skipped` (reason "backlog");
    mark_gone marks a row whose file was deleted before analysis `skipped` (reason "gone").
    A changed file (size / mtime / inode) goes back to pending with attempts reset.

Order: every query that lists checkpoints uses `alphawatch.ordering` (training order).
Each row keeps its training-order anchor in `order_step` (its step, or for a step-less row
the largest step written before it), refreshed whenever a step is learnt, so "the newest
checkpoint" is an indexed lookup however long the run.

Copies: `mark_done` stores `results.fingerprint` of the result; a done row with the same
fingerprint as another and the same step (or no step) is a copy and points at its original
with `copy_of` (see `_assign_copies`). The stop rule and the gauges
read originals only (`distinct`), so `best_model.pt` saved next to `model_300.pt`, or a
temp file renamed into place after it was analyzed, counts once.

Retries: a transient failure waits before its next attempt (`not_before`), doubling from
`retry_seconds`, so a file still being repaired is not burnt through its attempts at once.

Every finished attempt (done or failed) is also appended to `attempts`, which never
shrinks: `failure_counts` and `durations` read it, so the Prometheus counter
`alphawatch_checkpoint_failures_total` and the duration histogram never go down.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alphawatch.errors import AlphawatchError
from alphawatch.ordering import ANCHOR_SQL, DESC_SQL, ORDER_SQL
from alphawatch.results import CheckpointResult, fingerprint
from alphawatch.service import ledger_totals
from alphawatch.service.ledger_schema import (
    ADDED_COLUMNS,
    COLUMNS,
    INDEXES,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    TRANSIENT_REASONS,
    LedgerRow,
    path_to_db,
    text_to_db,
)

# Rows the stop rule and the gauges read: analyzed, and not a copy of another.
DISTINCT = "status = 'done' AND copy_of IS NULL"
# Longest wait between two attempts of one checkpoint.
MAX_RETRY_SECONDS = 600.0

__all__ = ["STATUSES", "TRANSIENT_REASONS", "Ledger", "LedgerError", "LedgerRow"]


class LedgerError(AlphawatchError):
    """The ledger file cannot be opened or is not a ledger (message names the path)."""


class Ledger:
    """SQLite ledger at `path` (folder created if missing). See the module docstring."""

    def __init__(self, path: Path, max_attempts: int = 3, *, retry_seconds: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.clock = clock
        self._lock = threading.RLock()
        self._changes = 0  # transactions through this ledger that changed rows (see version())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"{self.path}: cannot open the ledger ({exc})") from None
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise LedgerError(
                    f"{self.path}: the ledger cannot be written ({exc}); check the owner and permissions "
                    f"of the file and its folder (the daemon runs as uid {os.getuid()}) and that the "
                    "volume is not mounted read-only") from None
            raise LedgerError(f"{self.path}: not a usable alphawatch ledger ({exc})") from None

    def _setup(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 30000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")  # each commit is on disk before we go on
        conn.execute("PRAGMA foreign_keys = ON")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        with self._write() as cur:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"written by a newer alphawatch (schema {row[0]} > {SCHEMA_VERSION})")
            if row is not None and int(row[0]) < SCHEMA_VERSION:
                self._migrate(cur)
            for statement in INDEXES.split(";"):
                if statement.strip():
                    cur.execute(statement)
            ledger_totals.ensure(cur)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _migrate(self, cur: sqlite3.Cursor) -> None:
        """Schema 1 -> 2: add the columns, then derive them from what is stored."""
        have = {r[1] for r in cur.execute("PRAGMA table_info(checkpoints)").fetchall()}
        for name, kind in ADDED_COLUMNS:
            if name not in have:
                cur.execute(f"ALTER TABLE checkpoints ADD COLUMN {name} {kind}")
        for (run,) in cur.execute("SELECT DISTINCT run FROM checkpoints").fetchall():
            self._refresh_anchors(cur, run, None)
        done = cur.execute("SELECT id, run, result FROM checkpoints WHERE status = 'done'").fetchall()
        prints: dict[tuple[str, str], None] = {}
        for row_id, run, text in done:
            found = fingerprint(json.loads(text)) if text else None
            cur.execute("UPDATE checkpoints SET fingerprint = ? WHERE id = ?", (found, row_id))
            if found is not None:
                prints[(run, found)] = None
        for run, found in prints:
            self._assign_copies(cur, run, found)

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed into the main file)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(self, probe: bool = False) -> Iterator[sqlite3.Cursor]:
        """One IMMEDIATE transaction (takes the write lock up front, so no upgrade deadlock).
        A transaction that changed rows (other than a readiness `probe`) moves `version()`."""
        with self._lock:
            cur = self._conn.cursor()
            before = self._conn.total_changes
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            if not probe and self._conn.total_changes != before:
                self._changes += 1

    def version(self) -> tuple[int, int]:
        """Changes whenever the stored data may have: a write through this ledger that changed
        rows, or a commit by another process (`PRAGMA data_version`). Readiness probes and
        claims that found nothing do not count, so a cache keyed by it (the metrics') holds
        while the daemon idles."""
        with self._lock:
            return self._changes, int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _rows(self, where: str, params: tuple[Any, ...], order: str = ORDER_SQL) -> list[LedgerRow]:
        rows = self._query(f"SELECT {COLUMNS} FROM checkpoints WHERE {where} ORDER BY {order}", params)
        return [LedgerRow._from_db(r) for r in rows]

    # ------------------------------------------------------------------ write side
    def record_seen(
        self, run: str, path: str, *, size: int | None, mtime_ns: int | None, inode: int | None,
        step: int | None,
    ) -> tuple[int, bool]:
        """Note a complete checkpoint; return (row id, queued).

        `queued` is True when this call put the row in the queue: a new path, or a known
        path whose identity (size, mtime_ns, inode) changed (it is re-analyzed from scratch:
        attempts, reason and result are reset). A known, unchanged row keeps its status.
        """
        path_db = path_to_db(str(path))
        now = self.clock()
        with self._write() as cur:
            found = cur.execute(
                "SELECT id, size, mtime_ns, inode, fingerprint FROM checkpoints WHERE run = ? AND path = ?",
                (run, path_db)).fetchone()
            if found is None:
                cur.execute(
                    "INSERT INTO checkpoints (run, path, size, mtime_ns, inode, step, status, seen_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (run, path_db, size, mtime_ns, inode, step, now))
                row_id = int(cur.lastrowid or 0)
                self._refresh_anchors(cur, run, row_id)
                return row_id, True
            row_id, old_size, old_mtime, old_inode, old_print = found
            if [old_size, old_mtime, old_inode] == [size, mtime_ns, inode]:
                return int(row_id), False
            cur.execute(
                "UPDATE checkpoints SET size = ?, mtime_ns = ?, inode = ?, step = ?, status = 'pending',"
                " attempts = 0, reason = NULL, message = NULL, seen_at = ?, started_at = NULL,"
                " finished_at = NULL, duration_seconds = NULL, result = NULL, fingerprint = NULL,"
                " copy_of = NULL, not_before = NULL WHERE id = ?",
                (size, mtime_ns, inode, step, now, row_id))
            self._refresh_anchors(cur, run, int(row_id), since=min(old_mtime or 0, mtime_ns or 0))
            if old_print is not None:  # its copies need another original
                self._assign_copies(cur, run, old_print)
            return int(row_id), True

    def _refresh_anchors(self, cur: sqlite3.Cursor, run: str, row_id: int | None,
                         since: int | None = None) -> None:
        """Keep `order_step` true after row `row_id` (None: every row) got or changed its step.

        A stepped row's anchor is its step. A step-less row's anchor can only change when a
        stepped row written no later than it appears, changes or moves, so only step-less
        rows at or after the changed row's mtime (or `since`, its mtime before a rewrite)
        are recomputed: usually none, since the newest file is the one that changed.
        """
        if row_id is None:
            cur.execute(f"UPDATE checkpoints SET order_step = COALESCE(step, {ANCHOR_SQL}) WHERE run = ?",
                        (run,))
            return
        cur.execute(f"UPDATE checkpoints SET order_step = COALESCE(step, {ANCHOR_SQL}) WHERE id = ?",
                    (row_id,))
        if since is None:
            since = cur.execute("SELECT mtime_ns FROM checkpoints WHERE id = ?", (row_id,)).fetchone()[0]
        cur.execute(f"UPDATE checkpoints SET order_step = {ANCHOR_SQL} WHERE run = ? AND step IS NULL"
                    " AND mtime_ns >= ?", (run, since or 0))

    def _assign_copies(self, cur: sqlite3.Cursor, run: str, found: str) -> None:
        """Among the run's done rows with fingerprint `found`, point every copy at its original.

        A copy has the same weights as an original AND the same step, or no step at all: a
        temp file or `best_model.pt` next to `model_300.pt`, a copied `last.ckpt`. The same
        weights at two different known steps are two checkpoints (training went on, the
        weights did not move): both count, so the newest step stays the newest. A step-less
        copy belongs to the stepped original written last before it (else the first one).
        """
        rows = cur.execute("SELECT id, step, mtime_ns FROM checkpoints WHERE run = ? AND fingerprint = ?"
                           " AND status = 'done' ORDER BY id", (run, found)).fetchall()
        copy_of: dict[int, int | None] = {}
        by_step: dict[int, int] = {}
        for row_id, step, _ in rows:
            if step is not None:
                copy_of[row_id] = by_step.get(step)
                by_step.setdefault(step, row_id)
        stepped = sorted((mtime or 0, row_id) for row_id, step, mtime in rows if by_step.get(step) == row_id)
        first_stepless: int | None = None
        for row_id, step, mtime in rows:
            if step is not None:
                continue
            before = [original for m, original in stepped if m <= (mtime or 0)]
            if stepped:
                copy_of[row_id] = before[-1] if before else stepped[0][1]
            else:
                copy_of[row_id] = first_stepless
                first_stepless = first_stepless or row_id
        for row_id, original in copy_of.items():
            cur.execute("UPDATE checkpoints SET copy_of = ? WHERE id = ?", (original, row_id))

    def requeue_interrupted(self) -> list[LedgerRow]:
        """At startup: rows left `analyzing` by the daemon's death go back to `pending`; returns them.

        The interrupted attempt is not counted against `max_attempts` (it is given back and
        counted in `interruptions` instead): the daemon's death says nothing about the file.
        The daemon never loads a checkpoint itself, and its worker is the first process the
        kernel's OOM killer picks (`oom_score_adj` 1000) and dies with it, so no checkpoint
        can kill the daemon; three `kill -9`s during one analysis used to fail a good one.
        """
        with self._write() as cur:
            ids = [r[0] for r in cur.execute("SELECT id FROM checkpoints WHERE status = 'analyzing'")]
            cur.execute("UPDATE checkpoints SET status = 'pending', started_at = NULL,"
                        " attempts = MAX(attempts - 1, 0), interruptions = interruptions + 1"
                        " WHERE status = 'analyzing'")
            rows = [cur.execute(f"SELECT {COLUMNS} FROM checkpoints WHERE id = ?", (i,)).fetchone()
                    for i in ids]
        return [LedgerRow._from_db(r) for r in rows]

    def claim_next(self, backlog: str = "all") -> LedgerRow | None:
        """Atomically move the next pending row to `analyzing` (attempts += 1) and return it.

        Order: training order (`alphawatch.ordering`), runs interleaved; a row waiting for
        its retry time (`not_before`) is passed over until then. With backlog "latest",
        every pending row of a run except its newest is first marked `skipped` with reason
        "backlog".
        """
        if backlog not in ("all", "latest"):
            raise ValueError(f"backlog must be 'all' or 'latest', got {backlog!r}")
        now = self.clock()
        with self._write() as cur:
            if backlog == "latest":
                cur.execute(
                    "UPDATE checkpoints SET status = 'skipped', reason = 'backlog',"
                    " message = 'a newer checkpoint of this run was pending (backlog: latest)',"
                    " finished_at = ? WHERE status = 'pending' AND id NOT IN ("
                    f"  SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY run ORDER BY {DESC_SQL})"
                    "   AS rank FROM checkpoints WHERE status = 'pending') WHERE rank = 1)", (now,))
            found = cur.execute(
                "SELECT id FROM checkpoints WHERE status = 'pending'"
                f" AND (not_before IS NULL OR not_before <= ?) ORDER BY {ORDER_SQL} LIMIT 1",
                (now,)).fetchone()
            if found is None:
                return None
            cur.execute("UPDATE checkpoints SET status = 'analyzing', attempts = attempts + 1,"
                        " started_at = ? WHERE id = ?", (now, found[0]))
            row = cur.execute(f"SELECT {COLUMNS} FROM checkpoints WHERE id = ?", (found[0],)).fetchone()
        return LedgerRow._from_db(row)

    def release(self, row_id: int) -> None:
        """Give an `analyzing` row back to `pending` without counting the attempt.

        For a clean shutdown that abandons the analysis in flight (SIGTERM): it is not
        the checkpoint's fault, so it must not use up one of its attempts.
        """
        with self._write() as cur:
            cur.execute("UPDATE checkpoints SET status = 'pending', attempts = MAX(attempts - 1, 0),"
                        " started_at = NULL WHERE id = ? AND status = 'analyzing'", (row_id,))

    def next_retry_at(self) -> float | None:
        """When the earliest pending row waiting for its retry time becomes claimable."""
        rows = self._query("SELECT MIN(not_before) FROM checkpoints WHERE status = 'pending'"
                           " AND not_before IS NOT NULL")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def mark_done(self, row_id: int, result: CheckpointResult, duration_seconds: float) -> bool:
        """Store the result of an `analyzing` row; return False if the row was not analyzing.

        (A file that changed while it was analyzed went back to pending: its stale result
        is dropped.) A result that is not strict JSON (NaN, Inf, odd types) is a bug in the
        analysis: the row is failed with reason "internal_error" instead.
        """
        try:
            text = json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self.mark_failed(row_id, "internal_error", f"the result is not strict JSON ({exc})",
                             duration_seconds)
            return False
        now = self.clock()
        # The checkpoint's own training step (from its content) replaces the one parsed from
        # its name: `generation_12.pt` is step 12 by name but 6000 inside.
        step = result.get("step")
        content_step = step if isinstance(step, int) and not isinstance(step, bool) else None
        found = fingerprint(result)
        with self._write() as cur:
            cur.execute("UPDATE checkpoints SET status = 'done', reason = NULL, message = NULL, result = ?,"
                        " finished_at = ?, duration_seconds = ?, step = COALESCE(?, step), fingerprint = ?,"
                        " copy_of = NULL, not_before = NULL WHERE id = ? AND status = 'analyzing'",
                        (text, now, duration_seconds, content_step, found, row_id))
            if cur.rowcount == 0:
                return False
            run = cur.execute("SELECT run FROM checkpoints WHERE id = ?", (row_id,)).fetchone()[0]
            if content_step is not None:
                self._refresh_anchors(cur, run, row_id)
            if found is not None:
                self._assign_copies(cur, run, found)
            cur.execute("INSERT INTO attempts (checkpoint_id, run, outcome, duration_seconds, finished_at)"
                        " VALUES (?, ?, 'done', ?, ?)", (row_id, run, duration_seconds, now))
            return True

    def mark_failed(self, row_id: int, reason: str, message: str, duration_seconds: float) -> str | None:
        """Record a failed attempt; return the row's new status ("pending" = will retry).

        Retried while attempts < max_attempts and `reason` is in TRANSIENT_REASONS; else
        `failed` for good. Returns None (and changes nothing) if the row was not analyzing.
        """
        now = self.clock()
        with self._write() as cur:
            found = cur.execute("SELECT run, attempts FROM checkpoints WHERE id = ? AND status = 'analyzing'",
                                (row_id,)).fetchone()
            if found is None:
                return None
            run, attempts = found
            status = "pending" if reason in TRANSIENT_REASONS and attempts < self.max_attempts else "failed"
            wait = min(self.retry_seconds * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)
            cur.execute("UPDATE checkpoints SET status = ?, reason = ?, message = ?, finished_at = ?,"
                        " duration_seconds = ?, not_before = ? WHERE id = ?",
                        (status, reason, text_to_db(message), now, duration_seconds,
                         now + wait if status == "pending" else None, row_id))
            cur.execute("INSERT INTO attempts (checkpoint_id, run, outcome, reason, duration_seconds,"
                        " finished_at) VALUES (?, ?, 'failed', ?, ?, ?)",
                        (row_id, run, reason, duration_seconds, now))
            return status

    def mark_gone(self, row_id: int, message: str) -> bool:
        """An `analyzing` row whose file was deleted before it could be analyzed: `skipped`
        with reason "gone". Not a failure (no attempt is counted, nothing is retried): the
        producer removed it (e.g. Lightning's `save_top_k`). If a file appears at that path
        again, `record_seen` queues it as a new version. False if the row was not analyzing."""
        with self._write() as cur:
            cur.execute("UPDATE checkpoints SET status = 'skipped', reason = 'gone', message = ?,"
                        " attempts = MAX(attempts - 1, 0), finished_at = ?"
                        " WHERE id = ? AND status = 'analyzing'",
                        (text_to_db(message), self.clock(), row_id))
            return cur.rowcount > 0

    def move(self, row_id: int, path: str, name_step: int | None) -> bool:
        """Row `row_id`'s file was renamed to `path` (same inode, size and mtime): the row follows.

        Why: a producer that writes `staging.pt` and renames it to `model_300.pt` after the
        quiet period would otherwise leave a `done` row for a name that no longer exists,
        and have the same weights analyzed again. A done row keeps its result (its `path`,
        and its `step` if it had none, become the new name's); any other row takes the new
        name's step. False (nothing changed) when the row is being analyzed right now or a
        row for `path` already exists.
        """
        with self._write() as cur:
            found = cur.execute("SELECT run, status, fingerprint, mtime_ns FROM checkpoints WHERE id = ?",
                                (row_id,)).fetchone()
            if found is None or found[1] == "analyzing":
                return False
            run, status, print_, mtime = found
            path_db = path_to_db(path)
            if cur.execute("SELECT 1 FROM checkpoints WHERE run = ? AND path = ?", (run, path_db)).fetchone():
                return False
            cur.execute(  # the result's path as a JSON string: escapes whatever bytes the name holds
                "UPDATE checkpoints SET path = ?, step = CASE WHEN status = 'done' THEN COALESCE(step, ?)"
                " ELSE ? END, result = CASE WHEN result IS NULL THEN NULL ELSE json_set(result, '$.path',"
                " json(?), '$.step', COALESCE(json_extract(result, '$.step'), ?)) END WHERE id = ?",
                (path_db, name_step, name_step, json.dumps(path), name_step, row_id))
            self._refresh_anchors(cur, run, row_id, since=mtime)
            if status == "done" and print_ is not None:
                self._assign_copies(cur, run, print_)
            return True

    def forget(self, run: str, path: str, message: str) -> bool:
        """The file left the watched set by a rename (to an ignored name, or out of the folder):
        its row becomes `skipped` with reason "moved", so a temp file analyzed before it was
        renamed away is never counted by the stop rule or shown by the gauges. Unlike a
        deleted checkpoint (still part of the run's history), a renamed-away file was never
        the run's checkpoint under that name. False if there is no such row or it is being
        analyzed (the analysis then finds the file gone)."""
        with self._write() as cur:
            found = cur.execute("SELECT id, fingerprint FROM checkpoints WHERE run = ? AND path = ?"
                                " AND status != 'analyzing'", (run, path_to_db(path))).fetchone()
            if found is None:
                return False
            cur.execute("UPDATE checkpoints SET status = 'skipped', reason = 'moved', message = ?,"
                        " copy_of = NULL, not_before = NULL, finished_at = ? WHERE id = ?",
                        (text_to_db(message), self.clock(), found[0]))
            if found[1] is not None:  # its copies need another original
                self._assign_copies(cur, run, found[1])
            return True

    def record_stop(self, run: str, path: str | Path, payload: dict[str, Any]) -> None:
        """Remember that the stop file for `run` was written (the latest payload wins)."""
        text = json.dumps(payload, allow_nan=False)
        with self._write() as cur:
            cur.execute("INSERT OR REPLACE INTO stop_signals (run, path, payload, recorded_at)"
                        " VALUES (?, ?, ?, ?)", (run, str(path), text, self.clock()))

    def clear_stop(self, run: str) -> bool:
        """Forget the run's stop record (`alphawatch signal clear --config`): the rule may
        fire, and the daemon write a new stop file, again. True if there was one."""
        with self._write() as cur:
            cur.execute("DELETE FROM stop_signals WHERE run = ?", (run,))
            return cur.rowcount > 0

    # ------------------------------------------------------------------ read side
    def get(self, row_id: int) -> LedgerRow | None:
        rows = self._rows("id = ?", (row_id,))
        return rows[0] if rows else None

    def find(self, run: str, path: str | Path) -> LedgerRow | None:
        """The row for (run, path), if the ledger knows that checkpoint."""
        rows = self._rows("run = ? AND path = ?", (run, path_to_db(str(path))))
        return rows[0] if rows else None

    def same_identity(self, run: str, size: int | None, mtime_ns: int | None,
                      inode: int | None) -> list[LedgerRow]:
        """Rows of `run` whose file had exactly this (size, mtime_ns, inode): a rename's source."""
        return self._rows("run = ? AND inode = ? AND size = ? AND mtime_ns = ?", (run, inode, size, mtime_ns))

    def runs(self) -> list[str]:
        """Every run with a checkpoint row or a stop record, sorted."""
        rows = self._query("SELECT run FROM checkpoints UNION SELECT run FROM stop_signals ORDER BY run")
        return [r[0] for r in rows]

    def status_counts(self, run: str) -> dict[str, int]:
        """{status: count} with every status in STATUSES present (0 where none); a running total."""
        with self._lock:
            return {**dict.fromkeys(STATUSES, 0), **ledger_totals.status_counts(self._conn, run)}

    def failure_counts(self, run: str) -> dict[str, int]:
        """{reason: failed attempts ever}; a running total of the append-only attempts table."""
        with self._lock:
            return ledger_totals.failure_counts(self._conn, run)

    def duration_histogram(self, run: str) -> tuple[list[int], float]:
        """Finished attempts per `ledger_totals.DURATION_BUCKETS` bucket (+Inf last), and the sum
        of their durations; running totals, not a read of every attempt."""
        with self._lock:
            return ledger_totals.duration_histogram(self._conn, run)

    def durations(self, run: str) -> list[float]:
        """Duration of every finished attempt (done or failed) of the run, oldest first (reads
        them all: for inspection and tests; /metrics uses `duration_histogram`)."""
        rows = self._query("SELECT duration_seconds FROM attempts WHERE run = ?"
                           " AND duration_seconds IS NOT NULL ORDER BY id", (run,))
        return [float(r[0]) for r in rows]

    def distinct(self, run: str) -> list[LedgerRow]:
        """The run's analyzed checkpoints, copies left out, in training order."""
        return self._rows(f"run = ? AND {DISTINCT}", (run,))

    def distinct_recent(self, run: str, count: int) -> list[LedgerRow]:
        """The newest `count` of `distinct(run)`, still oldest first (the stop rule's window)."""
        rows = self._rows(f"run = ? AND {DISTINCT}", (run,), order=f"{DESC_SQL} LIMIT {int(count)}")
        return rows[::-1]

    def distinct_count(self, run: str, at_most: int | None = None) -> int:
        """How many distinct checkpoints of the run have been analyzed; with `at_most`, counting
        stops there (the stop rule only asks "at least min_checkpoints?", after every checkpoint)."""
        limit = -1 if at_most is None else int(at_most)  # SQLite: LIMIT -1 is no limit
        rows = self._query(f"SELECT COUNT(*) FROM (SELECT 1 FROM checkpoints WHERE run = ? AND {DISTINCT}"
                           " LIMIT ?)", (run, limit))
        return int(rows[0][0])

    def latest_done(self, run: str) -> LedgerRow | None:
        """The newest distinct analyzed checkpoint in training order: what the gauges show."""
        rows = self.distinct_recent(run, 1)
        return rows[0] if rows else None

    def last_finished_at(self, run: str) -> float | None:
        """When the run's most recent successful analysis finished (unix seconds)."""
        with self._lock:
            return ledger_totals.last_finished_at(self._conn, run)

    def stop_recorded(self, run: str) -> dict[str, Any] | None:
        """The payload of the stop file last written for `run`, or None."""
        rows = self._query("SELECT payload FROM stop_signals WHERE run = ?", (run,))
        return json.loads(rows[0][0]) if rows else None

    def is_writable(self) -> bool:
        """True when a real write transaction succeeds now (for /readyz): disk full,
        read-only mount, a deleted folder or a closed ledger all give False."""
        if not self.path.exists():  # deleted under us: writes would go to an unlinked file
            return False
        try:
            with self._write(probe=True) as cur:
                cur.execute("INSERT OR REPLACE INTO meta VALUES ('ready_probe', ?)", (str(self.clock()),))
        except (sqlite3.Error, OSError):
            return False
        return True
