"""Writes each run's stop file once, when the stop rule fires over the run's analyzed checkpoints.

Why a part of its own: the rule is pure (`stop_rule`), the file format and the atomic write
are `stop_signal`; what remains is the daemon's duty around them — read only the window
the rule needs from the ledger (a run has tens of thousands of checkpoints, and this runs
after each one), write at most once per run, remember it in the ledger so a restart does
not write again, and keep a due-but-unwritten signal visible (`unwritten`: /readyz and the
`alphawatch_stop_signal_unwritten` gauge) while retrying it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from alphawatch.config import Config
from alphawatch.service import stop_rule
from alphawatch.service.ledger import Ledger
from alphawatch.service.stop_signal import write_stop_signal


class StopKeeper:
    """The stop files of every run of one daemon (see the module docstring)."""

    def __init__(self, config: Config, ledger: Ledger, log: Any) -> None:
        self.config, self.ledger, self.log = config, ledger, log
        # run -> why its due stop file could not be written (retried while the daemon is idle)
        self.unwritten: dict[str, str] = {}

    def path(self, run: str) -> Path:
        """The run's stop file, absolute (as every path in the logs and the ledger)."""
        return Path(os.path.abspath(self.config.stop.path_for(run)))

    def check(self, run: str) -> None:
        """Write the run's stop file if the rule fires now and it has not been written yet."""
        stop = self.config.stop
        ledger = self.ledger
        if not stop.enabled or ledger.stop_recorded(run):
            return
        recent = [r.result for r in ledger.distinct_recent(run, stop_rule.window(stop)) if r.result]
        analyzed = ledger.distinct_count(run, at_most=stop_rule.resolve(stop).min_checkpoints)
        signal_ = stop_rule.evaluate(recent, analyzed, stop, run,
                                     lambda: [r.result for r in ledger.distinct(run) if r.result])
        if signal_ is None:
            return
        # the whole count only now that it fired (once per run), not on every evaluation
        total = ledger.distinct_count(run)
        signal_ = replace(signal_, extra={**signal_.extra, "checkpoints_analyzed": total})
        path = self.path(run)
        try:
            written = write_stop_signal(path, signal_)
        except OSError as exc:  # e.g. a read-only signals volume: say so once, retry while idle
            if run not in self.unwritten:
                self.log.error("stop_write_failed", run=run, path=str(path),
                               error=f"{type(exc).__name__}: {exc}")
            self.unwritten[run] = f"{type(exc).__name__}: {exc.strerror or exc}"
            return
        self.unwritten.pop(run, None)
        ledger.record_stop(run, path, signal_.to_json())
        value = None if signal_.value is None else round(signal_.value, 4)
        fields = {"run": run, "path": str(path), "rule": stop.rule, "network": signal_.network,
                  "metric": signal_.metric, "value": value, "threshold": signal_.threshold,
                  "checkpoint": signal_.checkpoint}
        if written:
            self.log.info("stop_written", **fields)
        else:
            self.log.warning("stop_file_exists", **fields)

    def retry(self) -> None:
        """Try the due-but-unwritten stop files again."""
        for run in sorted(self.unwritten):
            self.check(run)

    def warn_stale(self, run: str) -> None:
        """At start: a stop file already there stops a training job reading it at once (a
        signal left from an earlier run, or written by hand). Say so; never touch it."""
        path = self.path(run)
        if not self.config.stop.enabled or not os.path.lexists(path):
            return
        if self.ledger.stop_recorded(run):
            detail = ("written by this daemon earlier; training reading it stops, and the rule stays "
                      "quiet for this run until `alphawatch signal clear --config` re-arms it")
        else:
            detail = ("not written by this daemon; training reading it stops at once. Remove it "
                      "with `alphawatch signal clear` if it is stale")
        self.log.warning("stop_file_present", run=run, path=str(path), detail=detail)
