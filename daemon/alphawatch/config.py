"""YAML configuration -> frozen dataclasses.

Contract (see docs/CONTRACTS.md and docs/configuration.md):

    load_config(path: Path | None,
                overrides: Mapping[str, object] | None = None,
                env: Mapping[str, str] | None = None) -> Config

Precedence, lowest first: built-in defaults < YAML file < environment (`ENV_VARS`,
e.g. ALPHAWATCH_STOP_THRESHOLD) < `overrides` (what the CLI flags give, as dotted
keys such as ``{"stop.threshold": 1.5, "watch.observer": "polling"}``; a value of
None means "flag not given"). The special keys ``runs.watch`` / ``runs.name`` /
``runs.recursive`` replace the run list with a single run (``runs.name`` alone
renames the only configured run).

Why so strict: a typo in a daemon's config otherwise shows up hours later as a
silently ignored setting. Every problem is a `ConfigError` whose message starts
with the key path (``stop.threshold: must be a number > 0, got 'abc'``) and says
what is allowed. Unknown keys are errors. Relative paths are relative to the
working directory the daemon is started from (not to the config file), so the
shipped default works with ``make run`` from the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alphawatch.analysis.options import AnalysisOptions
from alphawatch.config_schema import (
    ANALYSIS_FIELDS,
    CONFIG_ENV_VAR,
    ENV_VARS,
    RUN_KEYS,
    SCHEMA,
    SECTIONS,
    Invalid,
    got,
)
from alphawatch.errors import ConfigError

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
    rescan_interval_seconds: float = 60.0  # 0 disables the periodic rescan
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
    port: int = DEFAULT_METRICS_PORT  # 0: an ephemeral port (tests)
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
    source: Path | None = None  # the YAML file it came from, if any




def _allowed(keys: object) -> str:
    return ", ".join(sorted(keys))  # type: ignore[call-overload]


def _flatten(section: str, raw: object, where: str) -> dict[str, object]:
    """YAML mapping of one section -> {dotted key: raw value}, rejecting unknown keys."""
    schema = SCHEMA[section]
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}{section}: must be a mapping of keys, {got(raw)}")

    def walk(prefix: str, mapping: Mapping[Any, Any]) -> dict[str, object]:
        level = {k[len(prefix):].split(".")[0] for k in schema if k.startswith(prefix)}
        out: dict[str, object] = {}
        for key, value in mapping.items():
            dotted = f"{prefix}{key}"
            if not isinstance(key, str) or key not in level:
                raise ConfigError(
                    f"{where}{section}.{dotted}: unknown key; allowed keys: {_allowed(level)}")
            if dotted in schema:
                out[dotted] = value
            elif isinstance(value, Mapping):
                out.update(walk(f"{dotted}.", value))
            elif value is not None:
                raise ConfigError(f"{where}{section}.{dotted}: must be a mapping of keys, {got(value)}")
        return out

    return walk("", raw)


def _parse(dotted: str, value: object, from_text: bool, where: str) -> object:
    section, key = dotted.split(".", 1)
    try:
        return SCHEMA[section][key](value, from_text)
    except Invalid as exc:
        raise ConfigError(f"{where}{dotted}: {exc}") from None


def _default_name(watch: Path) -> str:
    return watch.name or Path(os.path.abspath(watch)).name or "root"


def _parse_runs(raw: object, where: str) -> list[dict[str, object]]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}runs: must be a non-empty list of {{watch, name, recursive}}, {got(raw)}")
    runs: list[dict[str, object]] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):  # shorthand: a bare folder
            item = {"watch": item}
        if not isinstance(item, Mapping):
            raise ConfigError(
                f"{where}runs[{i}]: must be a mapping with watch, name, recursive, {got(item)}")
        run: dict[str, object] = {}
        for key, value in item.items():
            if key not in RUN_KEYS:
                raise ConfigError(f"{where}runs[{i}].{key}: unknown key; allowed keys: {_allowed(RUN_KEYS)}")
            try:
                run[key] = RUN_KEYS[key](value, False)
            except Invalid as exc:
                raise ConfigError(f"{where}runs[{i}].{key}: {exc}") from None
        if "watch" not in run:
            raise ConfigError(f"{where}runs[{i}].watch: required (the checkpoint folder to watch)")
        runs.append(run)
    return runs


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the earlier value would be ignored)",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections ({_allowed(SECTIONS)})")
    return data


def _apply_override(values: dict[str, object], single: dict[str, object], dotted: str, value: object) -> None:
    """One dotted-key override (env or CLI); text values are coerced ("1.5", "true", "a,b")."""
    from_text = isinstance(value, str)
    if dotted.startswith("runs."):
        key = dotted[len("runs."):]
        if key not in RUN_KEYS:
            raise ConfigError(f"{dotted}: unknown key; allowed keys: "
                              f"{_allowed(f'runs.{k}' for k in RUN_KEYS)}")
        try:
            single[key] = RUN_KEYS[key](value, from_text)
        except Invalid as exc:
            raise ConfigError(f"{dotted}: {exc}") from None
        return
    section = dotted.split(".", 1)[0]
    if section not in SCHEMA:
        raise ConfigError(f"{dotted}: unknown section {section!r}; allowed sections: {_allowed(SECTIONS)}")
    if dotted.split(".", 1)[-1] not in SCHEMA[section]:
        raise ConfigError(f"{dotted}: unknown key; allowed keys: {_allowed(SCHEMA[section])}")
    values[dotted] = _parse(dotted, value, from_text, "")


def _merge_single_run(runs: list[dict[str, object]], single: dict[str, object]) -> list[dict[str, object]]:
    """Apply runs.watch / runs.name / runs.recursive from the environment or the CLI."""
    if not single:
        return runs
    if "watch" in single:
        base = runs[0] if len(runs) == 1 else {}
        return [{"recursive": base.get("recursive", False), **single}]
    if len(runs) != 1:
        raise ConfigError("runs.name: can only rename the run when exactly one run is configured "
                          f"({len(runs)} are); give runs.watch (--watch) too")
    return [{**runs[0], **single}]


def _build_runs(raw_runs: list[dict[str, object]], where: str) -> tuple[RunConfig, ...]:
    runs = []
    for run in raw_runs:
        watch = run["watch"]
        assert isinstance(watch, Path)
        name = str(run.get("name") or _default_name(watch))
        runs.append(RunConfig(watch=watch, name=name, recursive=bool(run.get("recursive", False))))
    names = [r.name for r in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"{where}runs: duplicate run name(s) {', '.join(duplicates)}; give each run a unique name")
    return tuple(runs)


def _section(cls: type, values: Mapping[str, object], section: str) -> Any:
    prefix = f"{section}."
    return cls(**{k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)})


def load_config(
    path: Path | None,
    overrides: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read, merge and validate the configuration; raise ConfigError on any problem.

    `path` None: use $ALPHAWATCH_CONFIG if set, else defaults only. `env` None: os.environ.
    """
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV_VAR):
        path = Path(env[CONFIG_ENV_VAR])
    data: Mapping[str, Any] = _read_yaml(path) if path is not None else {}
    where = f"{path}: " if path is not None else ""

    values: dict[str, object] = {}
    for section, raw in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{where}{section}: unknown section; allowed sections: {_allowed(SECTIONS)}")
        if section != "runs":
            for key, value in _flatten(section, raw, where).items():
                values[f"{section}.{key}"] = _parse(f"{section}.{key}", value, False, where)
    raw_runs = _parse_runs(data["runs"], where) if "runs" in data else [
        {"watch": run.watch, "name": run.name, "recursive": run.recursive} for run in Config().runs]

    single: dict[str, object] = {}
    for var, dotted in ENV_VARS.items():
        if env.get(var, "").strip():
            try:
                _apply_override(values, single, dotted, env[var])
            except ConfigError as exc:
                raise ConfigError(f"{exc} (from environment variable {var})") from None
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _apply_override(values, single, dotted, value)
    runs = _build_runs(_merge_single_run(raw_runs, single), where)

    stop = _section(StopConfig, values, "stop")
    workers = _section(WorkerConfig, values, "worker")
    analysis_fields: dict[str, Any] = {
        ANALYSIS_FIELDS[k[len("analysis."):]]: v for k, v in values.items() if k.startswith("analysis.")}
    analysis = AnalysisOptions(
        **analysis_fields,
        alpha_threshold=stop.threshold,
        threads=workers.threads,
    )
    if stop.enabled and len(runs) > 1 and "{run}" not in stop.file:
        raise ConfigError(f"{where}stop.file: must contain {{run}} when several runs are configured "
                          f"({', '.join(r.name for r in runs)}), e.g. 'signals/{{run}}-stop.json', "
                          f"{got(stop.file)}")
    return Config(
        runs=runs,
        watch=_section(WatchConfig, values, "watch"),
        state=_section(StateConfig, values, "state"),
        worker=workers,
        analysis=analysis,
        metrics=_section(MetricsConfig, values, "metrics"),
        stop=stop,
        logging=_section(LoggingConfig, values, "logging"),
        source=path,
    )


def summary(config: Config) -> str:
    """One line describing the effective configuration (for check-config and the start log)."""
    runs = ", ".join(f"{r.name}={r.watch}{' (recursive)' if r.recursive else ''}" for r in config.runs)
    stop = (f"stop when alpha < {config.stop.threshold:g} -> {config.stop.file}" if config.stop.enabled
            else "stop signal disabled")
    return (f"{len(config.runs)} run(s): {runs}; state {config.state.path}; "
            f"metrics {config.metrics.host}:{config.metrics.port}; {stop}")


__all__ = [
    "Config", "ConfigError", "LoggingConfig", "MetricsConfig", "RunConfig", "StateConfig",
    "StopConfig", "WatchConfig", "WorkerConfig", "ENV_VARS", "SCHEMA", "load_config", "summary",
]
