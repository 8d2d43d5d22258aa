"""The daemon: watchers -> ledger -> one analysis loop -> worker -> ledger -> stop rule.

Why this shape: the ledger is the only state. Watchers only *record* complete
checkpoints (`record_seen`); a single analysis thread claims rows in training order,
hands them to the warm worker subprocess and writes the outcome back; metrics are
read from the ledger at scrape time; the stop rule is re-evaluated from the
ledger after every result (and once at start, in case the daemon died between
storing a result and writing the stop file). So a restart — even after
`kill -9` — resumes exactly: done rows are never redone, rows left `analyzing`
go back to `pending`.

Each event is logged where it happens, at its own level (`log.warning(...)`), with a
structlog logger the parts share.

This module must not import torch or WeightWatcher (the worker does).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alphawatch.config import Config
from alphawatch.errors import CheckpointError
from alphawatch.results import CheckpointResult
from alphawatch.service.ledger import Ledger, LedgerRow
from alphawatch.service.stop_keeper import StopKeeper
from alphawatch.service.watch import Candidate, RunWatcher
from alphawatch.service.worker import Abandoned, AnalysisWorker, Outcome, WorkerStartError


class Daemon:
    """Owns every part of a running daemon; `run()` blocks until SIGTERM/SIGINT.

    The parts (`ledger`, `worker`, `watchers`) may be passed in, e.g. a worker with a
    broken interpreter in a test; whatever is not given is built from `config` by `start()`.
    """

    def __init__(self, config: Config, *, ledger: Ledger | None = None, worker: AnalysisWorker | None = None,
                 watchers: Sequence[RunWatcher] | None = None, logger: Any = None) -> None:
        from alphawatch.service.logging import get_logger

        self.config = config
        self.log = logger if logger is not None else get_logger("alphawatch.daemon")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._roots = {run.name: Path(run.watch).absolute() for run in config.runs}
        self.ledger = ledger
        self.worker = worker
        self.server: Any = None
        self.watchers: list[RunWatcher] = list(watchers or ())
        self._thread: threading.Thread | None = None
        # Why the analysis worker cannot start (None while it can): /readyz reports it.
        self._worker_error: str | None = None
        # The last error that interrupted the analysis loop (None after a clean turn): /readyz.
        self._loop_error: str | None = None
        # The row this daemon has claimed and not yet finished (given back after an error).
        self._claimed: int | None = None
        self._stops: StopKeeper | None = None
        # First wait after a failure; it doubles up to max_retry_seconds.
        self.retry_seconds, self.max_retry_seconds = 1.0, 60.0

    # ---------------------------------------------------------------- lifecycle
    def run(self, install_signals: bool = True) -> int:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._on_signal)
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            self.shutdown()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.log.info("shutdown_requested", signal=signal.Signals(signum).name)
        self.request_stop()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def start(self) -> None:
        from alphawatch.service.http import MetricsServer
        from alphawatch.service.metrics import build_registry

        cfg = self.config
        if self.ledger is None:
            self.ledger = Ledger(cfg.state.path, cfg.state.max_attempts)
        requeued = self.ledger.requeue_interrupted()
        self.log.info("ledger_opened", path=str(Path(cfg.state.path).absolute()), requeued=len(requeued))
        for row in requeued:
            self.log.warning("analysis_interrupted", run=row.run, path=row.path,
                             interruptions=row.interruptions, attempts=row.attempts,
                             detail="the daemon stopped during this analysis; it is analyzed again, "
                                    "and the interrupted attempt is not counted")
        if self.worker is None:
            self.worker = AnalysisWorker(cfg.worker, cfg.analysis, logger=self.log)
        registry = build_registry(self.ledger, cfg, unwritten=lambda: self.stops().unwritten)
        self.server = MetricsServer(cfg.metrics.host, cfg.metrics.port, registry, ready=self.ready)
        self.server.start()
        self.log.info("metrics_listening", host=cfg.metrics.host, port=self.server.port)
        if not self.watchers:
            self.watchers = [RunWatcher(run, cfg.watch, self._on_candidate, logger=self.log,
                                        moved_away=self._on_moved_away) for run in cfg.runs]
        for watcher in self.watchers:
            watcher.start()
        self._thread = threading.Thread(target=self._analysis_loop, name="analysis", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop watching, abandon the analysis in flight (its row goes back to pending), close."""
        self._stop.set()
        self._wake.set()
        for watcher in self.watchers:
            watcher.stop()
        if self.worker is not None:
            self.worker.kill()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.worker is not None:
            self.worker.stop()
        if self.server is not None:
            self.server.stop()
        if self.ledger is not None:
            self.ledger.close()
        self.log.info("shutdown_complete")

    def ready(self) -> tuple[bool, str]:
        """/readyz: every watcher running, the analysis loop alive, the ledger writable."""
        details = []
        for watcher in self.watchers:
            ok, detail = watcher.status()
            if not ok:
                return False, detail
            details.append(detail)
        if self._thread is None or not self._thread.is_alive():
            return False, "analysis loop not running"
        if self._worker_error is not None:
            return False, f"analysis worker cannot start: {self._worker_error}"
        if self.ledger is None or not self.ledger.is_writable():
            return False, f"ledger {self.config.state.path} is not writable"
        if self._loop_error is not None:
            return False, f"analysis is failing: {self._loop_error}"
        for run, error in sorted(self.stops().unwritten.items()):
            path = self.stops().path(run)
            return False, f"the stop file {path} of run {run} is due but cannot be written: {error}"
        return True, "; ".join(details) or "ready"

    # ---------------------------------------------------------------- watcher side
    def _on_candidate(self, cand: Candidate) -> None:
        """Called from a watcher thread for each complete checkpoint version."""
        assert self.ledger is not None
        ident = cand.identity
        if cand.note is None and self._follow_rename(cand):
            return
        row_id, queued = self.ledger.record_seen(
            cand.run,
            str(cand.path),
            size=ident.size,
            mtime_ns=ident.mtime_ns,
            inode=ident.inode,
            step=cand.step,
        )
        if cand.note == "incomplete":
            self.log.warning(
                "checkpoint_incomplete",
                run=cand.run,
                path=str(cand.path),
                size=ident.size,
                detail="unchanged for the stale hold but structurally incomplete; analyzing to find why",
            )
        elif cand.note is not None:  # a link the watcher would not follow: the reason says why
            self.log.warning("checkpoint_refused", run=cand.run, path=str(cand.path), reason=cand.note)
        else:
            self.log.info("checkpoint_complete", run=cand.run, path=str(cand.path), step_from_name=cand.step,
                          size=ident.size, queued=queued)
        if queued:
            self._wake.set()

    def _follow_rename(self, cand: Candidate) -> bool:
        """A new name whose identity (inode, size, mtime) is a known row's whose own name is gone
        is that file renamed: the row follows it instead of the weights being analyzed again."""
        assert self.ledger is not None
        path, ident = str(cand.path), cand.identity
        if self.ledger.find(cand.run, path) is not None:
            return False
        for row in self.ledger.same_identity(cand.run, ident.size, ident.mtime_ns, ident.inode):
            if not os.path.lexists(row.path) and self.ledger.move(row.id, path, cand.step):
                self.log.info("checkpoint_renamed", run=cand.run, path=path, old_path=row.path,
                              status=row.status)
                return True
        return False

    def _on_moved_away(self, run: str, path: Path) -> None:
        """Called from a watcher thread: a recorded file was renamed to a name that is not watched."""
        assert self.ledger is not None
        if self.ledger.forget(run, str(path), f"{path} was renamed to a name that is not watched"):
            self.log.info("checkpoint_moved_away", run=run, path=str(path))

    # ---------------------------------------------------------------- analysis side
    def _analysis_loop(self) -> None:
        """Claim, analyze, record, until shutdown. It never ends on an error: whatever goes
        wrong (the worker cannot start, the disk is full, a bug) releases the claim, is
        logged, shows on /readyz, and is retried after a doubling wait."""
        assert self.ledger is not None and self.worker is not None
        wait = self.retry_seconds
        starting = True
        while not self._stop.is_set():
            try:
                if starting:
                    for run in self.config.runs:
                        self.stops().warn_stale(run.name)
                        self.stops().check(run.name)  # it may have been due when the daemon died
                    starting = False
                self._turn()
                wait, self._loop_error = self.retry_seconds, None
            except Abandoned:
                break
            except WorkerStartError as exc:
                self._worker_error = str(exc)
                self._release_claim()
                self.log.error("worker_start_failed", error=str(exc), retry_in_seconds=wait)
                self._stop.wait(wait)
                wait = min(wait * 2, self.max_retry_seconds)
            except Exception as exc:  # the ledger's disk is full, or a bug: never end analysis
                self._loop_error = f"{type(exc).__name__}: {exc}"
                self._release_claim()
                self.log.error("analysis_loop_error", error=self._loop_error, retry_in_seconds=wait,
                               claim_released=self._claimed is None)
                self._stop.wait(wait)
                wait = min(wait * 2, self.max_retry_seconds)
        self._release_claim()

    def _turn(self) -> None:
        """One turn: give back a claim an error left, make sure the worker runs, then claim and
        analyze the next checkpoint (or wait for one)."""
        assert self.ledger is not None and self.worker is not None
        if self._claimed is not None:
            self.ledger.release(self._claimed)  # raises again while the ledger cannot be written
            self._claimed = None
        self.stops().retry()  # a due stop file that could not be written (a no-op when none)
        self.worker.start()  # warm before the first checkpoint; a no-op while it runs
        self._worker_error = None
        row = self.ledger.claim_next(self.config.watch.backlog)
        if row is None:
            self._wake.wait(1.0)
            self._wake.clear()
            return
        self._claimed = row.id
        if self._stop.is_set():
            return  # released on the way out
        try:
            self._analyze(row)
        except Abandoned:
            self.log.info("analysis_abandoned", run=row.run, path=row.path)
            raise
        self._claimed = None

    def _release_claim(self) -> None:
        """Put the claimed row back to pending (attempt not counted); if the ledger refuses
        (disk full), keep it to give back on the next turn."""
        if self._claimed is None or self.ledger is None:
            return
        try:
            self.ledger.release(self._claimed)
        except Exception:  # still unwritable: the next turn tries again
            return
        self._claimed = None

    def _analyze(self, row: LedgerRow) -> None:
        from alphawatch.checkpoints.safety import resolve_within

        assert self.ledger is not None and self.worker is not None
        path = Path(row.path)
        root = self._roots.get(row.run, path.parent)
        if not os.path.lexists(path):  # deleted by its producer before its turn: not a failure
            if self.ledger.mark_gone(row.id, f"{path} was deleted before it was analyzed"):
                self.log.info("checkpoint_gone", run=row.run, path=row.path)
            return
        try:
            resolve_within(path, root)  # the worker checks again: every hop refuses links out
        except CheckpointError as exc:
            outcome = Outcome(False, 0.0, reason=exc.reason, message=exc.message)
        else:
            outcome = self.worker.analyze(path, root)
        if outcome.ok and outcome.result is not None:
            if self.ledger.mark_done(row.id, outcome.result, outcome.duration):
                step = outcome.result["step"]
                self.log.info(
                    "checkpoint_analyzed",
                    run=row.run,
                    path=row.path,
                    step=row.step if step is None else step,
                    alpha=_alphas(outcome.result),
                    duration_seconds=round(outcome.duration, 3),
                )
                self.stops().check(row.run)
            return
        gone = not os.path.lexists(path)  # deleted mid-analysis: its failure says nothing about it
        if gone and self.ledger.mark_gone(row.id, f"{path} was deleted while it was analyzed"):
            self.log.info("checkpoint_gone", run=row.run, path=row.path)
            return
        status = self.ledger.mark_failed(
            row.id, outcome.reason or "internal_error", outcome.message or "no message", outcome.duration
        )
        self.log.warning(
            "checkpoint_failed",
            run=row.run,
            path=row.path,
            reason=outcome.reason,
            message=outcome.message,
            will_retry=status == "pending",
        )

    def stops(self) -> StopKeeper:
        """The stop files' keeper (built on first use: tests drive a daemon without start())."""
        assert self.ledger is not None
        if self._stops is None:
            self._stops = StopKeeper(self.config, self.ledger, self.log)
        return self._stops


def _alphas(result: CheckpointResult) -> dict[str, float | None]:
    """{network: alpha} for the log line, to 4 decimals (alpha's noise is larger than that)."""
    return {name: None if (a := net["summary"]["alpha"]) is None else round(a, 4)
            for name, net in result["networks"].items()}


def run_daemon(config: Config) -> int:
    """Configure logging, build the daemon and block until a signal; exit status 0.

    A start-up failure (an unusable ledger, a taken metrics port) is one `daemon_start_failed`
    log line, in the configured format like every other line, and exit status 2.
    """
    from alphawatch.service.ledger import LedgerError
    from alphawatch.service.logging import configure_logging, get_logger, log_uncaught

    configure_logging(config.logging)
    log = get_logger("alphawatch.daemon")
    log_uncaught(log)
    daemon = Daemon(config, logger=log)
    started = time.monotonic()
    log.info("daemon_starting", runs=[r.name for r in config.runs], pid=os.getpid())
    try:
        code = daemon.run()
    except (LedgerError, OSError) as exc:
        log.error("daemon_start_failed", error=str(exc))
        return 2
    log.info("daemon_stopped", uptime_seconds=round(time.monotonic() - started, 1))
    return code
