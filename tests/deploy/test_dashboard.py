"""The Grafana dashboard and provisioning files: structure, datasource, bands, queries.

There is no Grafana here. These tests check the JSON against what the provisioning files
declare, and parse every query with promtool (each substituted expression becomes a recording
rule, and `promtool check rules` parses rules with Prometheus's own PromQL parser). That the
queries also return data from a live alphawatch is tests/deploy/test_prometheus_e2e.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import (
    COMPOSE,
    DASHBOARD,
    DASHBOARD_PROVIDER,
    DATASOURCE,
    METRIC_NAMES,
    dashboard_queries,
    iter_panels,
    load_dashboard,
    load_yaml,
    metric_names_in,
    parse_label_values,
    substitute,
    variable_queries,
)

ALPHA_BANDS = [("red", None), ("green", 2), ("orange", 5), ("red", 6)]
DEAD_BANDS = [("green", None), ("yellow", 0.05), ("orange", 0.15), ("red", 0.3)]

DASH = load_dashboard()
PANELS = list(iter_panels(DASH["panels"]))


def _datasource() -> dict[str, Any]:
    (ds,) = load_yaml(DATASOURCE)["datasources"]
    return ds


def _bands(panel: dict[str, Any]) -> list[tuple[str, float | None]]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [(s["color"], s["value"]) for s in steps]


def _panels_querying(metric: str) -> list[dict[str, Any]]:
    return [p for p in PANELS if any(metric in t.get("expr", "") for t in p.get("targets", []))]


def test_datasource_provisioning() -> None:
    ds = _datasource()
    assert ds["type"] == "prometheus"
    assert ds["uid"] == "alphawatch-prometheus"
    # without this Grafana's alert list shows no Prometheus-evaluated alerts
    assert ds["jsonData"]["manageAlerts"] is True
    assert ds["url"] == "http://prometheus:9090"
    compose = load_yaml(COMPOSE)
    assert "prometheus" in compose["services"]


def test_dashboard_provider_points_at_the_mounted_folder() -> None:
    (provider,) = load_yaml(DASHBOARD_PROVIDER)["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith(".")}
    assert path in mounts, f"{path} is not mounted into grafana"
    assert (COMPOSE.parent / mounts[path] / DASHBOARD.name).resolve() == DASHBOARD.resolve()


def test_panel_ids_unique_and_positive() -> None:
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in PANELS:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        xs, ys = range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        mine = {(x, y) for x in xs for y in ys}
        assert not (mine & cells), f"{panel['title']} overlaps another panel"
        cells |= mine


def test_every_panel_and_target_uses_the_provisioned_datasource() -> None:
    uid = _datasource()["uid"]
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
    for var in DASH["templating"]["list"]:
        assert var["datasource"]["uid"] == uid


def test_template_variables_run_and_network() -> None:
    queries = variable_queries(DASH)
    assert set(queries) == {"run", "network"}
    assert parse_label_values(queries["run"])[1] == "run"
    selector, label = parse_label_values(queries["network"])
    assert label == "network" and selector is not None and '$run' in selector
    network = next(v for v in DASH["templating"]["list"] if v["name"] == "network")
    assert network["multi"] and network["includeAll"]


def test_alpha_panels_have_the_alpha_bands_shaded() -> None:
    alpha_panels = _panels_querying("alphawatch_alpha{") + _panels_querying("alphawatch_alpha_min") + \
        _panels_querying("alphawatch_layer_alpha")
    assert len({p["id"] for p in alpha_panels}) >= 4
    for panel in alpha_panels:
        assert _bands(panel) == ALPHA_BANDS, panel["title"]
        if panel["type"] in ("timeseries", "trend"):
            assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "area"


def test_alpha_over_step_and_over_time() -> None:
    trend = [p for p in PANELS if p["type"] == "trend"]
    assert len(trend) == 1
    (panel,) = trend
    exprs = [t["expr"] for t in panel["targets"]]
    assert any(e.startswith("alphawatch_alpha{") for e in exprs)
    assert any(e.startswith("alphawatch_checkpoint_step{") for e in exprs)
    step_legend = next(t["legendFormat"] for t in panel["targets"] if "checkpoint_step" in t["expr"])
    assert panel["options"]["xField"] == step_legend
    assert panel["transformations"][0]["id"] == "joinByField"
    over_time = [p for p in _panels_querying("alphawatch_alpha{") if p["type"] == "timeseries"]
    assert over_time and all("{{network}}" in t["legendFormat"] for p in over_time for t in p["targets"])


def test_dead_neuron_ratio_bands() -> None:
    panels = _panels_querying("alphawatch_dead_neuron_ratio")
    assert panels
    for panel in panels:
        assert _bands(panel) == DEAD_BANDS
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "area"


def test_stop_signal_stat_maps_values() -> None:
    (panel,) = _panels_querying("alphawatch_stop_signal")
    assert panel["type"] == "stat"
    (mapping,) = panel["fieldConfig"]["defaults"]["mappings"]
    assert mapping["type"] == "value" and set(mapping["options"]) == {"0", "1", "2"}
    assert mapping["options"]["1"]["color"] == "red"
    # 2 = due but unwritten: the one panel shows both gauges (stop_signal + 2 * unwritten)
    (target,) = panel["targets"]
    assert "2 * alphawatch_stop_signal_unwritten" in target["expr"]
    assert "NOT WRITTEN" in mapping["options"]["2"]["text"]


def test_required_panels_present() -> None:
    by_metric = {
        "alphawatch_stable_rank_mean": "timeseries",
        "alphawatch_log_spectral_norm_mean": "timeseries",
        "alphawatch_layer_alpha": "bargauge",
        "alphawatch_checkpoint_step": "stat",
        "alphawatch_analysis_duration_seconds_bucket": "timeseries",
        "alphawatch_checkpoint_failures_total": "timeseries",
    }
    for metric, kind in by_metric.items():
        assert kind in {p["type"] for p in _panels_querying(metric)}, metric
    duration = _panels_querying("alphawatch_analysis_duration_seconds_bucket")[0]
    assert all("histogram_quantile(" in t["expr"] for t in duration["targets"])
    failures = [p for p in _panels_querying("alphawatch_checkpoint_failures_total")
                if p["type"] == "timeseries"]
    assert "sum by (reason)" in failures[0]["targets"][0]["expr"]
    assert "rate(" in failures[0]["targets"][0]["expr"]


def test_alert_list_panel_shows_prometheus_alerts() -> None:
    (panel,) = [p for p in PANELS if p["type"] == "alertlist"]
    options = panel["options"]
    # the alert list filters by datasource *name* (Grafana stores ds.name there)
    assert options["datasource"] == _datasource()["name"]
    assert options["stateFilter"]["firing"] and options["stateFilter"]["pending"]
    assert options["alertName"] in "AlphawatchOverfitting"


def test_queries_use_documented_metrics_and_cover_the_important_ones() -> None:
    used: set[str] = set()
    for _, target in dashboard_queries(DASH):
        used |= metric_names_in(target["expr"])
    for query in variable_queries(DASH).values():
        used |= metric_names_in(query)
    assert used <= METRIC_NAMES, used - METRIC_NAMES
    missing = METRIC_NAMES - used - {
        # shown through other series or deliberately left to Prometheus's UI
        "alphawatch_analysis_duration_seconds",
        "alphawatch_analysis_duration_seconds_sum",
        "alphawatch_analysis_duration_seconds_count",
    }
    assert missing == set()


def test_every_query_parses_with_prometheus_parser(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: `make tools` unpacks Debian's into .tools/bin")
    variables = {"run": "sac", "network": "actor|critic_1"}
    rules = []
    for i, (title, target) in enumerate(dashboard_queries(DASH)):
        rules.append({"record": f"dashboard:query_{i}", "expr": substitute(target["expr"], variables),
                      "labels": {"panel": title}})
    for name, query in variable_queries(DASH).items():
        selector, _ = parse_label_values(query)
        if selector:
            rules.append({"record": f"dashboard:variable_{name}", "expr": substitute(selector, variables)})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout


def test_substitute_leaves_no_variable() -> None:
    with pytest.raises(ValueError):
        substitute('x{run="$run", y="$unknown"}', {"run": "a"})
    assert substitute('rate(x{run="$run"}[$__rate_interval])', {"run": "a"}, rate_interval="4s") == \
        'rate(x{run="a"}[4s])'
