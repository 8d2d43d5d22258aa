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

Each key is declared once, as a field of its section's dataclass below: type, default and
`key(default, doc, env=..., bounds / choices / check)`. Parsing, the key paths in errors,
the environment variables, the dotted overrides and the rows of docs/configuration.md are
derived from that (`alphawatch.config_schema`); tests/test_config.py checks the docs and the
shipped config/alphawatch.yaml against it. Adding a key is one line here (for `analysis:`,
one line in `ANALYSIS_KEYS` beside the new AnalysisOptions field), plus its docs row and
its line in the shipped YAML, which the tests ask for.

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
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from alphawatch.analysis.options import (
    ACTIVATIONS,
    DEAD_NEURON_METHODS,
    INPUT_DISTRIBUTIONS,
    AnalysisOptions,
)
from alphawatch.analysis.roles import ROLES
from alphawatch.config_schema import Invalid, Key, described, env_vars_of, got, key, keys_of
from alphawatch.errors import ConfigError
from alphawatch.service.stop_rule import RULE_NAMES

DEFAULT_METRICS_PORT = 9841
# Python's tempfile.mkstemp / NamedTemporaryFile: "tmp" + 8 of [a-z0-9_], then any suffix given.
PYTHON_TEMPFILE = "tmp" + "[a-z0-9_]" * 8
DEFAULT_IGNORE = ("*.tmp", "*.part", "*.partial", "*.incomplete", "tmp-checkpoint-*", PYTHON_TEMPFILE,
                  f"{PYTHON_TEMPFILE}.*", ".*", "*~", "*.swp")
OBSERVERS = ("auto", "inotify", "polling")
BACKLOG_POLICIES = ("all", "latest")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
STOP_RULES = RULE_NAMES  # alphawatch.service.stop_rule.RULES
CONFIG_ENV_VAR = "ALPHAWATCH_CONFIG"  # the file to read when no path is given


def _plain_name(name: str) -> str | None:
    if "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        return "must not contain path separators or be '.'/'..' (it names files)"
    return None


def _only_run_placeholder(text: str) -> str | None:
    rest = text.replace("{run}", "")
    return "may contain only the placeholder {run}" if "{" in rest or "}" in rest else None


@dataclass(frozen=True)
class RunConfig:
    """One watched checkpoint folder (`runs:` is a list of these)."""

    watch: Path = field(metadata=described(
        "the folder the training job writes checkpoints into; it may not exist yet", env="ALPHAWATCH_WATCH"))
    name: str = field(metadata=described(
        "the `run` label on metrics, the `{run}` in `stop.file`; unique",
        env="ALPHAWATCH_RUN", check=_plain_name, shown="the folder's name"))
    recursive: bool = key(False, "also watch subfolders", env="ALPHAWATCH_RECURSIVE")


@dataclass(frozen=True)
class WatchConfig:
    """How files are noticed and when one counts as a complete checkpoint."""

    observer: str = key("auto", "`auto`: inotify where it works, polling where it cannot (NFS, SMB, FUSE, "
                        "bind mounts written by a VM host)", choices=OBSERVERS, env="ALPHAWATCH_OBSERVER")
    polling_interval_seconds: float = key(
        2.0, "how often the polling observer lists the folder", gt=0, env="ALPHAWATCH_POLLING_INTERVAL")
    quiet_period_seconds: float = key(
        2.0, "a file must stay unchanged this long before it counts as complete", ge=0,
        env="ALPHAWATCH_QUIET_PERIOD")
    rescan_interval_seconds: float = key(
        60.0, "full rescan to catch events inotify dropped; `0` disables", ge=0)
    backlog: str = key(
        "all", "`all`: analyze every checkpoint, lowest step first; `latest`: when several are pending, mark "
        "the older ones of a run `skipped` and analyze only the newest",
        choices=BACKLOG_POLICIES, env="ALPHAWATCH_BACKLOG")
    ignore: tuple[str, ...] = key(
        DEFAULT_IGNORE, "producer temp names that are never analyzed (globs matched against the file name)")


@dataclass(frozen=True)
class StateConfig:
    """The ledger: every checkpoint seen, its status and result."""

    path: Path = key(Path("alphawatch-state/ledger.sqlite3"), "the SQLite ledger (WAL mode); its folder is "
                     "created. Keep it on a local disk", env="ALPHAWATCH_STATE")
    max_attempts: int = key(3, "attempts per checkpoint for transient failures (`timeout`, `out_of_memory`, "
                            "`worker_crashed`, `truncated`, `unreadable`); other failures are final at once",
                            ge=1)


@dataclass(frozen=True)
class WorkerConfig:
    """Limits of the analysis subprocess."""

    memory_limit_mb: int = key(4096, "memory limit of the worker process", ge=64,
                               env="ALPHAWATCH_WORKER_MEMORY_LIMIT_MB")
    timeout_seconds: float = key(
        600.0, "one checkpoint's analysis is abandoned (reason `timeout`) after this",
        gt=0, env="ALPHAWATCH_WORKER_TIMEOUT")
    threads: int = key(1, "CPU threads for the analysis (torch / BLAS); keep it low next to training. Layers "
                          "are spread over them; with `alphawatch analyze` (not the daemon) a layer left to "
                          "run alone uses them all", ge=1)
    nice: int = key(10, "scheduling priority of the worker (19 = lowest)", ge=0, le=19)


@dataclass(frozen=True)
class MetricsConfig:
    """The HTTP server for /metrics, /healthz and /readyz."""

    host: str = key("127.0.0.1", "address `/metrics`, `/healthz`, `/readyz` bind to: this machine only by "
                    "default; `0.0.0.0` (the container image's setting) or `::` to be scraped from elsewhere",
                    env="ALPHAWATCH_METRICS_HOST")
    port: int = key(DEFAULT_METRICS_PORT, "`0` = any free port", ge=0, le=65535,
                    env="ALPHAWATCH_METRICS_PORT")
    per_layer: bool = key(False, "also export `alphawatch_layer_alpha{run,network,layer}` (one series per "
                          "layer: mind the cardinality)")
    per_layer_limit: int = key(500, "at most this many per-layer series in total", ge=1)


def _known_roles(roles: tuple[str, ...] | None) -> str | None:
    unknown = sorted(set(roles or ()) - set(ROLES))
    return f"must be roles among {', '.join(ROLES)}; unknown: {', '.join(unknown)}" if unknown else None


@dataclass(frozen=True)
class StopConfig:
    """When and where the stop signal is written (the rules: alphawatch.service.stop_rule)."""

    enabled: bool = key(True, "write a stop-signal file when the rule fires")
    file: str = key("signals/alphawatch-stop.json", "where; `{run}` is replaced by the run name (required "
                    "with several runs)", check=_only_run_placeholder, env="ALPHAWATCH_STOP_FILE")
    rule: str = key("share_below", "`share_below`: at least `share` of a network's fitted layers have "
                    "alpha below `threshold` (the default, chosen by the study in bench/stop_signal); "
                    "`guide`: "
                    "the network's mean alpha below `threshold`, any network, patience 1 (WeightWatcher's "
                    "guide: stops healthy RL runs); `trusted_min`: the lowest well-fitted layer's alpha "
                    "below `threshold` (catches more over-fitting, also stops some healthy runs early)",
                    choices=STOP_RULES, env="ALPHAWATCH_STOP_RULE")
    roles: tuple[str, ...] | None = key(None, "network roles that may halt training (`model`, `policy`, "
                                        "`critic`, `target`, `value`; read from network names); `null` = "
                                        "the rule's own: `[model]`, or every role for `guide`. Critics "
                                        "and targets fall below 2 in healthy RL runs",
                                        check=_known_roles, env="ALPHAWATCH_STOP_ROLES")
    networks: tuple[str, ...] = key((), "networks the rule looks at by name, instead of by role; `[]` = "
                                    "by `roles`. It fires when **any** of them meets the rule",
                                    env="ALPHAWATCH_STOP_NETWORKS")
    threshold: float = key(2.0, "alpha strictly below this counts as over-fitted", gt=0,
                           env="ALPHAWATCH_STOP_THRESHOLD")
    share: float = key(0.5, "`share_below`: the share of a network's fitted layers that must be below "
                       "`threshold`", gt=0, le=1)
    patience: int | None = key(None, "consecutive distinct analyzed checkpoints meeting the rule needed; "
                               "`null` = the rule's own (2; 1 for `guide`)", ge=1,
                               env="ALPHAWATCH_STOP_PATIENCE")
    min_checkpoints: int | None = key(None, "distinct analyzed checkpoints of the run needed before any "
                                      "stop; `null` = the rule's own (2; 1 for `guide`)", ge=1)

    def path_for(self, run: str) -> Path:
        return Path(self.file.replace("{run}", run))


@dataclass(frozen=True)
class LoggingConfig:
    """How log lines look."""

    format: str = key("auto", "`auto`: JSON lines when stderr is not a terminal, readable console lines "
                      "on one", choices=LOG_FORMATS, env="ALPHAWATCH_LOG_FORMAT")
    level: str = key("info", "the least severe level that is logged", choices=LOG_LEVELS,
                     env="ALPHAWATCH_LOG_LEVEL")


def _device_problem(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return None
    return f"must be auto, cpu, cuda or cuda:N, got {value!r}"


# The `analysis:` section fills AnalysisOptions (owned by alphawatch.analysis.options, which
# holds the types and defaults): AnalysisOptions field -> its key. `alpha_threshold` comes
# from stop.threshold and `threads` from worker.threads.
ANALYSIS_KEYS = {
    "networks": described("analyze only these networks; `[]` = every network in the checkpoint"),
    "network_patterns": described(
        "override the automatic grouping of tensors into networks, e.g. `{actor: [\"policy.actor.*\"]}` "
        "(globs over full dotted keys)"),
    "seed": described("seed of the random probe inputs", ge=0),
    "dead_neuron_method": described("probe with random inputs, or judge incoming-weight norms",
                                    name="dead_neurons.method", choices=DEAD_NEURON_METHODS),
    "dead_neuron_samples": described("number of random probe inputs (a variance needs two)",
                                     name="dead_neurons.samples", ge=2),
    "dead_neuron_variance_threshold": described(
        "activation method: a unit is dead when its output variance is below this",
        name="dead_neurons.variance_threshold", ge=0),
    "dead_neuron_weight_threshold": described(
        "weight method: a unit is dead when its incoming-weight L2 norm is below this",
        name="dead_neurons.weight_threshold", ge=0),
    "activation": described("activation applied between layers when probing",
                            name="dead_neurons.activation", choices=ACTIVATIONS),
    "input_distribution": described("distribution of the probe inputs",
                                    name="dead_neurons.input_distribution", choices=INPUT_DISTRIBUTIONS),
    "model_factory": described(
        "`\"module:function\"` returning the `nn.Module` for a network name, so the real architecture "
        "is probed", name="dead_neurons.model_factory"),
    "device": described("where eigenvalues are computed: `auto` (a CUDA GPU when torch sees one, else "
                        "the CPU), `cpu`, `cuda` or `cuda:N`; a GPU is never required",
                        check=_device_problem, env="ALPHAWATCH_ANALYSIS_DEVICE"),
}

_DEFAULT_RUN = RunConfig(watch=Path("checkpoints"), name="checkpoints")


@dataclass(frozen=True)
class Config:
    """The whole configuration; `load_config` builds it."""

    runs: tuple[RunConfig, ...] = (_DEFAULT_RUN,)
    watch: WatchConfig = field(default_factory=WatchConfig)
    state: StateConfig = field(default_factory=StateConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    analysis: AnalysisOptions = field(default_factory=AnalysisOptions)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: Path | None = None  # the YAML file it came from, if any


# ---------------------------------------------------------------- derived from the declaration

RUN_KEYS: dict[str, Key] = keys_of("runs", RunConfig, defaults=_DEFAULT_RUN)
# section -> key inside it -> Key; a section is a field of Config holding a dataclass
SCHEMA: dict[str, dict[str, Key]] = {
    name: keys_of(name, section, ANALYSIS_KEYS if section is AnalysisOptions else None)
    for name, section in get_type_hints(Config).items() if isinstance(section, type) and is_dataclass(section)
}
SECTIONS = ("runs", *SCHEMA)
# environment variable -> dotted key; empty values count as unset
ENV_VARS: dict[str, str] = env_vars_of(RUN_KEYS, *SCHEMA.values())


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
        for name, value in mapping.items():
            dotted = f"{prefix}{name}"
            if not isinstance(name, str) or name not in level:
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
    section, key_name = dotted.split(".", 1)
    try:
        return SCHEMA[section][key_name].parse(value, from_text)
    except Invalid as exc:
        raise ConfigError(f"{where}{dotted}: {exc}") from None


def _default_name(watch: Path) -> str:
    return watch.name or Path(os.path.abspath(watch)).name or "root"


def _parse_runs(raw: object, where: str) -> list[dict[str, object]]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}runs: must be a non-empty list of {{{', '.join(RUN_KEYS)}}}, {got(raw)}")
    runs: list[dict[str, object]] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):  # shorthand: a bare folder
            item = {"watch": item}
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}runs[{i}]: must be a mapping with {', '.join(RUN_KEYS)}, {got(item)}")
        run: dict[str, object] = {}
        for name, value in item.items():
            if name not in RUN_KEYS:
                raise ConfigError(f"{where}runs[{i}].{name}: unknown key; allowed keys: {_allowed(RUN_KEYS)}")
            try:
                run[name] = RUN_KEYS[name].parse(value, False)
            except Invalid as exc:
                raise ConfigError(f"{where}runs[{i}].{name}: {exc}") from None
        if "watch" not in run:
            raise ConfigError(f"{where}runs[{i}].watch: required (the checkpoint folder to watch)")
        runs.append(run)
    return runs


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            name = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(name, str) and name in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {name!r} (the earlier value would be ignored)",
                    key_node.start_mark)
            seen.add(name)
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
        name = dotted[len("runs."):]
        if name not in RUN_KEYS:
            raise ConfigError(f"{dotted}: unknown key; allowed keys: "
                              f"{_allowed(f'runs.{k}' for k in RUN_KEYS)}")
        try:
            single[name] = RUN_KEYS[name].parse(value, from_text)
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


def _fields(values: Mapping[str, object], section: str) -> dict[str, Any]:
    """The section's given values, as keyword arguments of its dataclass."""
    keys = SCHEMA[section]
    prefix = f"{section}."
    return {keys[k[len(prefix):]].field: v for k, v in values.items() if k.startswith(prefix)}


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
            for name, value in _flatten(section, raw, where).items():
                values[f"{section}.{name}"] = _parse(f"{section}.{name}", value, False, where)
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

    stop = StopConfig(**_fields(values, "stop"))
    workers = WorkerConfig(**_fields(values, "worker"))
    analysis = AnalysisOptions(
        **_fields(values, "analysis"),
        alpha_threshold=stop.threshold,
        threads=workers.threads,
    )
    if stop.enabled and len(runs) > 1 and "{run}" not in stop.file:
        raise ConfigError(f"{where}stop.file: must contain {{run}} when several runs are configured "
                          f"({', '.join(r.name for r in runs)}), e.g. 'signals/{{run}}-stop.json', "
                          f"{got(stop.file)}")
    return Config(
        runs=runs,
        watch=WatchConfig(**_fields(values, "watch")),
        state=StateConfig(**_fields(values, "state")),
        worker=workers,
        analysis=analysis,
        metrics=MetricsConfig(**_fields(values, "metrics")),
        stop=stop,
        logging=LoggingConfig(**_fields(values, "logging")),
        source=path,
    )


def summary(config: Config) -> str:
    """One line describing the effective configuration (for check-config and the start log)."""
    runs = ", ".join(f"{r.name}={r.watch}{' (recursive)' if r.recursive else ''}" for r in config.runs)
    stop = (f"stop rule {config.stop.rule} (alpha < {config.stop.threshold:g}) -> {config.stop.file}"
            if config.stop.enabled else "stop signal disabled")
    return (f"{len(config.runs)} run(s): {runs}; state {config.state.path}; "
            f"metrics {config.metrics.host}:{config.metrics.port}; {stop}")


__all__ = [
    "Config", "ConfigError", "LoggingConfig", "MetricsConfig", "RunConfig", "StateConfig",
    "StopConfig", "WatchConfig", "WorkerConfig", "ENV_VARS", "SCHEMA", "load_config", "summary",
]
