"""The ledger: queue semantics, retries, restart behaviour and crash consistency (real kill -9)."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from alphawatch.service.ledger import STATUSES, Ledger, LedgerError
from alphawatch.service.ledger_schema import SCHEMA_VERSION


def seen(ledger: Ledger, path: str, step: int | None = None, run: str = "r", size: int = 10,
         mtime_ns: int = 1, inode: int = 1) -> tuple[int, bool]:
    return ledger.record_seen(run, path, size=size, mtime_ns=mtime_ns, inode=inode, step=step)


def result_for(path: str, alpha: float | None, step: int | None = None) -> dict[str, object]:
    """A CheckpointResult whose one layer measures `alpha` (so distinct alphas are distinct weights)."""
    layer = {"name": "0.weight", "key": "model.0.weight", "shape": [64, 64], "kind": "linear",
             "alpha": alpha, "stable_rank": None if alpha is None else 10.0 + alpha,
             "log_spectral_norm": None if alpha is None else 0.5, "D": 0.05, "xmin": 1.0,
             "num_pl_spikes": 20, "num_evals": 64, "status": "ok" if alpha is not None else "failed",
             "reason": None}
    return {"path": path, "step": step, "format": "torch_zip", "issues": [],
            "networks": {"model": {"summary": {"alpha": alpha}, "layers": [layer]}}}


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger(tmp_path / "state" / "ledger.sqlite3") as led:
        yield led


def test_creates_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "ledger.sqlite3"
    Ledger(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_new_path_is_queued_once(ledger: Ledger) -> None:
    row_id, queued = seen(ledger, "a.pt", 100)
    assert queued
    assert seen(ledger, "a.pt", 100) == (row_id, False)  # still pending: not queued twice
    assert ledger.status_counts("r") == {**dict.fromkeys(STATUSES, 0), "pending": 1}
    assert ledger.get(row_id).status == "pending"  # type: ignore[union-attr]


def test_known_unchanged_done_or_failed_is_not_requeued(ledger: Ledger) -> None:
    done_id, _ = seen(ledger, "a.pt", 1)
    failed_id, _ = seen(ledger, "b.pt", 2)
    ledger.mark_done(ledger.claim_next().id, result_for("a.pt", 3.0), 1.0)  # type: ignore[union-attr]
    ledger.mark_failed(ledger.claim_next().id, "unsafe_pickle", "no", 0.1)  # type: ignore[union-attr]
    assert seen(ledger, "a.pt", 1) == (done_id, False)
    assert seen(ledger, "b.pt", 2) == (failed_id, False)
    assert ledger.claim_next() is None


@pytest.mark.parametrize("change", [{"size": 11}, {"mtime_ns": 2}, {"inode": 9}])
def test_changed_identity_is_reanalyzed_from_scratch(ledger: Ledger, change: dict[str, int]) -> None:
    row_id, _ = seen(ledger, "a.pt", 1)
    ledger.mark_done(ledger.claim_next().id, result_for("a.pt", 3.0), 1.0)  # type: ignore[union-attr]
    assert seen(ledger, "a.pt", 1, **change) == (row_id, True)
    row = ledger.get(row_id)
    assert row is not None
    assert (row.status, row.attempts, row.result, row.reason) == ("pending", 0, None, None)


def test_claim_order_lowest_step_first_unknown_last(ledger: Ledger) -> None:
    for path, step, mtime in [("c", 300, 1), ("x", None, 5), ("a", 100, 9), ("w", None, 2), ("b", 200, 3)]:
        seen(ledger, path, step, mtime_ns=mtime)
    order = []
    while (row := ledger.claim_next()) is not None:
        assert row.status == "analyzing" and row.attempts == 1 and row.started_at is not None
        order.append(row.path)
    assert order == ["a", "b", "c", "w", "x"]


def test_claim_is_atomic_across_threads(ledger: Ledger) -> None:
    for i in range(60):
        seen(ledger, f"{i}.pt", i)
    claimed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while (row := ledger.claim_next()) is not None:
            with lock:
                claimed.append(row.id)
            ledger.mark_done(row.id, result_for(row.path, 2.5), 0.01)
            ledger.status_counts("r")  # readers interleaved with writers

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 60
    assert ledger.status_counts("r")["done"] == 60


def test_backlog_latest_skips_older_pending_per_run(ledger: Ledger) -> None:
    for step in (1, 2, 3):
        seen(ledger, f"a{step}", step, run="a")
    seen(ledger, "b1", 1, run="b")
    first = ledger.claim_next("latest")
    second = ledger.claim_next("latest")
    assert {first.path, second.path} == {"a3", "b1"}  # type: ignore[union-attr]
    assert ledger.claim_next("latest") is None
    assert ledger.status_counts("a")["skipped"] == 2
    skipped = [r for r in (ledger.find("a", p) for p in ("a1", "a2")) if r]
    assert all(r.status == "skipped" and r.reason == "backlog" for r in skipped)


def test_transient_failures_retry_with_backoff_until_max_attempts(tmp_path: Path) -> None:
    clock = Clock()
    with Ledger(tmp_path / "l.db", max_attempts=3, retry_seconds=5.0, clock=clock) as ledger:
        row_id, _ = seen(ledger, "a.pt", 1)
        other_id, _ = seen(ledger, "b.pt", 2)
        outcomes, waits = [], []
        for _ in range(3):
            row = ledger.claim_next()
            assert row is not None and row.id == row_id
            outcomes.append(ledger.mark_failed(row.id, "timeout", "took too long", 5.0))
            if outcomes[-1] != "pending":
                break
            retry_at = ledger.next_retry_at()
            assert retry_at is not None
            waits.append(retry_at - clock.now)
            if len(waits) == 1:  # while it waits, the next checkpoint goes first
                other = ledger.claim_next()
                assert other is not None and other.id == other_id
                ledger.mark_done(other.id, result_for(other.path, 3.0), 1.0)
            clock.now = retry_at - 0.01
            ledger.claim_next() and pytest.fail("claimed before its retry time")  # type: ignore[func-returns-value]
            clock.now = retry_at
        assert outcomes == ["pending", "pending", "failed"]
        assert waits == [5.0, 10.0]  # doubling, so a file being repaired gets time
        assert ledger.get(row_id).attempts == 3  # type: ignore[union-attr]
        assert ledger.failure_counts("r") == {"timeout": 3}
        assert ledger.next_retry_at() is None


def test_permanent_failure_is_final_at_once(ledger: Ledger) -> None:
    row_id, _ = seen(ledger, "evil.pt", 1)
    assert ledger.mark_failed(ledger.claim_next().id, "unsafe_pickle", "refused", 0.2) == "failed"  # type: ignore[union-attr]
    row = ledger.get(row_id)
    assert (row.status, row.reason, row.message) == ("failed", "unsafe_pickle", "refused")  # type: ignore[union-attr]


def test_failure_counter_never_goes_down_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        seen(ledger, "a.pt", 1)
        ledger.mark_failed(ledger.claim_next().id, "truncated", "cut", 0.1)  # type: ignore[union-attr]
        # the file is rewritten (new identity): the row resets, the counter must not
        seen(ledger, "a.pt", 1, size=99)
        ledger.mark_done(ledger.claim_next().id, result_for("a.pt", 2.1), 0.3)  # type: ignore[union-attr]
        assert ledger.failure_counts("r") == {"truncated": 1}
    with Ledger(path) as ledger:
        assert ledger.failure_counts("r") == {"truncated": 1}
        assert ledger.durations("r") == [0.1, 0.3]
        assert ledger.status_counts("r")["done"] == 1


def test_interrupted_analyses_are_requeued_without_using_up_attempts(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path, max_attempts=2) as ledger:
        a, _ = seen(ledger, "a.pt", 1)
        seen(ledger, "b.pt", 2)
        ledger.claim_next()
    for crash in range(1, 4):  # the daemon dies during a's analysis, again and again
        with Ledger(path, max_attempts=2) as ledger:
            assert ledger.get(a).status == "analyzing"  # type: ignore[union-attr]
            requeued = ledger.requeue_interrupted()
            found = [(r.id, r.status, r.attempts, r.interruptions) for r in requeued]
            assert found == [(a, "pending", 0, crash)]
            assert ledger.claim_next().id == a  # type: ignore[union-attr]
    with Ledger(path, max_attempts=2) as ledger:
        ledger.requeue_interrupted()
        assert ledger.failure_counts("r") == {}
        row = ledger.claim_next()
        assert row is not None and row.id == a and row.attempts == 1 and row.interruptions == 4


def test_release_does_not_count_the_attempt(ledger: Ledger) -> None:
    row_id, _ = seen(ledger, "a.pt", 1)
    ledger.release(ledger.claim_next().id)  # type: ignore[union-attr]
    row = ledger.get(row_id)
    assert (row.status, row.attempts) == ("pending", 0)  # type: ignore[union-attr]


def test_stale_result_of_a_changed_file_is_dropped(ledger: Ledger) -> None:
    row_id, _ = seen(ledger, "a.pt", 1)
    claimed = ledger.claim_next()
    seen(ledger, "a.pt", 1, size=20)  # rewritten while being analyzed
    assert ledger.mark_done(claimed.id, result_for("a.pt", 3.0), 1.0) is False  # type: ignore[union-attr]
    assert ledger.mark_failed(row_id, "timeout", "x", 1.0) is None
    assert ledger.get(row_id).status == "pending"  # type: ignore[union-attr]


def test_non_json_result_becomes_internal_error(ledger: Ledger) -> None:
    row_id, _ = seen(ledger, "a.pt", 1)
    assert not ledger.mark_done(ledger.claim_next().id, result_for("a.pt", math.nan), 1.0)  # type: ignore[union-attr]
    row = ledger.get(row_id)
    assert (row.status, row.reason) == ("failed", "internal_error")  # type: ignore[union-attr]


def test_read_side(ledger: Ledger) -> None:
    for path, step in [("s300", 300), ("s100", 100), ("s200", 200)]:
        seen(ledger, path, step)
    while (row := ledger.claim_next()) is not None:
        ledger.mark_done(row.id, result_for(row.path, 2.0 + row.step / 100), row.step / 1000)  # type: ignore[operator]
    seen(ledger, "x", 5, run="other")
    assert ledger.runs() == ["other", "r"]
    assert [r.path for r in ledger.distinct("r")] == ["s100", "s200", "s300"]
    latest = ledger.latest_done("r")
    assert latest is not None and latest.path == "s300"
    assert latest.result["networks"]["model"]["summary"]["alpha"] == 5.0  # type: ignore[index]
    assert latest.duration_seconds == 0.3 and latest.finished_at is not None
    assert ledger.latest_done("other") is None
    assert ledger.last_finished_at("r") == pytest.approx(latest.finished_at)
    assert sorted(ledger.durations("r")) == [0.1, 0.2, 0.3]


def test_stop_records_persist(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        assert ledger.stop_recorded("r") is None
        ledger.record_stop("r", tmp_path / "stop.json", {"stop": True, "value": 1.8})
    with Ledger(path) as ledger:
        assert ledger.stop_recorded("r") == {"stop": True, "value": 1.8}
        assert "r" in ledger.runs()


def test_is_writable(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = Ledger(path)
    assert ledger.is_writable()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert not ledger.is_writable()
    ledger.close()


def test_closed_ledger_is_not_writable(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")
    ledger.close()
    assert not ledger.is_writable()


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="not a usable alphawatch ledger"):
        Ledger(path)


_WRITER = textwrap.dedent("""
    import sys, time
    from alphawatch.service.ledger import Ledger
    ledger = Ledger(sys.argv[1], max_attempts=2)
    ledger.requeue_interrupted()
    i = int(sys.argv[2])
    while True:
        i += 1
        ledger.record_seen("r", f"ckpt_{i}.pt", size=i, mtime_ns=i, inode=i, step=i)
        row = ledger.claim_next()
        if row is None:
            continue
        if row.step % 3 == 0:
            ledger.mark_failed(row.id, "timeout", "slow", 0.01)
        else:
            layer = {"name": "w", "shape": [8, 8], "status": "ok", "alpha": 2.0 + row.step / 1e6,
                     "stable_rank": 3.0, "log_spectral_norm": 0.1, "pad": "x" * 2000}
            network = {"summary": {"alpha": 2.5}, "layers": [layer]}
            ledger.mark_done(row.id, {"path": row.path, "step": row.step, "networks": {"m": network}}, 0.01)
            print(row.path, flush=True)  # reported only after the commit returned
""")


def test_kill_9_at_any_moment_leaves_it_consistent(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    reported: set[str] = set()
    start = 0
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(start)],
                                stdout=subprocess.PIPE, text=True)
        time.sleep(0.6 + 0.13 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        reported |= set(out.split())
        start += 100_000
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(reported) > 20, "the writer made too little progress to prove anything"
    with Ledger(path, max_attempts=2) as ledger:
        ledger.requeue_interrupted()
        counts = ledger.status_counts("r")
        assert counts["analyzing"] == 0
        done = {row.path for row in ledger.distinct("r")}
        assert reported <= done  # every commit the writer saw return is on disk
        for row in ledger.distinct("r"):
            assert row.result is not None and json.dumps(row.result)
        with sqlite3.connect(path) as conn:
            attempts_done = conn.execute("SELECT COUNT(*) FROM attempts WHERE outcome='done'").fetchone()[0]
        assert attempts_done == counts["done"]  # row and attempt are written in one transaction


_READ_ONLY = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from alphawatch.service.ledger import Ledger, LedgerError
    base = Path(sys.argv[1])
    ledger = Ledger(base / "state" / "l.db")
    assert ledger.is_writable()
    ledger.close()
    # the state volume becomes read-only (wrong owner, read-only mount) before a restart
    os.chmod(base / "state" / "l.db", 0o444)
    os.chmod(base / "state", 0o555)
    try:
        reopened = Ledger(base / "state" / "l.db")
        print("reopened_writable", reopened.is_writable())
    except LedgerError as exc:
        print("reopen_error", exc)
    os.chmod(base, 0o555)
    try:
        Ledger(base / "new" / "l.db")
    except LedgerError as exc:
        print("open_error", exc)
""")


def as_unprivileged(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run argv as `nobody` (root ignores mode bits, so permission tests must not run as root)."""
    if os.geteuid() == 0:
        os.chown(cwd, 65534, 65534)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(cwd)})


def test_read_only_ledger_is_not_writable_and_a_bad_folder_is_a_clear_error() -> None:
    import shutil
    import tempfile

    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to drop root for a permission test")
    base = Path(tempfile.mkdtemp(prefix="alphawatch-perm-"))
    try:
        script = base / "check.py"
        script.write_text(_READ_ONLY)
        proc = as_unprivileged([sys.executable, str(script), str(base)], base)
        assert proc.returncode == 0, proc.stderr
        assert "reopen_error" in proc.stdout and "the ledger cannot be written" in proc.stdout, proc.stdout
        assert "open_error" in proc.stdout and "cannot open the ledger" in proc.stdout
        assert "Traceback" not in proc.stderr
    finally:
        os.chmod(base, 0o755)
        for folder in (base / "state",):
            if folder.exists():
                os.chmod(folder, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_a_checkpoint_without_a_step_sits_where_it_was_written(ledger: Ledger) -> None:
    # `torch.save(model.state_dict(), "best_model.pt")` next to `model_<epoch>.pt`: the best
    # model (no step in its name or content) was saved after epoch 2 and never again.
    for path, step, mtime in [("model_1", 1, 10), ("model_2", 2, 20), ("best_model", None, 21),
                              ("model_3", 3, 30), ("model_4", 4, 40)]:
        seen(ledger, path, step, mtime_ns=mtime)
    alpha = iter([3.0, 2.9, 2.8, 2.7, 2.6])
    while (row := ledger.claim_next()) is not None:
        ledger.mark_done(row.id, result_for(row.path, next(alpha)), 0.1)
    # the stop rule sees it where it was written, not as the newest checkpoint forever
    order = [r.path for r in ledger.distinct("r")]
    assert order == ["model_1", "model_2", "best_model", "model_3", "model_4"]
    latest = ledger.latest_done("r")  # what the gauges show
    assert latest is not None and latest.path == "model_4"
    assert [r.path for r in ledger.distinct_recent("r", 2)] == ["model_3", "model_4"]
    # a stepped checkpoint that arrives late (copied in) still takes its place by step
    seen(ledger, "model_0", 0, mtime_ns=50)
    row = ledger.claim_next()
    assert row is not None and row.path == "model_0"
    ledger.mark_done(row.id, result_for(row.path, 3.1), 0.1)
    assert [r.path for r in ledger.distinct("r")][:2] == ["model_0", "model_1"]
    # rewritten after model_9, the step-less file is the newest written: backlog "latest"
    # keeps it, in the same order as everything else
    seen(ledger, "model_9", 9, mtime_ns=90)
    seen(ledger, "best_model", None, mtime_ns=91, size=11)
    row = ledger.claim_next("latest")
    assert row is not None and row.path == "best_model"
    assert ledger.find("r", "model_9").status == "skipped"  # type: ignore[union-attr]


def test_copies_count_once_by_content(ledger: Ledger) -> None:
    # a temp file analyzed before its producer renamed it, and `best_model.pt` saved next to
    # `model_300.pt`: the same weights under other names are not more checkpoints
    seen(ledger, "tmpab12cd34", None, mtime_ns=300)
    seen(ledger, "model_100.pt", 100, mtime_ns=100)
    seen(ledger, "model_300.pt", 300, mtime_ns=300)
    seen(ledger, "best_model.pt", None, mtime_ns=310)
    alphas = {"model_100.pt": 3.0, "tmpab12cd34": 1.9, "model_300.pt": 1.9, "best_model.pt": 1.9}
    while (row := ledger.claim_next()) is not None:
        ledger.mark_done(row.id, result_for(row.path, alphas[row.path]), 0.1)
    assert [r.path for r in ledger.distinct("r")] == ["model_100.pt", "model_300.pt"]
    assert ledger.distinct_count("r") == 2
    original = ledger.find("r", "model_300.pt")
    assert original is not None and original.copy_of is None
    for copy in ("tmpab12cd34", "best_model.pt"):
        assert ledger.find("r", copy).copy_of == original.id  # type: ignore[union-attr]
    # the original is rewritten with new weights: its copies are judged among themselves again
    seen(ledger, "model_300.pt", 300, mtime_ns=320, size=99)
    assert [r.path for r in ledger.distinct("r")] == ["model_100.pt", "tmpab12cd34"]
    row = ledger.claim_next()
    assert row is not None and row.path == "model_300.pt"
    ledger.mark_done(row.id, result_for(row.path, 1.7), 0.1)
    assert [r.path for r in ledger.distinct("r")] == ["model_100.pt", "tmpab12cd34", "model_300.pt"]


def test_results_without_any_measured_layer_are_never_taken_for_copies(ledger: Ledger) -> None:
    # a tiny network whose layers are all under 8 eigenvalues: nothing tells two checkpoints apart
    for step in (1, 2):
        seen(ledger, f"m{step}", step, mtime_ns=step)
    while (row := ledger.claim_next()) is not None:
        ledger.mark_done(row.id, result_for(row.path, None), 0.1)
    assert ledger.distinct_count("r") == 2


def test_a_schema_1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # what alphawatch 0.1 wrote
        conn.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE checkpoints (id INTEGER PRIMARY KEY AUTOINCREMENT, run TEXT NOT NULL,
                path TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, inode INTEGER, step INTEGER,
                status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, message TEXT,
                seen_at REAL NOT NULL, started_at REAL, finished_at REAL, duration_seconds REAL,
                result TEXT, UNIQUE (run, path));
            CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, checkpoint_id INTEGER NOT NULL,
                run TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT, duration_seconds REAL,
                finished_at REAL NOT NULL);
            CREATE TABLE stop_signals (run TEXT PRIMARY KEY, path TEXT NOT NULL, payload TEXT NOT NULL,
                recorded_at REAL NOT NULL);
        """)
        for i, (path_, step, mtime, alpha) in enumerate([("a_1.pt", 1, 10, 3.0), ("best.pt", None, 15, 3.0),
                                                         ("a_2.pt", 2, 20, 2.5)]):
            conn.execute("INSERT INTO checkpoints (run, path, size, mtime_ns, inode, step, status, seen_at,"
                         " result) VALUES ('r', ?, 1, ?, ?, ?, 'done', 0, ?)",
                         (path_, mtime, i, step, json.dumps(result_for(path_, alpha))))
    with Ledger(path) as ledger:
        assert [r.path for r in ledger.distinct("r")] == ["a_1.pt", "a_2.pt"]  # best.pt is a copy of a_1
        assert ledger.find("r", "best.pt").copy_of == ledger.find("r", "a_1.pt").id  # type: ignore[union-attr]
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        assert version == str(SCHEMA_VERSION)


def test_the_same_weights_at_two_steps_are_two_checkpoints(ledger: Ledger) -> None:
    # a frozen model keeps being saved: the newest step must stay the newest
    for step in (100, 200):
        seen(ledger, f"model_{step}.pt", step, mtime_ns=step)
    while (row := ledger.claim_next()) is not None:
        ledger.mark_done(row.id, result_for(row.path, 2.5), 0.1)
    assert [r.path for r in ledger.distinct("r")] == ["model_100.pt", "model_200.pt"]
    assert ledger.latest_done("r").path == "model_200.pt"  # type: ignore[union-attr]
