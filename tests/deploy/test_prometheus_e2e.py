"""End to end: a real Prometheus scraping a real `alphawatch run` over real checkpoints.

What runs (no mocks): Debian's prometheus (unpacked into the tools folder by `make tools`)
with the shipped rule file and a 1 s scrape/evaluation interval; `alphawatch run` (a
subprocess, per-layer metrics on) watching a temp folder; real SAC checkpoints written with
torch.save (tests/factories.py); a garbage `.pt` file so the failure counter exists; and
Debian's Alertmanager (tools folder too) with the shipped config receiving Prometheus's alerts.

Then: the target is up; every rule evaluates without error; every PromQL expression and
template variable of the Grafana dashboard (variables substituted as Grafana would) is
accepted by Prometheus and returns data; AlphawatchOverfitting is silent while the
checkpoints are healthy and fires through Prometheus's own /api/v1/alerts once an overfit
checkpoint arrives.

The checkpoints are a plain model's (one network, role `model`: the only role the default
stop rule acts on). The overfit ones are real weights, not a changed threshold
(tests/deploy/weights.py): every Linear weight is rebuilt as W = U diag(s) V^T with s^2
following an exact power law of exponent 1.5, so WeightWatcher's fit of the eigenvalue tail
gives alpha ~1.5 < 2 for every layer, well fitted: what the shipped AlphawatchOverfitting
warning (a plain model's lowest trusted-layer alpha < 2) and the default stop rule (half the
layers below 2 at two checkpoints in a row) look for.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import (
    DEPLOY,
    RULES,
    dashboard_queries,
    load_dashboard,
    load_yaml,
    parse_label_values,
    substitute,
    variable_queries,
)
from tests.deploy.weights import write_model_checkpoint
from tests.support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

RUN = "e2e"
NETWORK = "model"
SCRAPE = "1s"
# `make tools` names it alertmanager; Debian's package, installed, names it prometheus-alertmanager
ALERTMANAGER_NAMES = ("alertmanager", "prometheus-alertmanager")


# ------------------------------------------------------------------------------ helpers


def http_json(url: str, params: dict[str, Any] | None = None, timeout: float = 5.0) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: list[Proc]) -> Any:
    """Poll `check` until it returns something truthy; fail with the processes' logs if not."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.popen.poll() is not None:
                pytest.fail(f"{p.name} exited with {p.popen.returncode} while waiting for {what}\n{p.tail()}")
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, KeyError) as exc:
            last_exc = exc
        time.sleep(0.5)
    logs = "\n".join(p.tail() for p in procs)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})\n{logs}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-n:]
        return f"--- {self.name} (last {len(lines)} lines) ---\n" + "\n".join(lines)

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode


def start(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    fh = log.open("wb")
    popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    fh.close()
    return Proc(name, popen, log)


# ------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    prom: str
    daemon_metrics: str
    procs: list[Proc]
    alertmanager: str | None = None
    alerts_before_overfit: list[dict[str, Any]] = field(default_factory=list)
    test_start: float = 0.0
    stop_file: Path | None = None

    def query(self, expr: str) -> dict[str, Any]:
        return http_json(f"{self.prom}/api/v1/query", {"query": expr})

    def query_range(self, expr: str, start: float, end: float) -> dict[str, Any]:
        return http_json(f"{self.prom}/api/v1/query_range",
                         {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"})

    def alerts(self) -> list[dict[str, Any]]:
        return http_json(f"{self.prom}/api/v1/alerts")["data"]["alerts"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus not found on PATH: `make tools` unpacks Debian's into .tools/bin")
    alertmanager = next(filter(None, map(shutil.which, ALERTMANAGER_NAMES)), None)
    if alertmanager is None:
        pytest.fail("alertmanager not found on PATH: `make tools` unpacks Debian's into .tools/bin")

    root = tmp_path_factory.mktemp("e2e")
    ckpts, state, signals = root / "checkpoints", root / "state", root / "signals"
    ckpts.mkdir()
    metrics_port, prom_port = free_port(), free_port()
    procs: list[Proc] = []

    # the daemon: per-layer metrics on (config file), the rest as flags, like a user would
    config = root / "alphawatch.yaml"
    config.write_text(yaml.safe_dump({
        "runs": [{"watch": str(ckpts), "name": RUN}],
        # a garbage file looks like a checkpoint still being written until it has been quiet
        # for max(rescan interval, 10 x quiet period): keep that hold short for the test
        "watch": {"quiet_period_seconds": 0.5, "polling_interval_seconds": 0.5,
                  "rescan_interval_seconds": 3},
        "metrics": {"per_layer": True},
        "logging": {"format": "json"},
    }))
    daemon_argv = [
        sys.executable, "-m", "alphawatch", "run", "--config", str(config),
        "--watch", str(ckpts), "--run", RUN, "--state", str(state / "ledger.sqlite3"),
        "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port),
        "--stop-file", str(signals / "alphawatch-stop.json"), "--stop-threshold", "2.0",
        "--observer", "polling",
    ]

    # Prometheus: the shipped rules, a 1 s cycle, scraping the daemon as job "alphawatch"
    am_port = free_port()
    prom_cfg: dict[str, Any] = {
        "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "alphawatch",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }
    am_target = {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
    prom_cfg["alerting"] = {"alertmanagers": [am_target]}
    prom_yml = root / "prometheus.yml"
    prom_yml.write_text(yaml.safe_dump(prom_cfg))

    try:
        procs.append(start("alertmanager", [
            alertmanager, f"--config.file={DEPLOY / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={root / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ], root / "alertmanager.log"))
        procs.append(start("alphawatch", daemon_argv, root / "alphawatch.log",
                           env={**os.environ, "PYTHONUNBUFFERED": "1"}))
        procs.append(start("prometheus", [
            prometheus, f"--config.file={prom_yml}", f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ], root / "prometheus.log"))
        stack = Stack(prom=f"http://127.0.0.1:{prom_port}", daemon_metrics=f"http://127.0.0.1:{metrics_port}",
                      procs=procs, alertmanager=f"http://127.0.0.1:{am_port}",
                      test_start=time.time(), stop_file=signals / "alphawatch-stop.json")

        ready, healthz = f"{stack.prom}/-/ready", f"{stack.daemon_metrics}/healthz"
        wait_for("Prometheus ready", lambda: urllib.request.urlopen(ready, timeout=2), 30, procs)
        wait_for("alphawatch /healthz", lambda: urllib.request.urlopen(healthz, timeout=2), 60, procs)

        # phase 1: two healthy checkpoints (default-init weights: alpha well above 2) and garbage
        write_model_checkpoint(ckpts / "generation_100.pt", step=100, seed=1)
        (ckpts / "generation_150.pt").write_text("this is not a checkpoint\n")
        write_model_checkpoint(ckpts / "generation_200.pt", step=200, seed=2)
        done = f'alphawatch_checkpoints{{run="{RUN}",status="done"}}'
        failed = f'sum(alphawatch_checkpoints{{run="{RUN}",status="failed"}})'
        wait_for("2 analyzed checkpoints in Prometheus", lambda: (stack.scalar(done) or 0) >= 2, 120, procs)
        wait_for("the failed checkpoint in Prometheus", lambda: (stack.scalar(failed) or 0) >= 1, 60, procs)
        time.sleep(3)  # a few evaluation cycles over the healthy data
        stack.alerts_before_overfit = stack.alerts()

        # phase 2: two overfit checkpoints arrive (the stop rule's patience is 2)
        write_model_checkpoint(ckpts / "generation_300.pt", step=300, overfit=True, seed=3)
        write_model_checkpoint(ckpts / "generation_400.pt", step=400, overfit=True, seed=4)
        step = f'alphawatch_checkpoint_step{{run="{RUN}"}}'
        wait_for("step 400 analyzed", lambda: stack.scalar(step) == 400, 120, procs)
        wait_for("AlphawatchOverfitting firing", lambda: _firing(stack, "AlphawatchOverfitting"), 60, procs)
        time.sleep(2)  # let rate() windows see the last increase
        yield stack
    finally:
        for proc in reversed(procs):
            proc.stop()


def _firing(stack: Stack, alertname: str) -> list[dict[str, Any]]:
    return [a for a in stack.alerts() if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


# ------------------------------------------------------------------------------ the tests


def test_target_is_up(stack: Stack) -> None:
    targets = http_json(f"{stack.prom}/api/v1/targets")["data"]["activeTargets"]
    (target,) = [t for t in targets if t["labels"]["job"] == "alphawatch"]
    assert target["health"] == "up", target.get("lastError")
    assert stack.scalar('up{job="alphawatch"}') == 1.0


def test_every_rule_evaluates_cleanly(stack: Stack) -> None:
    groups = http_json(f"{stack.prom}/api/v1/rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    shipped = [r for g in load_yaml(RULES)["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == {r["alert"] for r in shipped}
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_overfitting_alert_silent_while_healthy(stack: Stack) -> None:
    names = {a["labels"]["alertname"] for a in stack.alerts_before_overfit}
    assert "AlphawatchOverfitting" not in names
    assert "AlphawatchStopSignalRaised" not in names
    assert "AlphawatchDown" not in names


def test_overfitting_alert_fires_for_the_overfit_checkpoint(stack: Stack) -> None:
    firing = _firing(stack, "AlphawatchOverfitting")
    networks = {a["labels"]["network"] for a in firing}
    assert NETWORK in networks
    for alert in firing:
        assert alert["labels"]["run"] == RUN and alert["labels"]["severity"] == "warning"
        assert float(alert["value"]) < 2.0
        assert "/d/alphawatch/" in alert["annotations"]["dashboard"]


def test_stop_signal_and_failure_alerts_follow(stack: Stack) -> None:
    """The daemon wrote the stop file (the default rule, on the second overfit checkpoint) and
    Prometheus saw it and the failure."""
    assert stack.stop_file is not None and stack.stop_file.exists()
    payload = json.loads(stack.stop_file.read_text())
    assert payload["stop"] is True and payload["run"] == RUN and payload["network"] == NETWORK
    assert payload["rule"] == "share_below" and payload["value"] >= payload["threshold"] == 0.5
    assert payload["checkpoint"].endswith("generation_400.pt")  # the second in a row
    wait_for("AlphawatchStopSignalRaised firing", lambda: _firing(stack, "AlphawatchStopSignalRaised"),
             15, stack.procs)
    failing = wait_for("AlphawatchAnalysisFailing firing",
                       lambda: _firing(stack, "AlphawatchAnalysisFailing"), 15, stack.procs)
    assert all(a["labels"]["run"] == RUN and a["labels"]["reason"] for a in failing)


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    dashboard = load_dashboard()
    end = time.time()
    window = max(60, int(end - stack.test_start) + 5)
    variables = {"run": RUN, "network": NETWORK}
    problems = []
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 15
    for title, target in queries:
        expr = substitute(target["expr"], variables, rate_interval="4s", range_=f"{window}s", interval="1s")
        if target.get("instant"):
            body = stack.query(expr)
            values = [s["value"][1] for s in body["data"]["result"]]
        else:
            body = stack.query_range(expr, stack.test_start, end)
            values = [v[1] for s in body["data"]["result"] for v in s["values"]]
        finite = [v for v in values if not math.isnan(float(v))]
        if body["status"] != "success" or not finite:
            problems.append(f"{title}: {expr} -> {body['status']}, {len(values)} values, "
                            f"{len(finite)} finite")
    assert problems == []


def test_every_template_variable_returns_values(stack: Stack) -> None:
    variables = {"run": RUN, "network": NETWORK}
    expected = {"run": RUN, "network": NETWORK}
    for name, query in variable_queries(load_dashboard()).items():
        selector, label = parse_label_values(query)
        params = {"match[]": substitute(selector, variables)} if selector else None
        values = http_json(f"{stack.prom}/api/v1/label/{label}/values", params)["data"]
        assert expected[name] in values, (name, values)


def test_alert_reaches_alertmanager(stack: Stack) -> None:
    assert stack.alertmanager is not None
    alerts = wait_for("AlphawatchOverfitting in Alertmanager", lambda: [
        a for a in http_json(f"{stack.alertmanager}/api/v2/alerts")
        if a["labels"]["alertname"] == "AlphawatchOverfitting"], 30, stack.procs)
    assert alerts[0]["labels"]["run"] == RUN
    assert alerts[0]["status"]["state"] == "active"


def test_live_scrape_passes_promtool_check_metrics(stack: Stack) -> None:
    """What Prometheus scraped is well-formed by Prometheus's own linter (per-layer series on)."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    with urllib.request.urlopen(f"{stack.daemon_metrics}/metrics", timeout=5) as resp:
        body = resp.read()
    assert b"alphawatch_layer_alpha{" in body
    proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
