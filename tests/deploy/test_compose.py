"""deploy/docker-compose.yml and the Alertmanager config, checked without a Docker engine.

The compose file must parse, mount only files that exist, pin every image, wire the volumes
the way docs/deployment.md says (checkpoints read-only for alphawatch, the stop signal
read-only for the trainer) and agree with the Prometheus and Grafana files it mounts.
`docker compose config` runs when the compose plugin is installed; `amtool check-config`
when amtool is on PATH (`make tools` unpacks Debian's into .tools/bin).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from alphawatch.config import load_config

from tests.container.dockercli import compose_command
from tests.deploy.helpers import (
    COMPOSE,
    DATASOURCE,
    DEPLOY,
    DOCKER_CONFIG,
    DOCKERFILE,
    PROM_CONFIG,
    healthcheck_command,
    load_yaml,
)

SPEC = load_yaml(COMPOSE)
SERVICES: dict[str, Any] = SPEC["services"]
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
CI_OVERRIDE = COMPOSE.parents[1] / "tests" / "container" / "compose.ci.yml"


def _mounts(service: str) -> list[tuple[str, str, str]]:
    """(source, target, mode) for a service's short-syntax volumes."""
    out = []
    for volume in SERVICES[service].get("volumes", []):
        parts = volume.split(":")
        out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


def test_services() -> None:
    assert set(SERVICES) == {"trainer", "alphawatch", "prometheus", "alertmanager", "grafana"}


def test_images_pinned() -> None:
    for name, svc in SERVICES.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image}"
    assert re.fullmatch(r"v[23]\.\d+\.\d+", SERVICES["prometheus"]["image"].split(":")[1])
    assert re.fullmatch(r"1[12]\.\d+\.\d+", SERVICES["grafana"]["image"].split(":")[1])


def test_every_bind_mount_exists() -> None:
    checked = 0
    for name in SERVICES:
        for source, target, _ in _mounts(name):
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} -> {target} missing"
                checked += 1
            else:
                assert source in SPEC["volumes"], f"{name}: named volume {source} not declared"
    assert checked >= 5


def test_build_contexts_and_targets() -> None:
    for name in ("trainer", "alphawatch"):
        build = SERVICES[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert f"AS {build['target']}" in DOCKERFILE.read_text()


def test_shared_volumes_and_their_modes() -> None:
    trainer = {(s, t): m for s, t, m in _mounts("trainer")}
    daemon = {(s, t): m for s, t, m in _mounts("alphawatch")}
    assert trainer[("checkpoints", "/checkpoints")] == "rw"
    assert daemon[("checkpoints", "/checkpoints")] == "ro"
    assert daemon[("signals", "/signals")] == "rw"
    assert trainer[("signals", "/signals")] == "ro"
    assert daemon[("state", "/state")] == "rw"
    # the trainer polls the same file alphawatch writes (config/examples/docker.yaml)
    stop_file = load_yaml(DOCKER_CONFIG)["stop"]["file"]
    command = SERVICES["trainer"]["command"]
    assert command[command.index("--stop-file") + 1] == stop_file
    assert command[command.index("--checkpoint-dir") + 1] == "/checkpoints"


def test_stack_config_is_valid_and_matches_the_image_layout() -> None:
    mounts = {t: s for s, t, _ in _mounts("alphawatch")}
    path = COMPOSE.parent / mounts["/etc/alphawatch/config.yaml"]
    cfg, image_cfg = load_config(path), load_config(DOCKER_CONFIG)
    assert cfg.metrics.per_layer is True  # the dashboard's per-layer panel needs it
    assert [r.watch for r in cfg.runs] == [r.watch for r in image_cfg.runs]
    assert (cfg.state.path, cfg.stop.file, cfg.metrics.port) == \
        (image_cfg.state.path, image_cfg.stop.file, image_cfg.metrics.port)


def test_hardening() -> None:
    for name in ("trainer", "alphawatch"):
        svc = SERVICES[name]
        assert svc["read_only"] is True
        assert svc["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in svc["security_opt"]
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_healthchecks_and_depends_on_conditions() -> None:
    for name, svc in SERVICES.items():
        if name != "trainer":
            assert svc["healthcheck"]["test"][0] == "CMD", name
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            assert cond["condition"] in CONDITIONS
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits on {dep}: no healthcheck"
    assert SERVICES["trainer"]["depends_on"]["alphawatch"]["condition"] == "service_healthy"
    # the daemon's compose healthcheck is the image's HEALTHCHECK
    assert SERVICES["alphawatch"]["healthcheck"]["test"][1:] == healthcheck_command(DOCKERFILE.read_text())


def test_grafana_password_required_and_anonymous_off() -> None:
    env = SERVICES["grafana"]["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "${GRAFANA_ANONYMOUS:-false}"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mounts = {t: s for s, t, _ in _mounts("grafana")}
    folder = str(Path(home).parent)
    assert (COMPOSE.parent / mounts[folder] / Path(home).name).is_file()


def test_prometheus_alertmanager_and_grafana_are_wired_together() -> None:
    prom = load_yaml(PROM_CONFIG)
    mounts = {t: s for s, t, _ in _mounts("prometheus")}
    assert (COMPOSE.parent / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROM_CONFIG
    rules_dir = COMPOSE.parent / mounts["/etc/prometheus/rules"]
    assert list(rules_dir.glob("*.yml")), "no rule file would match /etc/prometheus/rules/*.yml"
    am_targets = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_targets == ["alertmanager:9093"]
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "alphawatch"]
    assert job["static_configs"][0]["targets"] == ["alphawatch:9841"]
    assert "127.0.0.1:9841:9841" in SERVICES["alphawatch"]["ports"]
    (ds,) = load_yaml(DATASOURCE)["datasources"]
    assert ds["url"] == "http://prometheus:9090"
    am_mounts = {t: s for s, t, _ in _mounts("alertmanager")}
    assert (COMPOSE.parent / am_mounts["/etc/alertmanager/alertmanager.yml"]).resolve() == ALERTMANAGER_CONFIG


def _compose() -> list[str]:
    """`docker compose`, or the tools folder's docker-compose (`make tools`); skip if neither."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI; structure is checked by the other tests in this file")
    try:
        return compose_command()
    except AssertionError as exc:
        pytest.skip(f"{exc}; structure is checked by the other tests in this file")


def test_docker_compose_config() -> None:
    compose = _compose()
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only"}
    proc = subprocess.run([*compose, "-f", str(COMPOSE), "config", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    env.pop("GRAFANA_ADMIN_PASSWORD")
    proc = subprocess.run([*compose, "-f", str(COMPOSE), "config", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in proc.stderr


# What the CI override (tests/container/compose.ci.yml) may change, per service: only what this
# machine forces (images it can't pull, their healthchecks, no Grafana, free host ports) and
# the trainer's pace. alphawatch's image, config, volumes and hardening stay the shipped ones.
CI_OVERRIDE_MAY_SET = {
    "trainer": {"command"},
    "alphawatch": {"ports"},
    "prometheus": {"image", "ports", "healthcheck"},
    "alertmanager": {"image", "ports", "healthcheck"},
    "grafana": {"profiles"},
}


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (`!override`, `!reset`) read as their plain values."""


_ComposeLoader.add_constructor("!override", lambda loader, node: (
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else
    loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else loader.construct_scalar(node)))


def test_ci_override_changes_only_what_this_machine_forces() -> None:
    override = yaml.load(CI_OVERRIDE.read_text(), Loader=_ComposeLoader)  # noqa: S506 (a SafeLoader)
    assert set(override) == {"services"}
    for name, svc in override["services"].items():
        assert set(svc) <= CI_OVERRIDE_MAY_SET[name], (name, set(svc))
    assert override["services"]["grafana"]["profiles"] == ["grafana"]
    trainer = override["services"]["trainer"]["command"]
    shipped = SERVICES["trainer"]["command"]
    for flag in ("--checkpoint-dir", "--stop-file"):
        assert trainer[trainer.index(flag) + 1] == shipped[shipped.index(flag) + 1]


def test_ci_override_merges_into_the_stack_without_grafana() -> None:
    compose = _compose()
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only"}
    argv = [*compose, "-f", str(COMPOSE), "-f", str(CI_OVERRIDE), "config", "--format", "json"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    merged = json.loads(proc.stdout)["services"]
    assert set(merged) == {"trainer", "alphawatch", "prometheus", "alertmanager"}
    for name in ("alphawatch", "prometheus", "alertmanager"):
        (port,) = merged[name]["ports"]
        assert port["host_ip"] == "127.0.0.1" and not port.get("published"), (name, port)
    assert merged["alphawatch"]["image"] == SERVICES["alphawatch"]["image"]
    assert merged["alphawatch"]["read_only"] is True and merged["alphawatch"]["cap_drop"] == ["ALL"]


def test_alertmanager_config_is_valid() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not on PATH (`make tools` unpacks Debian's into .tools/bin)")
    proc = subprocess.run([amtool, "check-config", str(ALERTMANAGER_CONFIG)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
                           "alertname=AlphawatchOverfitting", "run=sac", "network=actor"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "default", proc.stdout + proc.stderr
