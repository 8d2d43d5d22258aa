"""The same configuration schema declared with pydantic v2, for bench/config_import.py only.

Not used by alphawatch. A faithful declaration of every key, bound and choice of
alphawatch.config (frozen models, unknown keys forbidden) so the import and memory cost
measured is what the daemon would pay. Environment variables would need a further
package (pydantic-settings), not counted here: the figure is a lower bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

IGNORE = ("*.tmp", "*.part", "*.partial", "tmp-checkpoint-*", ".*", "*~", "*.swp")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Run(_Section):
    watch: Path
    name: str | None = None
    recursive: bool = False


class Watch(_Section):
    observer: Literal["auto", "inotify", "polling"] = "auto"
    polling_interval_seconds: float = Field(2.0, gt=0)
    quiet_period_seconds: float = Field(2.0, ge=0)
    rescan_interval_seconds: float = Field(60.0, ge=0)
    backlog: Literal["all", "latest"] = "all"
    ignore: tuple[str, ...] = IGNORE


class State(_Section):
    path: Path = Path("alphawatch-state/ledger.sqlite3")
    max_attempts: int = Field(3, ge=1)


class Worker(_Section):
    memory_limit_mb: int = Field(4096, ge=64)
    timeout_seconds: float = Field(600.0, gt=0)
    threads: int = Field(1, ge=1)
    nice: int = Field(10, ge=0, le=19)


class DeadNeurons(_Section):
    method: Literal["activation", "weight"] = "activation"
    samples: int = Field(1000, ge=2)
    variance_threshold: float = Field(1e-6, ge=0)
    weight_threshold: float = Field(1e-3, ge=0)
    activation: Literal["relu", "leaky_relu", "tanh", "gelu", "elu", "silu", "sigmoid"] = "relu"
    input_distribution: Literal["normal", "uniform"] = "normal"
    model_factory: str | None = None


class Analysis(_Section):
    networks: tuple[str, ...] = ()
    network_patterns: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    seed: int = Field(0, ge=0)
    dead_neurons: DeadNeurons = DeadNeurons()


class Metrics(_Section):
    host: str = "0.0.0.0"
    port: int = Field(9841, ge=0, le=65535)
    per_layer: bool = False
    per_layer_limit: int = Field(500, ge=1)


class Stop(_Section):
    enabled: bool = True
    file: str = "signals/alphawatch-stop.json"
    networks: tuple[str, ...] = ()
    threshold: float = Field(2.0, gt=0)
    patience: int = Field(1, ge=1)
    min_checkpoints: int = Field(1, ge=1)


class Logging(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"


class Config(_Section):
    runs: tuple[Run, ...] = (Run(watch=Path("checkpoints"), name="checkpoints"),)
    watch: Watch = Watch()
    state: State = State()
    worker: Worker = Worker()
    analysis: Analysis = Analysis()
    metrics: Metrics = Metrics()
    stop: Stop = Stop()
    logging: Logging = Logging()


def load(path: Path) -> Any:
    return Config.model_validate(yaml.safe_load(path.read_text()) or {})
