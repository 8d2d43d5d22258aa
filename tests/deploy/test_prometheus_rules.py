"""Prometheus config and alert rules, checked by the real promtool (Debian's prometheus package).

Besides running the shipped unit tests, each alert is mutated twice (never fires / always
fires) and the unit tests must then fail: that proves every alert has both a firing and a
not-firing case, instead of trusting the test file's word for it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.helpers import (
    DASHBOARD,
    METRIC_NAMES,
    PROM_CONFIG,
    RULES,
    RULES_TEST,
    load_dashboard,
    load_yaml,
    metric_names_in,
)

EXPECTED_ALERTS = {
    "AlphawatchOverfitting",
    "AlphawatchUndertrained",
    "AlphawatchDeadNeuronsHigh",
    "AlphawatchDeadNeuronsCritical",
    "AlphawatchStopSignalRaised",
    "AlphawatchStopSignalUnwritten",
    "AlphawatchAnalysisFailing",
    "AlphawatchDown",
    "AlphawatchNoNewCheckpoints",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found on PATH: `make tools` unpacks Debian's into .tools/bin")
    return exe


def _run(promtool: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _alerts() -> list[dict]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_config(promtool: str, tmp_path: Path) -> None:
    proc = _run(promtool, "check", "config", str(PROM_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the shipped config globs /etc/prometheus/rules (the container path); point a copy at the
    # repo's rules so `check config` also loads and checks them
    cfg = load_yaml(PROM_CONFIG)
    cfg["rule_files"] = [str(RULES)]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(cfg))
    proc = _run(promtool, "check", "config", str(copy))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 9 rules found" in proc.stdout


def test_prometheus_config_scrapes_alphawatch_job() -> None:
    cfg = load_yaml(PROM_CONFIG)
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    targets = [t for sc in jobs["alphawatch"]["static_configs"] for t in sc["targets"]]
    assert targets == ["alphawatch:9841"]
    assert cfg["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def test_promtool_check_rules(promtool: str) -> None:
    proc = _run(promtool, "check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in proc.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    proc = _run(promtool, "test", "rules", str(RULES_TEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_expected_alert_exists_with_annotations() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} == EXPECTED_ALERTS
    uid = load_dashboard()["uid"]
    for alert in alerts:
        ann = alert["annotations"]
        assert ann["summary"] and ann["description"], alert["alert"]
        assert f"/d/{uid}/" in ann["dashboard"], alert["alert"]
        assert alert["labels"]["severity"] in ("info", "warning", "critical")


def test_rules_use_only_documented_metric_names() -> None:
    text = RULES.read_text()
    used = metric_names_in(text)
    assert used and used <= METRIC_NAMES, used - METRIC_NAMES
    assert DASHBOARD.exists()


def test_thresholds_are_the_documented_ones() -> None:
    exprs = {a["alert"]: " ".join(a["expr"].split()) for a in _alerts()}
    assert exprs["AlphawatchOverfitting"] == (
        'alphawatch_alpha_min_trusted < 2 and on (run, network) alphawatch_network_info{role="model"}')
    assert exprs["AlphawatchUndertrained"] == "alphawatch_alpha > 6"
    assert "alphawatch_dead_neuron_ratio > 0.15" in exprs["AlphawatchDeadNeuronsHigh"]
    assert exprs["AlphawatchDeadNeuronsCritical"] == "alphawatch_dead_neuron_ratio > 0.30"
    assert "increase(alphawatch_checkpoint_failures_total" in exprs["AlphawatchAnalysisFailing"]
    assert "up{job=\"alphawatch\"} == 0" in exprs["AlphawatchDown"]
    assert "absent(up{job=\"alphawatch\"})" in exprs["AlphawatchDown"]
    assert "time() - alphawatch_last_analysis_timestamp_seconds" in exprs["AlphawatchNoNewCheckpoints"]


def test_unit_test_file_covers_firing_and_silence_for_every_alert() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for group in load_yaml(RULES_TEST)["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    assert firing == EXPECTED_ALERTS
    assert silent == EXPECTED_ALERTS


def _mutated_suite(tmp_path: Path, alertname: str, new_expr: str) -> Path:
    rules = load_yaml(RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alertname:
                rule["expr"] = new_expr(rule["expr"]) if callable(new_expr) else new_expr
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules" / RULES.name).write_text(yaml.safe_dump(rules))
    shutil.copy(RULES_TEST, tmp_path / "tests" / RULES_TEST.name)
    return tmp_path / "tests" / RULES_TEST.name


@pytest.mark.parametrize("alertname", sorted(EXPECTED_ALERTS))
def test_unit_tests_catch_an_alert_that_never_fires(promtool: str, tmp_path: Path, alertname: str) -> None:
    suite = _mutated_suite(tmp_path, alertname, "vector(0) > 1")
    proc = _run(promtool, "test", "rules", str(suite))
    assert proc.returncode != 0, f"no unit test notices {alertname} never firing"
    assert alertname in proc.stdout + proc.stderr


@pytest.mark.parametrize("alertname", sorted(EXPECTED_ALERTS))
def test_unit_tests_catch_an_alert_that_always_fires(promtool: str, tmp_path: Path, alertname: str) -> None:
    suite = _mutated_suite(tmp_path, alertname, lambda expr: f"({expr}) or vector(1)")
    proc = _run(promtool, "test", "rules", str(suite))
    assert proc.returncode != 0, f"no unit test notices {alertname} firing when it should not"
    assert alertname in proc.stdout + proc.stderr
