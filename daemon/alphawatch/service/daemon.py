"""The daemon: watchers -> ledger -> one analysis loop -> worker -> ledger -> stop rule.

Why this shape: the ledger is the only state. Watchers only *record* complete
checkpoints (`record_seen`); a single analysis thread claims rows in step order,
hands them to the warm worker subprocess and writes the outcome back; metrics are
read from the ledger at scrape time; the stop rule is re-evaluated from the
ledger after every result (and once at start, in case the daemon died between
storing a result and writing the stop file). So a restart — even after
`kill -9` — resumes exactly: done rows are never redone, rows left `analyzing`
go back to `pending`.

This module must not import torch or WeightWatcher (the worker does).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from alphawatch.config import Config
from alphawatch.service.ledger import Ledger, LedgerRow
from alphawatch.service.paths import resolves_within
from alphawatch.service.watch import Candidate, RunWatcher
from alphawatch.service.worker import Abandoned, AnalysisWorker, Outcome, WorkerStartError

# Events logged at warning level; everything else is info.
_WARN = frozenset(
    {
        "checkpoint_failed",
        "checkpoint_incomplete",
        "checkpoint_outside_watch",
        "observer_fallback",
        "watch_folder_lost",
        "worker_replaced",
        "stop_file_exists",
        "watch_emit_failed",
        "stop_file_present",
    }
)
_ERROR = frozenset({"worker_start_failed", "watch_error", "analysis_loop_error", "stop_write_failed"})


class Daemon:
    """Owns every part of a running daemon; `run()` blocks until SIGTERM/SIGINT."""

    def __init__(self, config: Config) -> None:
        from alphawatch.service.logging import get_logger

        self.config = config
        self._logger = get_logger("alphawatch.daemon")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._roots = {run.name: Path(run.watch).absolute() for run in config.runs}
        self.ledger: Ledger | None = None
        self.worker: AnalysisWorker | None = None
        self.server: Any = None
        self.watchers: list[RunWatcher] = []
        self._thread: threading.Thread | None = None
        # Why the analysis worker cannot start (None while it can): /readyz reports it.
        self._worker_error: str | None = None
        # Runs whose stop file is due but could not be written (retried while idle).
        self._stop_retry: set[str] = set()

    # ---------------------------------------------------------------- logging
    def log(self, event: str, **fields: Any) -> None:
        level = "error" if event in _ERROR else "warning" if event in _WARN else "info"
        getattr(self._logger, level)(event, **fields)

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
        self.log("shutdown_requested", signal=signal.Signals(signum).name)
        self.request_stop()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def start(self) -> None:
        from prometheus_client import CollectorRegistry

        from alphawatch.service.http import MetricsServer
        from alphawatch.service.metrics import LedgerCollector

        cfg = self.config
        self.ledger = Ledger(cfg.state.path, cfg.state.max_attempts)
        requeued = self.ledger.requeue_interrupted()
        self.log("ledger_opened", path=str(cfg.state.path), requeued=requeued)
        self.worker = AnalysisWorker(cfg.worker, cfg.analysis, log=self.log)
        registry = CollectorRegistry()
        collector = LedgerCollector(
            self.ledger,
            runs=[run.name for run in cfg.runs],
            per_layer=cfg.metrics.per_layer,
            per_layer_limit=cfg.metrics.per_layer_limit,
        )
        registry.register(collector)
        self.server = MetricsServer(cfg.metrics.host, cfg.metrics.port, registry, ready=self.ready)
        self.server.start()
        self.log("metrics_listening", host=cfg.metrics.host, port=self.server.port)
        for run in cfg.runs:
            watcher = RunWatcher(run, cfg.watch, self._on_candidate, log=self.log)
            watcher.start()
            self.watchers.append(watcher)
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
        self.log("shutdown_complete")

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
        return True, "; ".join(details) or "ready"

    # ---------------------------------------------------------------- watcher side
    def _on_candidate(self, cand: Candidate) -> None:
        """Called from a watcher thread for each complete checkpoint version."""
        assert self.ledger is not None
        ident = cand.identity
        row_id, queued = self.ledger.record_seen(
            cand.run,
            str(cand.path),
            size=ident.size,
            mtime_ns=ident.mtime_ns,
            inode=ident.inode,
            step=cand.step,
        )
        if cand.note == "incomplete":
            self.log(
                "checkpoint_incomplete",
                run=cand.run,
                path=str(cand.path),
                size=ident.size,
                detail="unchanged for the stale hold but structurally incomplete; analyzing to find why",
            )
        elif cand.note == "outside_watch":
            self.log("checkpoint_outside_watch", run=cand.run, path=str(cand.path))
        else:
            self.log(
                "checkpoint_complete",
                run=cand.run,
                path=str(cand.path),
                step=cand.step,
                size=ident.size,
                queued=queued,
            )
        if queued:
            self._wake.set()

    # ---------------------------------------------------------------- analysis side
    def _analysis_loop(self) -> None:
        assert self.ledger is not None and self.worker is not None
        for run in self.config.runs:
            self._warn_stale_stop_file(run.name)
            self._check_stop(run.name)
        try:
            self.worker.start()  # warm before the first checkpoint arrives
        except WorkerStartError as exc:
            self._worker_error = str(exc)
            self.log("worker_start_failed", error=str(exc), retry_in_seconds=0)
        except Abandoned:
            return
        backoff = 1.0
        while not self._stop.is_set():
            try:
                row = self.ledger.claim_next(self.config.watch.backlog)
                if row is None:
                    for name in sorted(self._stop_retry):  # a stop file that could not be written
                        self._check_stop(name)
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                if self._stop.is_set():
                    self.ledger.release(row.id)
                    break
                try:
                    self._analyze(row)
                    backoff = 1.0
                    self._worker_error = None
                except WorkerStartError as exc:
                    self._worker_error = str(exc)
                    self.ledger.release(row.id)
                    self.log("worker_start_failed", error=str(exc), retry_in_seconds=backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 60.0)
                except Abandoned:
                    self.ledger.release(row.id)
                    self.log("analysis_abandoned", run=row.run, path=row.path)
                    break
            except Exception as exc:  # a bug must not silently end analysis
                self.log("analysis_loop_error", error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(1.0)

    def _analyze(self, row: LedgerRow) -> None:
        assert self.ledger is not None and self.worker is not None
        path = Path(row.path)
        root = self._roots.get(row.run, path.parent)
        if not os.path.lexists(path):  # deleted by its producer before its turn: not a failure
            if self.ledger.mark_gone(row.id, f"{path} was deleted before it was analyzed"):
                self.log("checkpoint_gone", run=row.run, path=row.path)
            return
        if not resolves_within(path, root):
            outcome = Outcome(
                False,
                0.0,
                reason="outside_watch",
                message=f"{path} resolves outside the watched folder {root}; refused",
            )
        else:
            outcome = self.worker.analyze(path, root)
        if outcome.ok and outcome.result is not None:
            if self.ledger.mark_done(row.id, outcome.result, outcome.duration):
                self.log(
                    "checkpoint_analyzed",
                    run=row.run,
                    path=row.path,
                    step=row.step if outcome.result.get("step") is None else outcome.result["step"],
                    alpha=_alphas(outcome.result),
                    duration_seconds=round(outcome.duration, 3),
                )
                self._check_stop(row.run)
            return
        gone = not os.path.lexists(path)  # deleted mid-analysis: its failure says nothing about it
        if gone and self.ledger.mark_gone(row.id, f"{path} was deleted while it was analyzed"):
            self.log("checkpoint_gone", run=row.run, path=row.path)
            return
        status = self.ledger.mark_failed(
            row.id, outcome.reason or "internal_error", outcome.message or "no message", outcome.duration
        )
        self.log(
            "checkpoint_failed",
            run=row.run,
            path=row.path,
            reason=outcome.reason,
            message=outcome.message,
            will_retry=status == "pending",
        )

    def _check_stop(self, run: str) -> None:
        """Write the run's stop file once, when the stop rule fires over its done results."""
        from alphawatch.service import stop_rule
        from alphawatch.service.stop_signal import write_stop_signal

        assert self.ledger is not None
        stop = self.config.stop
        if not stop.enabled or self.ledger.stop_recorded(run):
            return
        results = [r.result for r in self.ledger.done_rows(run) if r.result is not None]
        payload = stop_rule.evaluate(results, stop, run)
        if payload is None:
            return
        path = stop.path_for(run)
        try:
            written = write_stop_signal(path, payload)
        except OSError as exc:  # e.g. a read-only signals volume: say so, retry while idle
            if run not in self._stop_retry:
                self.log("stop_write_failed", run=run, path=str(path), error=f"{type(exc).__name__}: {exc}")
            self._stop_retry.add(run)
            return
        self._stop_retry.discard(run)
        self.ledger.record_stop(run, path, payload)
        event = "stop_written" if written else "stop_file_exists"
        self.log(
            event,
            run=run,
            path=str(path),
            network=payload.get("network"),
            value=payload.get("value"),
            threshold=payload.get("threshold"),
            checkpoint=payload.get("checkpoint"),
        )

    def _warn_stale_stop_file(self, run: str) -> None:
        """At start: a stop file already there stops a training job reading it at once (a
        signal left from an earlier run, or written by hand). Say so; never touch it."""
        assert self.ledger is not None
        path = self.config.stop.path_for(run)
        if not self.config.stop.enabled or not os.path.lexists(path):
            return
        if self.ledger.stop_recorded(run):
            detail = ("written by this daemon earlier; training reading it stops, and the rule stays "
                      "quiet for this run until `alphawatch signal clear --config` re-arms it")
        else:
            detail = ("not written by this daemon; training reading it stops at once. Remove it "
                      "with `alphawatch signal clear` if it is stale")
        self.log("stop_file_present", run=run, path=str(path), detail=detail)


def _alphas(result: dict[str, Any]) -> dict[str, float | None]:
    """{network: alpha} for the log line."""
    nets = result.get("networks") or {}
    return {name: (net.get("summary") or {}).get("alpha") for name, net in nets.items()}


def run_daemon(config: Config) -> int:
    """Configure logging, build the daemon and block until a signal; exit status 0."""
    from alphawatch.service.logging import configure_logging

    configure_logging(config.logging)
    daemon = Daemon(config)
    started = time.monotonic()
    daemon.log("daemon_starting", runs=[r.name for r in config.runs], pid=os.getpid())
    code = daemon.run()
    daemon.log("daemon_stopped", uptime_seconds=round(time.monotonic() - started, 1))
    return code
