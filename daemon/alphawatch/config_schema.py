"""What the configuration may contain: one parser per key, the environment variables.

Split from `alphawatch.config` so the "what is allowed" tables read on their own (and
docs/configuration.md can be checked against them). A parser turns a raw value -- from
YAML, or text from the environment / CLI (`from_text`) -- into the typed value, or
raises `Invalid("must be ..., got ...")`; the caller adds the key path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from alphawatch.analysis.options import ACTIVATIONS, DEAD_NEURON_METHODS, INPUT_DISTRIBUTIONS

OBSERVERS = ("auto", "inotify", "polling")
BACKLOG_POLICIES = ("all", "latest")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


# --------------------------------------------------------------------------- value parsers
# A parser turns a raw value (from YAML, or text from the environment / CLI) into the
# typed value, or raises Invalid with "must be ..., got ..." (the key is added later).


class Invalid(Exception):
    """A value that is not allowed; the message says what is ("must be ..., got ...")."""


Parser = Callable[[object, bool], object]  # (value, from_text) -> typed value


def got(value: object) -> str:
    return f"got {value!r}"


def _number(minimum: float, *, strict: bool) -> Parser:
    op = ">" if strict else ">="
    want = f"must be a number {op} {minimum:g}"

    def parse(value: object, from_text: bool) -> float:
        if isinstance(value, bool):
            raise Invalid(f"{want}, {got(value)}")
        try:  # numeric strings are accepted everywhere: PyYAML reads `1e-6` as a string
            number = float(value) if isinstance(value, (int, float, str)) else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < minimum or (strict and number == minimum):
            raise Invalid(f"{want}, {got(value)}")
        return number

    return parse


def _integer(minimum: int, maximum: int | None = None) -> Parser:
    want = f"must be an integer >= {minimum}" if maximum is None else (
        f"must be an integer from {minimum} to {maximum}")

    def parse(value: object, from_text: bool) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Invalid(f"{want}, {got(value)}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{want}, {got(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            raise Invalid(f"{want}, {got(value)}")
        return value

    return parse


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _boolean(value: object, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise Invalid(f"must be true or false, {got(value)}")


def _choice(*options: str) -> Parser:
    def parse(value: object, from_text: bool) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in options:
            raise Invalid(f"must be one of {', '.join(options)}, {got(value)}")
        return str(text)

    return parse


def _text(value: object, from_text: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a non-empty string, {got(value)}")
    return value


def _optional_text(value: object, from_text: bool) -> str | None:
    if value is None or (from_text and isinstance(value, str) and not value.strip()):
        return None
    return _text(value, from_text)


def _path(value: object, from_text: bool) -> Path:
    return Path(os.path.expanduser(_text(value, from_text)))


def _text_list(value: object, from_text: bool) -> tuple[str, ...]:
    if from_text and isinstance(value, str):  # ALPHAWATCH_STOP_NETWORKS=actor,critic_1
        value = [part.strip() for part in value.split(",") if part.strip()]
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(f"must be a list of non-empty strings, {got(value)}")
    return tuple(value)


def _patterns(value: object, from_text: bool) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    want = "must map network names to lists of glob patterns (e.g. actor: ['actor.*'])"
    if not isinstance(value, Mapping):
        raise Invalid(f"{want}, {got(value)}")
    out: dict[str, tuple[str, ...]] = {}
    for name, globs in value.items():
        if isinstance(globs, str):
            globs = [globs]
        if not isinstance(name, str) or not name or not isinstance(globs, list) or not globs or not all(
            isinstance(g, str) and g for g in globs
        ):
            raise Invalid(f"{want}, {got({name: globs})}")
        out[name] = tuple(globs)
    return out


def _stop_file(value: object, from_text: bool) -> str:
    text = _text(value, from_text)
    if "{" in text.replace("{run}", "") or "}" in text.replace("{run}", ""):
        raise Invalid(f"may contain only the placeholder {{run}}, {got(value)}")
    return text


# --------------------------------------------------------------------------- schema
# Section -> dotted key (inside the section) -> parser. Nested YAML mappings
# (analysis.dead_neurons.*) are flattened to dotted keys.

SCHEMA: dict[str, dict[str, Parser]] = {
    "watch": {
        "observer": _choice(*OBSERVERS),
        "polling_interval_seconds": _number(0, strict=True),
        "quiet_period_seconds": _number(0, strict=False),
        "rescan_interval_seconds": _number(0, strict=False),
        "backlog": _choice(*BACKLOG_POLICIES),
        "ignore": _text_list,
    },
    "state": {"path": _path, "max_attempts": _integer(1)},
    "worker": {
        "memory_limit_mb": _integer(64),
        "timeout_seconds": _number(0, strict=True),
        "threads": _integer(1),
        "nice": _integer(0, 19),
    },
    "analysis": {
        "networks": _text_list,
        "network_patterns": _patterns,
        "seed": _integer(0),
        "dead_neurons.method": _choice(*DEAD_NEURON_METHODS),
        "dead_neurons.samples": _integer(2),
        "dead_neurons.variance_threshold": _number(0, strict=False),
        "dead_neurons.weight_threshold": _number(0, strict=False),
        "dead_neurons.activation": _choice(*ACTIVATIONS),
        "dead_neurons.input_distribution": _choice(*INPUT_DISTRIBUTIONS),
        "dead_neurons.model_factory": _optional_text,
    },
    "metrics": {
        "host": _text,
        "port": _integer(0, 65535),
        "per_layer": _boolean,
        "per_layer_limit": _integer(1),
    },
    "stop": {
        "enabled": _boolean,
        "file": _stop_file,
        "networks": _text_list,
        "threshold": _number(0, strict=True),
        "patience": _integer(1),
        "min_checkpoints": _integer(1),
    },
    "logging": {"format": _choice(*LOG_FORMATS), "level": _choice(*LOG_LEVELS)},
}


def _run_name(value: object, from_text: bool) -> str:
    name = _text(value, from_text)
    if "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise Invalid(f"must not contain path separators or be '.'/'..' (it names files), {got(name)}")
    return name


RUN_KEYS: dict[str, Parser] = {"watch": _path, "name": _run_name, "recursive": _boolean}
SECTIONS = ("runs", *SCHEMA)

# analysis.* key -> AnalysisOptions field
ANALYSIS_FIELDS = {
    "networks": "networks",
    "network_patterns": "network_patterns",
    "seed": "seed",
    "dead_neurons.method": "dead_neuron_method",
    "dead_neurons.samples": "dead_neuron_samples",
    "dead_neurons.variance_threshold": "dead_neuron_variance_threshold",
    "dead_neurons.weight_threshold": "dead_neuron_weight_threshold",
    "dead_neurons.activation": "activation",
    "dead_neurons.input_distribution": "input_distribution",
    "dead_neurons.model_factory": "model_factory",
}

# Environment variable -> dotted key. Empty values count as unset.
ENV_VARS: dict[str, str] = {
    "ALPHAWATCH_WATCH": "runs.watch",
    "ALPHAWATCH_RUN": "runs.name",
    "ALPHAWATCH_RECURSIVE": "runs.recursive",
    "ALPHAWATCH_OBSERVER": "watch.observer",
    "ALPHAWATCH_POLLING_INTERVAL": "watch.polling_interval_seconds",
    "ALPHAWATCH_QUIET_PERIOD": "watch.quiet_period_seconds",
    "ALPHAWATCH_BACKLOG": "watch.backlog",
    "ALPHAWATCH_STATE": "state.path",
    "ALPHAWATCH_WORKER_MEMORY_LIMIT_MB": "worker.memory_limit_mb",
    "ALPHAWATCH_WORKER_TIMEOUT": "worker.timeout_seconds",
    "ALPHAWATCH_METRICS_HOST": "metrics.host",
    "ALPHAWATCH_METRICS_PORT": "metrics.port",
    "ALPHAWATCH_STOP_FILE": "stop.file",
    "ALPHAWATCH_STOP_THRESHOLD": "stop.threshold",
    "ALPHAWATCH_STOP_NETWORKS": "stop.networks",
    "ALPHAWATCH_STOP_PATIENCE": "stop.patience",
    "ALPHAWATCH_LOG_FORMAT": "logging.format",
    "ALPHAWATCH_LOG_LEVEL": "logging.level",
}
CONFIG_ENV_VAR = "ALPHAWATCH_CONFIG"  # the file to read when no path is given
