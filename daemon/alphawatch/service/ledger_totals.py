"""Running totals the ledger keeps beside its rows, so that reading them costs the same at
ten rows as at a hundred thousand.

Why: /metrics reports, per run, how many checkpoints are in each status, how many attempts
failed for each reason, the analysis-duration histogram and when the last analysis
finished. Counted from the rows at every scrape, that cost grew with the run (20,000 rows:
a 120 ms scrape). SQLite triggers keep the totals instead, in the same transaction as the
row they count, so they can never drift from the rows, survive `kill -9` exactly like them,
and need no code path in Python to remember to update them.

    status_totals (run, status, count)
    attempt_totals(run, outcome, reason, bucket, count, duration_sum, last_finished_at)

`bucket` is the index of the first DURATION_BUCKETS bound an attempt's duration is at or
below (len(DURATION_BUCKETS) for +Inf, -1 for an attempt without a duration). The bounds in
force are stored in `meta`; if they ever change, the triggers are rebuilt and the totals
recounted from the rows once, when the ledger is opened.
"""

from __future__ import annotations

import json
import sqlite3

# 0.1 s (a tiny MLP) ... 30 min (a large model at low priority); roughly x2-x2.5 steps.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)

TABLES = """
CREATE TABLE IF NOT EXISTS status_totals (
    run TEXT NOT NULL, status TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (run, status));
CREATE TABLE IF NOT EXISTS attempt_totals (
    run TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, bucket INTEGER NOT NULL,
    count INTEGER NOT NULL, duration_sum REAL NOT NULL, last_finished_at REAL,
    PRIMARY KEY (run, outcome, reason, bucket));
"""
_TRIGGERS = ("checkpoints_total_insert", "checkpoints_total_update", "checkpoints_total_delete",
             "attempts_total_insert")


def _bucket_sql(duration: str) -> str:
    cases = " ".join(f"WHEN {duration} <= {bound!r} THEN {i}" for i, bound in enumerate(DURATION_BUCKETS))
    return f"CASE WHEN {duration} IS NULL THEN -1 {cases} ELSE {len(DURATION_BUCKETS)} END"


def _count(run: str, status: str, delta: int) -> str:
    return (f"INSERT INTO status_totals VALUES ({run}, {status}, {delta})"
            f" ON CONFLICT (run, status) DO UPDATE SET count = count + {delta};")


def _triggers() -> list[str]:
    attempt = (
        "INSERT INTO attempt_totals VALUES (NEW.run, NEW.outcome, COALESCE(NEW.reason, ''),"
        f" {_bucket_sql('NEW.duration_seconds')}, 1, COALESCE(NEW.duration_seconds, 0), NEW.finished_at)"
        " ON CONFLICT (run, outcome, reason, bucket) DO UPDATE SET count = count + 1,"
        " duration_sum = duration_sum + excluded.duration_sum,"
        " last_finished_at = MAX(COALESCE(last_finished_at, 0), excluded.last_finished_at);")
    return [
        "CREATE TRIGGER checkpoints_total_insert AFTER INSERT ON checkpoints BEGIN "
        f"{_count('NEW.run', 'NEW.status', 1)} END",
        "CREATE TRIGGER checkpoints_total_update AFTER UPDATE OF status, run ON checkpoints"
        " WHEN OLD.status IS NOT NEW.status OR OLD.run IS NOT NEW.run BEGIN "
        f"{_count('OLD.run', 'OLD.status', -1)} {_count('NEW.run', 'NEW.status', 1)} END",
        "CREATE TRIGGER checkpoints_total_delete AFTER DELETE ON checkpoints BEGIN "
        f"{_count('OLD.run', 'OLD.status', -1)} END",
        f"CREATE TRIGGER attempts_total_insert AFTER INSERT ON attempts BEGIN {attempt} END",
    ]


def ensure(cur: sqlite3.Cursor) -> None:
    """Create the tables; (re)build the triggers and recount when the bounds are new here."""
    for statement in TABLES.split(";"):
        if statement.strip():
            cur.execute(statement)
    wanted = json.dumps(DURATION_BUCKETS)
    row = cur.execute("SELECT value FROM meta WHERE key = 'duration_buckets'").fetchone()
    if row is not None and row[0] == wanted:
        return
    for name in _TRIGGERS:
        cur.execute(f"DROP TRIGGER IF EXISTS {name}")
    for statement in _triggers():
        cur.execute(statement)
    cur.execute("DELETE FROM status_totals")
    cur.execute("INSERT INTO status_totals SELECT run, status, COUNT(*) FROM checkpoints"
                " GROUP BY run, status")
    cur.execute("DELETE FROM attempt_totals")
    cur.execute("INSERT INTO attempt_totals SELECT run, outcome, COALESCE(reason, ''),"
                f" {_bucket_sql('duration_seconds')} AS bucket, COUNT(*), SUM(COALESCE(duration_seconds, 0)),"
                " MAX(finished_at) FROM attempts GROUP BY run, outcome, COALESCE(reason, ''), bucket")
    cur.execute("INSERT OR REPLACE INTO meta VALUES ('duration_buckets', ?)", (wanted,))


# ---------------------------------------------------------------- reads (a few rows each)

def status_counts(conn: sqlite3.Connection, run: str) -> dict[str, int]:
    return {str(s): int(c) for s, c in conn.execute(
        "SELECT status, count FROM status_totals WHERE run = ?", (run,))}


def failure_counts(conn: sqlite3.Connection, run: str) -> dict[str, int]:
    rows = conn.execute("SELECT reason, SUM(count) FROM attempt_totals WHERE run = ? AND outcome = 'failed'"
                        " GROUP BY reason ORDER BY reason", (run,))
    return {str(reason): int(count) for reason, count in rows if count}


def duration_histogram(conn: sqlite3.Connection, run: str) -> tuple[list[int], float]:
    """(attempts per bucket, one per DURATION_BUCKETS bound then +Inf; not cumulative), sum."""
    counts = [0] * (len(DURATION_BUCKETS) + 1)
    total = 0.0
    for bucket, count, summed in conn.execute(
            "SELECT bucket, SUM(count), SUM(duration_sum) FROM attempt_totals WHERE run = ? AND bucket >= 0"
            " GROUP BY bucket", (run,)):
        counts[int(bucket)] += int(count)
        total += float(summed)
    return counts, total


def last_finished_at(conn: sqlite3.Connection, run: str) -> float | None:
    row = conn.execute("SELECT MAX(last_finished_at) FROM attempt_totals WHERE run = ? AND outcome = 'done'",
                       (run,)).fetchone()
    return float(row[0]) if row and row[0] is not None else None
