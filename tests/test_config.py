"""Config loading: precedence, validation messages, the shipped files, check-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alphawatch.commands import check_config
from alphawatch.config import CONFIG_ENV_VAR, ENV_VARS, RUN_KEYS, SCHEMA, Config, RunConfig, load_config
from alphawatch.config_schema import Key, key, keys_of
from alphawatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "config" / "alphawatch.yaml", *sorted((ROOT / "config" / "examples").glob("*.yaml"))]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alphawatch.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, **kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={}, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_no_file_gives_the_dataclass_defaults() -> None:
    config = load_config(None, env={})
    assert config == Config()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    load_config(path, env={})


def test_shipped_default_lists_every_key_with_its_default() -> None:
    data = yaml.safe_load((ROOT / "config" / "alphawatch.yaml").read_text())
    declared = {f"{s}.{k}" for s, keys in SCHEMA.items() for k in keys}

    def listed(prefix: str, mapping: dict[str, object]) -> set[str]:
        found = set()
        for name, value in mapping.items():
            path = f"{prefix}{name}"
            nested = isinstance(value, dict) and path not in declared  # analysis.dead_neurons
            found |= listed(f"{path}.", value) if nested else {path}  # type: ignore[arg-type]
        return found

    assert listed("", {s: v for s, v in data.items() if s != "runs"}) == declared
    assert {k for run in data["runs"] for k in run} == set(RUN_KEYS)
    text = (ROOT / "config" / "alphawatch.yaml").read_text()
    for line in text.splitlines():  # "every key commented"
        if line.strip() and not line.lstrip().startswith(("#", "-")) and line.rstrip().endswith(":") is False:
            assert "#" in line, f"uncommented key line: {line!r}"
    # The shipped file states the defaults, so it must load to the defaults (paths normalised).
    shipped = load_config(ROOT / "config" / "alphawatch.yaml", env={})
    assert shipped.runs == Config().runs
    assert (shipped.watch, shipped.worker, shipped.metrics, shipped.stop, shipped.logging) == (
        Config().watch, Config().worker, Config().metrics, Config().stop, Config().logging)
    assert shipped.state == Config().state
    assert shipped.analysis == Config().analysis


def test_docker_example_paths() -> None:
    config = load_config(ROOT / "config" / "examples" / "docker.yaml", env={})
    assert config.runs[0].watch == Path("/checkpoints")
    assert config.state.path == Path("/state/ledger.sqlite3")
    assert config.stop.path_for(config.runs[0].name) == Path("/signals/alphawatch-stop.json")


def test_multi_run_example_gives_one_stop_file_per_run() -> None:
    config = load_config(ROOT / "config" / "examples" / "multi-run.yaml", env={})
    paths = {config.stop.path_for(run.name) for run in config.runs}
    assert len(paths) == len(config.runs) > 1
    assert [r.name for r in config.runs][-1] == "trials"  # defaulted from the folder name


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    path = write(tmp_path, "stop:\n  threshold: 1.8\n  patience: 2\nmetrics:\n  port: 9000\n")
    env = {"ALPHAWATCH_STOP_THRESHOLD": "1.6", "ALPHAWATCH_METRICS_PORT": "9100"}
    config = load_config(path, {"stop.threshold": 1.5, "metrics.port": None}, env=env)
    assert config.stop.threshold == 1.5  # CLI beats env beats file
    assert config.metrics.port == 9100  # env beats file; a None override means "flag not given"
    assert config.stop.patience == 2  # file beats default
    assert config.stop.min_checkpoints is None  # default: the rule's own
    assert config.analysis.alpha_threshold == 1.5  # the trend logic uses the stop threshold


def test_every_documented_env_var_is_applied() -> None:
    samples = {
        "runs.watch": "/data/run", "runs.name": "exp", "runs.recursive": "yes",
        "watch.observer": "polling", "watch.polling_interval_seconds": "0.5",
        "watch.quiet_period_seconds": "0", "watch.backlog": "latest", "state.path": "/s/l.db",
        "worker.memory_limit_mb": "1024", "worker.timeout_seconds": "30", "metrics.host": "127.0.0.1",
        "metrics.port": "0", "stop.file": "/sig/x.json", "stop.threshold": "1.5",
        "stop.networks": "actor, critic_1", "stop.patience": "3", "logging.format": "console",
        "stop.rule": "guide", "stop.roles": "model, policy",
        "logging.level": "DEBUG", "analysis.device": "cuda:1",
    }
    assert set(samples) == set(ENV_VARS.values())
    config = load_config(None, env={var: samples[key] for var, key in ENV_VARS.items()})
    assert config.runs == (RunConfig(watch=Path("/data/run"), name="exp", recursive=True),)
    assert config.watch.observer == "polling" and config.watch.polling_interval_seconds == 0.5
    assert config.watch.quiet_period_seconds == 0 and config.watch.backlog == "latest"
    assert config.state.path == Path("/s/l.db")
    assert config.worker.memory_limit_mb == 1024 and config.worker.timeout_seconds == 30
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 0)
    assert config.stop.file == "/sig/x.json" and config.stop.threshold == 1.5
    assert config.stop.networks == ("actor", "critic_1") and config.stop.patience == 3
    assert (config.logging.format, config.logging.level) == ("console", "debug")
    assert config.analysis.device == "cuda:1"
    assert config.stop.rule == "guide" and config.stop.roles == ("model", "policy")


def test_stop_roles_and_rule_name_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"^stop.roles: must be roles among model, policy, critic, target, "
                                          r"value; unknown: actor"):
        load_config(None, {"stop.roles": ["actor"]}, env={})
    with pytest.raises(ConfigError, match=r"^stop.rule: must be one of share_below, guide, trusted_min"):
        load_config(None, {"stop.rule": "mean"}, env={})
    assert load_config(None, {"stop.patience": None}, env={}).stop.patience is None
    assert load_config(None, env={"ALPHAWATCH_STOP_PATIENCE": "3"}).stop.patience == 3


def test_analysis_device_names_what_is_allowed() -> None:
    assert load_config(None, {"analysis.device": "cpu"}, env={}).analysis.device == "cpu"
    with pytest.raises(ConfigError, match=r"^analysis.device: must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        load_config(None, {"analysis.device": "gpu"}, env={})


def test_empty_env_values_count_as_unset() -> None:
    assert load_config(None, env={"ALPHAWATCH_METRICS_PORT": "", "ALPHAWATCH_WATCH": " "}) == Config()


def test_config_file_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "metrics:\n  port: 1234\n")
    assert load_config(None, env={"ALPHAWATCH_CONFIG": str(path)}).metrics.port == 1234


def test_runs_watch_override_replaces_the_run_list(tmp_path: Path) -> None:
    path = write(tmp_path, "runs:\n  - {watch: /a, name: a}\n  - {watch: /b, name: b}\n"
                 "stop:\n  file: 'signals/{run}.json'\n")
    assert len(load_config(path, env={}).runs) == 2
    config = load_config(path, {"runs.watch": "/c/ckpts"}, env={})
    assert config.runs == (RunConfig(watch=Path("/c/ckpts"), name="ckpts"),)
    config = load_config(path, {"runs.watch": "/c/ckpts", "runs.name": "mine"}, env={})
    assert config.runs[0].name == "mine"


def test_runs_name_alone_renames_the_single_run(tmp_path: Path) -> None:
    path = write(tmp_path, "runs:\n  - watch: /x/ckpt\n    recursive: true\n")
    config = load_config(path, {"runs.name": "renamed"}, env={})
    assert config.runs == (RunConfig(watch=Path("/x/ckpt"), name="renamed", recursive=True),)


def test_runs_name_alone_with_several_runs_is_an_error(tmp_path: Path) -> None:
    text = "runs: [/a, /b]\nstop: {file: 's/{run}'}\n"
    assert "runs.name:" in error_of(tmp_path, text, overrides={"runs.name": "x"})


def test_analysis_section_maps_onto_analysis_options(tmp_path: Path) -> None:
    path = write(tmp_path, """
analysis:
  networks: [actor, critic_1]
  network_patterns: {actor: ["policy.actor.*"], critic: "policy.qf*"}
  seed: 7
  dead_neurons:
    method: weight
    samples: 64
    variance_threshold: 1e-5
    weight_threshold: 0.01
    activation: tanh
    input_distribution: uniform
    model_factory: mypkg.models:build
worker:
  threads: 2
""")
    options = load_config(path, env={}).analysis
    assert options.networks == ("actor", "critic_1")
    assert dict(options.network_patterns) == {"actor": ("policy.actor.*",), "critic": ("policy.qf*",)}
    assert (options.seed, options.dead_neuron_method, options.dead_neuron_samples) == (7, "weight", 64)
    assert options.dead_neuron_variance_threshold == 1e-5  # PyYAML reads 1e-5 as a string
    assert options.dead_neuron_weight_threshold == 0.01
    assert (options.activation, options.input_distribution) == ("tanh", "uniform")
    assert options.model_factory == "mypkg.models:build" and options.threads == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stop:\n  threshold: abc\n", "stop.threshold: must be a number > 0, got 'abc'"),
        ("stop:\n  threshold: 0\n", "stop.threshold: must be a number > 0"),
        ("stop:\n  threshold: .nan\n", "stop.threshold: must be a number > 0"),
        ("stop:\n  patience: 1.5\n", "stop.patience: must be an integer >= 1, got 1.5"),
        ("analysis:\n  dead_neurons:\n    samples: 1\n",
         "analysis.dead_neurons.samples: must be an integer >= 2, got 1"),
        ("stop:\n  enabled: maybe\n", "stop.enabled: must be true or false, got 'maybe'"),
        ("watch:\n  observr: polling\n", "watch.observr: unknown key; allowed keys: backlog, ignore"),
        ("watch:\n  observer: fsevents\n", "watch.observer: must be one of auto, inotify, polling"),
        ("watch:\n  backlog: newest\n", "watch.backlog: must be one of all, latest"),
        ("watch:\n  polling_interval_seconds: 0\n", "watch.polling_interval_seconds: must be a number > 0"),
        ("metrics:\n  port: 70000\n", "metrics.port: must be an integer from 0 to 65535, got 70000"),
        ("metrics:\n  port: true\n", "metrics.port: must be an integer from 0 to 65535, got True"),
        ("worker:\n  nice: 20\n", "worker.nice: must be an integer from 0 to 19"),
        ("worker:\n  memory_limit_mb: 10\n", "worker.memory_limit_mb: must be an integer >= 64"),
        ("state:\n  max_attempts: 0\n", "state.max_attempts: must be an integer >= 1"),
        ("logging:\n  level: loud\n", "logging.level: must be one of debug, info, warning"),
        ("analysis:\n  dead_neurons:\n    methd: weight\n", "analysis.dead_neurons.methd: unknown key"),
        ("analysis:\n  dead_neurons: 3\n", "analysis.dead_neurons: must be a mapping"),
        ("analysis:\n  network_patterns: [a]\n", "analysis.network_patterns: must map network names"),
        ("stop:\n  networks: actor\n", "stop.networks: must be a list of non-empty strings"),
        ("stop:\n  file: 'x/{name}.json'\n", "stop.file: may contain only the placeholder {run}"),
        ("stopp:\n  file: x\n", "stopp: unknown section; allowed sections: analysis, logging, metrics"),
        ("stop: 3\n", "stop: must be a mapping of keys"),
        ("runs: []\n", "runs: must be a non-empty list"),
        ("runs:\n  - name: x\n", "runs[0].watch: required"),
        ("runs:\n  - {watch: /a, nme: x}\n", "runs[0].nme: unknown key; allowed keys: name, recursive"),
        ("runs:\n  - {watch: /a, name: x/y}\n", "runs[0].name: must not contain path separators"),
        ("- 1\n", "the top level must be a mapping"),
        ("stop: {threshold: [\n", "not valid YAML at line"),
        ("stop:\n  threshold: 1\n  threshold: 3\n", "line 3, column 3: duplicate key 'threshold'"),
    ],
)
def test_errors_name_the_key_path_and_what_is_allowed(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(tmp_path, text)
    assert expected in message
    assert message.startswith(str(tmp_path / "alphawatch.yaml"))


def test_several_runs_need_run_in_the_stop_file(tmp_path: Path) -> None:
    message = error_of(tmp_path, "runs: [/a/one, /b/two]\n")
    assert "stop.file: must contain {run} when several runs are configured (one, two)" in message
    config = load_config(write(tmp_path, "runs: [/a/one, /b/two]\nstop: {enabled: false}\n"), env={})
    assert len(config.runs) == 2  # no stop file written, so no template needed


def test_duplicate_run_names_are_an_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, "runs: [/a/ckpt, /b/ckpt]\nstop: {file: 's/{run}.json'}\n")
    assert "runs: duplicate run name(s) ckpt" in message


def test_bad_override_and_env_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^stop.threshold: must be a number > 0, got 'abc'$"):
        load_config(None, {"stop.threshold": "abc"}, env={})
    with pytest.raises(ConfigError, match=r"^watch.observr: unknown key; allowed keys: backlog"):
        load_config(None, {"watch.observr": "polling"}, env={})
    with pytest.raises(ConfigError, match=r"from environment variable ALPHAWATCH_METRICS_PORT"):
        load_config(None, env={"ALPHAWATCH_METRICS_PORT": "http"})
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml", env={})


def test_typed_and_text_overrides_agree() -> None:
    typed = load_config(None, {"metrics.per_layer": True, "stop.networks": ["actor"]}, env={})
    text = load_config(None, {"metrics.per_layer": "true", "stop.networks": "actor"}, env={})
    assert typed == text and typed.metrics.per_layer and typed.stop.networks == ("actor",)


def test_config_is_frozen() -> None:
    config = load_config(None, env={})
    with pytest.raises(AttributeError):
        config.stop.threshold = 1.0  # type: ignore[misc]


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    check_config.add_arguments(parser)
    assert check_config.main(parser.parse_args([str(ROOT / "config" / "alphawatch.yaml"), "--no-env"])) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and out.count("\n") == 1 and "9841" in out
    bad = write(tmp_path, "stop:\n  threshold: -2\n")
    assert check_config.main(parser.parse_args([str(bad), "--no-env"])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stop.threshold: must be a number > 0, got -2" in err


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    bad = write(tmp_path, "watch:\n  observr: x\n")
    proc = subprocess.run([sys.executable, "-m", "alphawatch", "check-config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "watch.observr: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


ALL_KEYS: list[Key] = [*RUN_KEYS.values(), *(k for keys in SCHEMA.values() for k in keys.values())]


def test_reference_documents_every_key_as_declared() -> None:
    """docs/configuration.md's key tables are derived from the declaration: each row must read
    exactly as `Key.docs_row()` renders it (type, bounds, default, doc), and no row may name a
    key that is not declared."""
    lines = (ROOT / "docs" / "configuration.md").read_text().splitlines()
    for k in ALL_KEYS:
        assert k.docs_row() in lines, f"docs/configuration.md: {k.path}'s row should read\n{k.docs_row()}"
    declared = {k.docs_row().split("`")[1] for k in ALL_KEYS}
    documented = {line.split("`")[1] for line in lines
                  if line.startswith("| `") and line.split("`")[1].split(".")[0] in (*SCHEMA, "runs[]")}
    assert documented == declared


def test_reference_documents_every_environment_variable() -> None:
    lines = (ROOT / "docs" / "configuration.md").read_text().splitlines()
    rows = {line.split("`")[1]: line.split("`")[3] for line in lines if line.startswith("| `ALPHAWATCH_")}
    assert rows.pop(CONFIG_ENV_VAR) == "--config"  # "the config file itself (when `--config` ...)"
    assert rows == ENV_VARS


@pytest.mark.parametrize("declared", ALL_KEYS, ids=lambda k: k.path)
def test_every_key_names_its_path_when_its_value_is_wrong(tmp_path: Path, declared: Key) -> None:
    """Not only the keys listed above: each declared key rejects a nested list with its path."""
    if declared.section == "runs":
        text = yaml.safe_dump({"runs": [{"watch": "/a", declared.name: [[1]]}]})
        where = f"runs[0].{declared.name}"
    else:
        nested: object = [[1]]
        for part in reversed(declared.path.split(".")):
            nested = {part: nested}
        text, where = yaml.safe_dump(nested), declared.path
    assert error_of(tmp_path, text).startswith(f"{tmp_path / 'alphawatch.yaml'}: {where}: must ")


def test_every_default_passes_its_own_rules() -> None:
    """Each declared default, given back as an override, is accepted and changes nothing."""
    overrides = {k.path: k.default for k in ALL_KEYS if k.section != "runs"}
    assert load_config(None, overrides, env={}) == Config()


def test_a_new_key_is_one_line() -> None:
    """What another issue adding e.g. `analysis.device` gets from one `key(...)` line."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Section:
        device: str = key("cpu", "where to compute", choices=("cpu", "cuda"), env="X_DEVICE")
        retries: int = key(3, "how often", ge=0, le=9)

    keys = keys_of("extra", Section)
    assert keys["device"].parse(" CUDA ", True) == "cuda"
    assert keys["device"].docs_row() == "| `extra.device` | `cpu` \\| `cuda` | `cpu` | where to compute |"
    assert keys["retries"].docs_row() == "| `extra.retries` | integer 0–9 | `3` | how often |"
    with pytest.raises(Exception, match=r"^must be an integer from 0 to 9, got 10$"):
        keys["retries"].parse(10, False)


def test_a_key_without_a_rule_or_with_rules_of_another_type_is_refused() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Section:
        ratio: complex = key(1j, "no rule for complex numbers")

    @dataclass(frozen=True)
    class Misdeclared:
        name: str = key("x", "a string cannot have bounds", ge=1)

    with pytest.raises(TypeError, match="Section.ratio: no config rule for type"):
        keys_of("extra", Section)
    with pytest.raises(TypeError, match="Misdeclared.name: bounds apply to int and float keys only"):
        keys_of("extra", Misdeclared)
