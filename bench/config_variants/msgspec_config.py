"""The same configuration schema declared with msgspec Structs, for bench/config_import.py only.

Not used by alphawatch. Every key, bound and choice of alphawatch.config (frozen
structs, unknown fields forbidden), validated with `msgspec.convert(strict=False)` so
numeric strings are accepted as they are today. msgspec has no environment-variable
support: that layer would still be ours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

IGNORE = ("*.tmp", "*.part", "*.partial", "tmp-checkpoint-*", ".*", "*~", "*.swp")
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class Run(_Section):
    watch: str  # msgspec does not convert str to Path; done after
    name: str | None = None
    recursive: bool = False


class Watch(_Section):
    observer: Literal["auto", "inotify", "polling"] = "auto"
    polling_interval_seconds: Positive = 2.0
    quiet_period_seconds: NonNegative = 2.0
    rescan_interval_seconds: NonNegative = 60.0
    backlog: Literal["all", "latest"] = "all"
    ignore: tuple[str, ...] = IGNORE


class State(_Section):
    path: str = "alphawatch-state/ledger.sqlite3"
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3


class Worker(_Section):
    memory_limit_mb: Annotated[int, msgspec.Meta(ge=64)] = 4096
    timeout_seconds: Positive = 600.0
    threads: Annotated[int, msgspec.Meta(ge=1)] = 1
    nice: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10


class DeadNeurons(_Section):
    method: Literal["activation", "weight"] = "activation"
    samples: Annotated[int, msgspec.Meta(ge=2)] = 1000
    variance_threshold: NonNegative = 1e-6
    weight_threshold: NonNegative = 1e-3
    activation: Literal["relu", "leaky_relu", "tanh", "gelu", "elu", "silu", "sigmoid"] = "relu"
    input_distribution: Literal["normal", "uniform"] = "normal"
    model_factory: str | None = None


class Analysis(_Section):
    networks: tuple[str, ...] = ()
    network_patterns: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    seed: Annotated[int, msgspec.Meta(ge=0)] = 0
    dead_neurons: DeadNeurons = msgspec.field(default_factory=DeadNeurons)


class Metrics(_Section):
    host: str = "0.0.0.0"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9841
    per_layer: bool = False
    per_layer_limit: Annotated[int, msgspec.Meta(ge=1)] = 500


class Stop(_Section):
    enabled: bool = True
    file: str = "signals/alphawatch-stop.json"
    networks: tuple[str, ...] = ()
    threshold: Positive = 2.0
    patience: Annotated[int, msgspec.Meta(ge=1)] = 1
    min_checkpoints: Annotated[int, msgspec.Meta(ge=1)] = 1


class Logging(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"


class Config(_Section):
    runs: tuple[Run, ...] = (Run(watch="checkpoints", name="checkpoints"),)
    watch: Watch = msgspec.field(default_factory=Watch)
    state: State = msgspec.field(default_factory=State)
    worker: Worker = msgspec.field(default_factory=Worker)
    analysis: Analysis = msgspec.field(default_factory=Analysis)
    metrics: Metrics = msgspec.field(default_factory=Metrics)
    stop: Stop = msgspec.field(default_factory=Stop)
    logging: Logging = msgspec.field(default_factory=Logging)


def load(path: Path) -> Any:
    return msgspec.convert(yaml.safe_load(path.read_text()) or {}, Config, strict=False)
