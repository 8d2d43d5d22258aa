"""Prometheus metrics, built from the ledger at scrape time.

    collector = LedgerCollector(ledger, runs=["sac"], per_layer=False, per_layer_limit=500)
    registry = CollectorRegistry(); registry.register(collector)

Why a custom collector (like prometheus_client's own ProcessCollector) instead of
gauges the daemon sets: the ledger is the single source of truth, so every value is
right after a restart (nothing to replay), can never drift from what is stored, and
a checkpoint analyzed by an earlier process shows up on the first scrape.

Every name is listed in `METRICS` (name, type, labels, help) and documented in
docs/metrics.md. Null values (an alpha no layer could be fitted for) are omitted,
never exported as NaN. Like node_exporter, the collector reports on itself:
`alphawatch_scrape_collector_success{collector="ledger"}` is 0 (and the ledger-derived
families are absent) when reading the ledger failed, so a broken ledger shows up on a
dashboard without reading logs; `..._duration_seconds` says how long the read took.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from alphawatch import __version__
from alphawatch.analysis.health import HEALTH_STATES
from alphawatch.analysis.roles import network_role
from alphawatch.config import Config
from alphawatch.errors import REASONS
from alphawatch.results import NetworkResult
from alphawatch.service.ledger import Ledger
from alphawatch.service.ledger_totals import DURATION_BUCKETS

log = logging.getLogger(__name__)


RN = ("run", "network")
# name -> (type, labels, help). Summary gauges read NetworkResult["summary"][key].
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "alphawatch_alpha": ("gauge", RN, "Mean power-law alpha over the network's fitted layers, newest "
                         "analyzed checkpoint. < 2 over-fit, 2-6 well trained, > 6 under-trained."),
    "alphawatch_alpha_min": ("gauge", RN, "Smallest layer alpha of the network, newest analyzed checkpoint."),
    "alphawatch_alpha_max": ("gauge", RN, "Largest layer alpha of the network, newest analyzed checkpoint."),
    "alphawatch_stable_rank_mean": ("gauge", RN, "Mean stable rank (sum of squared singular values "
                                    "over the largest squared one) of the network's layers."),
    "alphawatch_log_spectral_norm_mean": ("gauge", RN, "Mean log10 of the squared largest singular "
                                          "value of the network's layers."),
    "alphawatch_layers_analyzed": ("gauge", RN, "Layers of the network whose power-law fit succeeded."),
    "alphawatch_layers_trusted": ("gauge", RN, "Fitted layers whose alpha is well estimated (at least 10 "
                                  "tail eigenvalues, KS distance D <= 0.075); 1 means the network's alpha "
                                  "rests on one layer."),
    "alphawatch_alpha_min_trusted": ("gauge", RN, "Lowest alpha among the network's trusted layers, newest "
                                     "analyzed checkpoint (absent when no layer is trusted)."),
    "alphawatch_dead_neurons": ("gauge", RN, "Dead units found in the network (see alphawatch_neurons)."),
    "alphawatch_neurons": ("gauge", RN, "Units checked for the dead-neuron count."),
    "alphawatch_dead_neuron_ratio": ("gauge", RN, "Dead units over units checked (0-1)."),
    "alphawatch_network_info": ("gauge", (*RN, "role"), "Always 1; the network's role (model, policy, "
                                "critic, target, value), read from its name, to join on: `... and on(run, "
                                "network) alphawatch_network_info{role=\"model\"}`."),
    "alphawatch_health": ("gauge", (*RN, "status"), "1 for the network's current alpha verdict, 0 for "
                          "the other verdicts (overfit, optimal, good, undertrained, ...)."),
    "alphawatch_checkpoint_step": ("gauge", ("run",), "Training step of the newest analyzed checkpoint."),
    "alphawatch_last_analysis_timestamp_seconds": ("gauge", ("run",), "Unix time the run's most recent "
                                                   "successful analysis finished."),
    "alphawatch_checkpoints": ("gauge", ("run", "status"), "Checkpoints in the ledger by status "
                               "(pending, analyzing, done, failed, skipped)."),
    "alphawatch_checkpoint_failures": ("counter", ("run", "reason"), "Failed analysis attempts by reason "
                                       "(retried attempts count each time)."),
    "alphawatch_analysis_duration_seconds": ("histogram", ("run",), "Wall-clock time of each finished "
                                             "analysis attempt (done or failed)."),
    "alphawatch_stop_signal": ("gauge", ("run",), "1 once the daemon has written the run's "
                               "stop-signal file, else 0."),
    "alphawatch_stop_signal_unwritten": ("gauge", ("run",), "1 while the run's stop rule has fired but "
                                         "its stop file cannot be written (it is retried), else 0."),
    "alphawatch_layer_alpha": ("gauge", (*RN, "layer"), "Alpha of one layer, newest analyzed checkpoint "
                               "(only with metrics.per_layer; capped at metrics.per_layer_limit series)."),
    "alphawatch_build_info": ("gauge", ("version",), "Always 1; the alphawatch version as a label."),
    "alphawatch_scrape_collector_success": ("gauge", ("collector",), "1 if the collector read its source "
                                            "without error during this scrape, else 0."),
    "alphawatch_scrape_collector_duration_seconds": ("gauge", ("collector",), "Time the collector took "
                                                     "during this scrape."),
}
# Summary gauge -> key in NetworkResult["summary"]
_SummaryKey = Literal["alpha", "alpha_min", "alpha_max", "stable_rank_mean", "log_spectral_norm_mean",
                      "layers_analyzed", "layers_trusted", "alpha_min_trusted"]
_SUMMARY_GAUGES: dict[str, _SummaryKey] = {
    "alphawatch_alpha": "alpha",
    "alphawatch_alpha_min": "alpha_min",
    "alphawatch_alpha_max": "alpha_max",
    "alphawatch_stable_rank_mean": "stable_rank_mean",
    "alphawatch_log_spectral_norm_mean": "log_spectral_norm_mean",
    "alphawatch_layers_analyzed": "layers_analyzed",
    "alphawatch_layers_trusted": "layers_trusted",
    "alphawatch_alpha_min_trusted": "alpha_min_trusted",
}
_DEAD_GAUGES: dict[str, Literal["count", "total", "ratio"]] = {
    "alphawatch_dead_neurons": "count",
    "alphawatch_neurons": "total",
    "alphawatch_dead_neuron_ratio": "ratio",
}


def _family(name: str) -> Any:
    """An empty family of the right type (Any: the families' add_metric signatures differ)."""
    kind, labels, doc = METRICS[name]
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=labels)
    if kind == "histogram":
        return HistogramMetricFamily(name, doc, labels=labels)
    return GaugeMetricFamily(name, doc, labels=labels)


def _number(value: Any) -> float | None:
    """A finite number, or None (nulls and non-numbers are omitted, never NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def histogram_buckets(values: Sequence[float], bounds: Sequence[float] = DURATION_BUCKETS,
                      ) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs ending with +Inf, as the exposition format wants."""
    ordered = sorted(values)
    out, i = [], 0
    for bound in bounds:
        while i < len(ordered) and ordered[i] <= bound:
            i += 1
        out.append((floatToGoString(bound), float(i)))
    out.append(("+Inf", float(len(ordered))))
    return out


def cumulative_buckets(counts: Sequence[int], bounds: Sequence[float] = DURATION_BUCKETS,
                       ) -> list[tuple[str, float]]:
    """Per-bucket counts (one per bound, then +Inf) as the cumulative (le, count) pairs the
    exposition format wants."""
    out, running = [], 0
    for bound, count in zip((*map(floatToGoString, bounds), "+Inf"), counts, strict=True):
        running += count
        out.append((bound, float(running)))
    return out


def build_registry(ledger: Ledger, config: Config,
                   unwritten: Callable[[], Collection[str]] = tuple) -> Exposition:
    """What the daemon serves: every alphawatch_* family, plus the standard `process_*` (CPU,
    memory, open descriptors, start time) and `python_info` families, which every Prometheus
    user expects to find on a scrape target. `unwritten()`: the runs whose due stop file could
    not be written (the daemon's StopKeeper knows)."""
    collector = LedgerCollector(ledger, runs=[run.name for run in config.runs],
                                per_layer=config.metrics.per_layer,
                                per_layer_limit=config.metrics.per_layer_limit, unwritten=unwritten)
    live = CollectorRegistry()
    ProcessCollector(registry=live)
    PlatformCollector(registry=live)
    return Exposition(collector, live)


class Exposition:
    """The /metrics body: the ledger's families rendered once per ledger version, then the
    process's own families rendered at every scrape.

    Why: with per-layer series on (10 runs x 5 networks x 100 layers), encoding the thousands
    of ledger samples as text is most of a scrape's cost, yet they change only when a
    checkpoint is recorded or analyzed (a few times a minute at most, against a scrape every
    15 s). The process's CPU and memory change every time, so they are never cached.
    `collect()` yields both parts, so `prometheus_client.generate_latest(exposition)` works too.
    """

    _EOF = b"# EOF\n"  # OpenMetrics ends with it: kept once, at the very end

    def __init__(self, collector: LedgerCollector, live: CollectorRegistry) -> None:
        self.collector = collector
        self.ledger = CollectorRegistry()
        self.ledger.register(collector)
        self.live = live
        self._rendered: tuple[object, bytes] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        yield from self.ledger.collect()
        yield from self.live.collect()

    def render(self, accept: str) -> tuple[bytes, str]:
        """(body, content type) for a scrape that sent this Accept header."""
        encoder, content_type = choose_encoder(accept)
        key = (self.collector.key(), content_type)
        with self._lock:
            if self._rendered is None or self._rendered[0] != key:
                body = encoder(self.ledger)
                self._rendered = (key, body[: -len(self._EOF)] if body.endswith(self._EOF) else body)
            cached = self._rendered[1]
        return cached + encoder(self.live), content_type


class LedgerCollector(Collector):
    """Builds every alphawatch_* family from the ledger on each `collect()`.

    `runs`: the configured run names, so a run with no checkpoint yet still exports
    its zero counts. Only these runs are exported: a run removed from (or renamed in)
    the config keeps its ledger rows, but its frozen gauges would otherwise be scraped
    forever and keep e.g. AlphawatchNoNewCheckpoints firing. Without `runs`, every run
    in the ledger is exported.
    """

    def __init__(self, ledger: Ledger, runs: Iterable[str] = (), *, per_layer: bool = False,
                 per_layer_limit: int = 500, version: str = __version__,
                 unwritten: Callable[[], Collection[str]] = tuple) -> None:
        self.ledger = ledger
        self.unwritten = unwritten
        # (ledger version, unwritten runs) -> the families built for it: the ledger changes a
        # few times a minute at most, Prometheus scrapes every 15 s, and building the families
        # (parsing each run's newest result, thousands of per-layer samples) is the scrape's
        # main cost after the text encoding.
        self._cache: tuple[object, list[Metric]] | None = None
        self.runs = tuple(runs)
        self.per_layer = per_layer
        self.per_layer_limit = per_layer_limit
        self.version = version

    def describe(self) -> Iterator[Metric]:
        """The names, without reading the ledger (the registry checks duplicates with this)."""
        for name in METRICS:
            yield _family(name)

    def key(self) -> object:
        """Equal between two calls exactly when the families would be the same."""
        try:
            return (self.ledger.version(), frozenset(self.unwritten()))
        except Exception:  # the ledger cannot be read: never reuse anything
            return object()

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        try:
            key = self.key()
            if self._cache is None or self._cache[0] != key:
                self._cache = (key, self._ledger_families())
            families = self._cache[1]
            success = 1.0
        except Exception as exc:  # a scrape must answer; the failure is itself a metric
            log.warning("metrics: reading the ledger failed: %s: %s", type(exc).__name__, exc)
            families, success = [], 0.0
        yield from families
        info = _family("alphawatch_build_info")
        info.add_metric([self.version], 1.0)
        yield info
        ok = _family("alphawatch_scrape_collector_success")
        ok.add_metric(["ledger"], success)
        yield ok
        took = _family("alphawatch_scrape_collector_duration_seconds")
        took.add_metric(["ledger"], time.perf_counter() - start)
        yield took

    def _ledger_families(self) -> list[Metric]:
        fam: dict[str, Any] = {name: _family(name) for name in METRICS
               if not name.startswith(("alphawatch_build", "alphawatch_scrape"))}
        layer_series = 0
        for run in sorted(set(self.runs) or set(self.ledger.runs())):
            self._run_families(fam, run)
            latest = self.ledger.latest_done(run)
            if latest is None or latest.result is None:
                continue
            step = _number(latest.step if latest.step is not None else latest.result["step"])
            if step is not None:
                fam["alphawatch_checkpoint_step"].add_metric([run], step)
            for network, result in sorted(latest.result["networks"].items()):
                self._network_families(fam, run, network, result)
                role = network_role(network, latest.result["format"])
                fam["alphawatch_network_info"].add_metric([run, network, role], 1.0)
                if self.per_layer:
                    layer_series = self._layer_families(fam, run, network, result, layer_series)
        if not self.per_layer:
            del fam["alphawatch_layer_alpha"]
        return list(fam.values())

    def _run_families(self, fam: dict[str, Any], run: str) -> None:
        for status, count in self.ledger.status_counts(run).items():
            fam["alphawatch_checkpoints"].add_metric([run, status], float(count))
        failures = {**dict.fromkeys(REASONS, 0), **self.ledger.failure_counts(run)}
        for reason, count in sorted(failures.items()):
            fam["alphawatch_checkpoint_failures"].add_metric([run, reason], float(count))
        counts, total = self.ledger.duration_histogram(run)
        fam["alphawatch_analysis_duration_seconds"].add_metric([run], cumulative_buckets(counts), total)
        fam["alphawatch_stop_signal"].add_metric([run], 1.0 if self.ledger.stop_recorded(run) else 0.0)
        fam["alphawatch_stop_signal_unwritten"].add_metric([run], 1.0 if run in self.unwritten() else 0.0)
        finished = self.ledger.last_finished_at(run)
        if finished is not None:
            fam["alphawatch_last_analysis_timestamp_seconds"].add_metric([run], finished)

    @staticmethod
    def _network_families(fam: dict[str, Any], run: str, network: str, result: NetworkResult) -> None:
        summary = result["summary"]
        for name, key in _SUMMARY_GAUGES.items():
            value = _number(summary.get(key))  # .get: results stored by an older version lack newer keys
            if value is not None:
                fam[name].add_metric([run, network], value)
        dead = summary["dead_neurons"]
        for name, dead_key in _DEAD_GAUGES.items():
            value = _number(dead[dead_key])
            if value is not None:
                fam[name].add_metric([run, network], value)
        verdict = summary["health"] if summary["health"] in HEALTH_STATES else "unknown"
        for state in HEALTH_STATES:
            fam["alphawatch_health"].add_metric([run, network, state], 1.0 if state == verdict else 0.0)

    def _layer_families(self, fam: dict[str, Any], run: str, network: str, result: NetworkResult,
                        used: int) -> int:
        for layer in result["layers"]:
            if used >= self.per_layer_limit:
                break
            value = _number(layer["alpha"])
            if value is not None:
                fam["alphawatch_layer_alpha"].add_metric([run, network, layer["name"]], value)
                used += 1
        return used


__all__ = ["DURATION_BUCKETS", "METRICS", "Exposition", "LedgerCollector", "build_registry",
           "cumulative_buckets", "histogram_buckets"]
