"""YAML configuration -> frozen dataclasses.

Contract (see docs/CONTRACTS.md): `load_config(path, overrides)` returns `Config`;
every error is a `ConfigError` whose message names the key path (e.g.
`stop.threshold`) and says what is allowed. Unknown keys are errors.
Precedence: defaults < YAML file < environment (ALPHAWATCH_*) < CLI flags.

SKELETON: field names and defaults below are the agreed interface; loading and
validation are being implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alphawatch.analysis.options import AnalysisOptions

DEFAULT_METRICS_PORT = 9841
DEFAULT_IGNORE = ("*.tmp", "*.part", "*.partial", "tmp-checkpoint-*", ".*", "*~", "*.swp")


@dataclass(frozen=True)
class RunConfig:
    watch: Path
    name: str  # defaults to the folder name
    recursive: bool = False


@dataclass(frozen=True)
class WatchConfig:
    observer: str = "auto"  # auto | inotify | polling
    polling_interval_seconds: float = 2.0
    quiet_period_seconds: float = 2.0
    rescan_interval_seconds: float = 60.0
    backlog: str = "all"  # all | latest
    ignore: tuple[str, ...] = DEFAULT_IGNORE


@dataclass(frozen=True)
class StateConfig:
    path: Path = Path("alphawatch-state/ledger.sqlite3")
    max_attempts: int = 3


@dataclass(frozen=True)
class WorkerConfig:
    memory_limit_mb: int = 4096
    timeout_seconds: float = 600.0
    threads: int = 1
    nice: int = 10


@dataclass(frozen=True)
class MetricsConfig:
    host: str = "0.0.0.0"
    port: int = DEFAULT_METRICS_PORT
    per_layer: bool = False
    per_layer_limit: int = 500


@dataclass(frozen=True)
class StopConfig:
    enabled: bool = True
    # may contain {run}; required when several runs are configured
    file: str = "signals/alphawatch-stop.json"
    networks: tuple[str, ...] = ()  # empty: every analyzed network
    threshold: float = 2.0
    patience: int = 1
    min_checkpoints: int = 1

    def path_for(self, run: str) -> Path:
        return Path(self.file.replace("{run}", run))


@dataclass(frozen=True)
class LoggingConfig:
    format: str = "auto"  # auto (json unless on a terminal) | json | console
    level: str = "info"


@dataclass(frozen=True)
class Config:
    runs: tuple[RunConfig, ...] = (RunConfig(watch=Path("checkpoints"), name="checkpoints"),)
    watch: WatchConfig = field(default_factory=WatchConfig)
    state: StateConfig = field(default_factory=StateConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
