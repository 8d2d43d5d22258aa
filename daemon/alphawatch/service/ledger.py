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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alphawatch.errors import AlphawatchError
from alphawatch.service.ledger_schema import (
    COLUMNS,
    DESC,
    ORDER,
    SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    TRANSIENT_REASONS,
    LedgerRow,
    training_order,
)

__all__ = ["STATUSES", "TRANSIENT_REASONS", "Ledger", "LedgerError", "LedgerRow"]


class LedgerError(AlphawatchError):
    """The ledger file cannot be opened or is not a ledger (message names the path)."""


class Ledger:
    """SQLite ledger at `path` (folder created if missing). See the module docstring."""

    def __init__(self, path: Path, max_attempts: int = 3) -> None:
        self.path = Path(path)
        self.max_attempts = max_attempts
        self._lock = threading.RLock()
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
            if row is None:
                cur.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"written by a newer alphawatch (schema {row[0]} > {SCHEMA_VERSION})")

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
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One IMMEDIATE transaction (takes the write lock up front, so no upgrade deadlock)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _rows(self, where: str, params: tuple[Any, ...], order: str = ORDER) -> list[LedgerRow]:
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
        path = str(path)
        now = time.time()
        with self._write() as cur:
            found = cur.execute(
                "SELECT id, size, mtime_ns, inode FROM checkpoints WHERE run = ? AND path = ?",
                (run, path)).fetchone()
            if found is None:
                cur.execute(
                    "INSERT INTO checkpoints (run, path, size, mtime_ns, inode, step, status, seen_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)", (run, path, size, mtime_ns, inode, step, now))
                return int(cur.lastrowid or 0), True
            row_id, *identity = found
            if identity == [size, mtime_ns, inode]:
                return int(row_id), False
            cur.execute(
                "UPDATE checkpoints SET size = ?, mtime_ns = ?, inode = ?, step = ?, status = 'pending',"
                " attempts = 0, reason = NULL, message = NULL, seen_at = ?, started_at = NULL,"
                " finished_at = NULL, duration_seconds = NULL, result = NULL WHERE id = ?",
                (size, mtime_ns, inode, step, now, row_id))
            return int(row_id), True

    def requeue_interrupted(self) -> int:
        """At startup: rows left `analyzing` by a crash go back to `pending`; return how many.

        A row whose attempts are already used up (the daemon died on it every time) is
        marked failed with reason "worker_crashed" instead, so a crash loop stays bounded.
        """
        now = time.time()
        with self._write() as cur:
            exhausted = cur.execute(
                "SELECT id, run FROM checkpoints WHERE status = 'analyzing' AND attempts >= ?",
                (self.max_attempts,)).fetchall()
            for row_id, run in exhausted:
                cur.execute(
                    "UPDATE checkpoints SET status = 'failed', reason = 'worker_crashed', message = ?,"
                    " finished_at = ? WHERE id = ?",
                    (f"the daemon was interrupted during all {self.max_attempts} analysis attempts",
                     now, row_id))
                cur.execute("INSERT INTO attempts (checkpoint_id, run, outcome, reason, finished_at)"
                            " VALUES (?, ?, 'failed', 'worker_crashed', ?)", (row_id, run, now))
            cur.execute("UPDATE checkpoints SET status = 'pending', started_at = NULL"
                        " WHERE status = 'analyzing'")
            return int(cur.rowcount)

    def claim_next(self, backlog: str = "all") -> LedgerRow | None:
        """Atomically move the next pending row to `analyzing` (attempts += 1) and return it.

        Order: lowest step first, unknown step last, then mtime, then seen order. With
        backlog "latest", every pending row of a run except its newest (highest known step,
        see DESC) is first marked `skipped` with reason "backlog".
        """
        if backlog not in ("all", "latest"):
            raise ValueError(f"backlog must be 'all' or 'latest', got {backlog!r}")
        now = time.time()
        with self._write() as cur:
            if backlog == "latest":
                cur.execute(
                    "UPDATE checkpoints SET status = 'skipped', reason = 'backlog',"
                    " message = 'a newer checkpoint of this run was pending (backlog: latest)',"
                    " finished_at = ? WHERE status = 'pending' AND id NOT IN ("
                    f"  SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY run ORDER BY {DESC})"
                    "   AS rank FROM checkpoints WHERE status = 'pending') WHERE rank = 1)", (now,))
            found = cur.execute(
                f"SELECT id FROM checkpoints WHERE status = 'pending' ORDER BY {ORDER} LIMIT 1").fetchone()
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

    def mark_done(self, row_id: int, result: dict[str, Any], duration_seconds: float) -> bool:
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
        now = time.time()
        # The checkpoint's own training step (from its content) replaces the one parsed from
        # its name: `generation_12.pt` is step 12 by name but 6000 inside, and a name without
        # a number (`best_model.pt`) must not sort as the newest checkpoint forever.
        step = result.get("step")
        content_step = step if isinstance(step, int) and not isinstance(step, bool) else None
        with self._write() as cur:
            cur.execute("UPDATE checkpoints SET status = 'done', reason = NULL, message = NULL, result = ?,"
                        " finished_at = ?, duration_seconds = ?, step = COALESCE(?, step)"
                        " WHERE id = ? AND status = 'analyzing'",
                        (text, now, duration_seconds, content_step, row_id))
            if cur.rowcount == 0:
                return False
            cur.execute("INSERT INTO attempts (checkpoint_id, run, outcome, duration_seconds, finished_at)"
                        " SELECT id, run, 'done', ?, ? FROM checkpoints WHERE id = ?",
                        (duration_seconds, now, row_id))
            return True

    def mark_failed(self, row_id: int, reason: str, message: str, duration_seconds: float) -> str | None:
        """Record a failed attempt; return the row's new status ("pending" = will retry).

        Retried while attempts < max_attempts and `reason` is in TRANSIENT_REASONS; else
        `failed` for good. Returns None (and changes nothing) if the row was not analyzing.
        """
        now = time.time()
        with self._write() as cur:
            found = cur.execute("SELECT run, attempts FROM checkpoints WHERE id = ? AND status = 'analyzing'",
                                (row_id,)).fetchone()
            if found is None:
                return None
            run, attempts = found
            status = "pending" if reason in TRANSIENT_REASONS and attempts < self.max_attempts else "failed"
            cur.execute("UPDATE checkpoints SET status = ?, reason = ?, message = ?, finished_at = ?,"
                        " duration_seconds = ? WHERE id = ?",
                        (status, reason, message, now, duration_seconds, row_id))
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
                        (message, time.time(), row_id))
            return cur.rowcount > 0

    def record_stop(self, run: str, path: str | Path, payload: dict[str, Any]) -> None:
        """Remember that the stop file for `run` was written (the latest payload wins)."""
        text = json.dumps(payload, allow_nan=False)
        with self._write() as cur:
            cur.execute("INSERT OR REPLACE INTO stop_signals (run, path, payload, recorded_at)"
                        " VALUES (?, ?, ?, ?)", (run, str(path), text, time.time()))

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
        rows = self._rows("run = ? AND path = ?", (run, str(path)))
        return rows[0] if rows else None

    def runs(self) -> list[str]:
        """Every run with a checkpoint row or a stop record, sorted."""
        rows = self._query("SELECT run FROM checkpoints UNION SELECT run FROM stop_signals ORDER BY run")
        return [r[0] for r in rows]

    def status_counts(self, run: str) -> dict[str, int]:
        """{status: count} with every status in STATUSES present (0 where none)."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, count in self._query(
                "SELECT status, COUNT(*) FROM checkpoints WHERE run = ? GROUP BY status", (run,)):
            counts[status] = int(count)
        return counts

    def failure_counts(self, run: str) -> dict[str, int]:
        """{reason: failed attempts ever}, from the append-only attempts table."""
        rows = self._query("SELECT reason, COUNT(*) FROM attempts WHERE run = ? AND outcome = 'failed'"
                           " GROUP BY reason ORDER BY reason", (run,))
        return {str(reason): int(count) for reason, count in rows}

    def durations(self, run: str) -> list[float]:
        """Duration of every finished attempt (done or failed) of the run, oldest first."""
        rows = self._query("SELECT duration_seconds FROM attempts WHERE run = ?"
                           " AND duration_seconds IS NOT NULL ORDER BY id", (run,))
        return [float(r[0]) for r in rows]

    def done_rows(self, run: str) -> list[LedgerRow]:
        """Analyzed checkpoints of the run in training order (the stop rule's input; see
        `training_order` for checkpoints without a step)."""
        return training_order(self._rows("run = ? AND status = 'done'", (run,)))

    def latest_done(self, run: str) -> LedgerRow | None:
        """The newest analyzed checkpoint (highest known step; see DESC): what the gauges show."""
        rows = self._rows("run = ? AND status = 'done'", (run,), order=f"{DESC} LIMIT 1")
        return rows[0] if rows else None

    def last_finished_at(self, run: str) -> float | None:
        """When the run's most recent analysis attempt finished (unix seconds)."""
        rows = self._query("SELECT MAX(finished_at) FROM attempts WHERE run = ? AND outcome = 'done'", (run,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

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
            with self._write() as cur:
                cur.execute("INSERT OR REPLACE INTO meta VALUES ('ready_probe', ?)", (str(time.time()),))
        except (sqlite3.Error, OSError):
            return False
        return True
