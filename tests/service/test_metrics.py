"""The ledger collector: names, labels, values, omissions, restart, self-reporting."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alphawatch.analysis.health import HEALTH_STATES, alpha_verdict, dead_neuron_status
from alphawatch.errors import REASONS
from alphawatch.service.ledger import Ledger
from alphawatch.service.metrics import DURATION_BUCKETS, METRICS, LedgerCollector, histogram_buckets
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def network_result(alpha: float | None, layer_alphas: list[float | None], dead: int = 3,
                   total: int = 64) -> dict[str, Any]:
    """A NetworkResult as docs/CONTRACTS.md specifies it."""
    fitted = [a for a in layer_alphas if a is not None]
    layers = [{"name": f"{2 * i}.weight", "key": f"net.{2 * i}.weight", "shape": [32, 32], "kind": "linear",
               "alpha": a, "stable_rank": 4.0 + i if a is not None else None,
               "log_spectral_norm": 0.3 + i / 10 if a is not None else None, "D": 0.05, "xmin": 1.0,
               "num_pl_spikes": 10, "num_evals": 32, "status": "ok" if a is not None else "failed",
               "reason": None if a is not None else "power-law fit failed"}
              for i, a in enumerate(layer_alphas)]
    ratio = dead / total
    return {
        "summary": {
            "alpha": alpha, "alpha_std": 0.4 if fitted else None,
            "alpha_min": min(fitted) if fitted else None, "alpha_max": max(fitted) if fitted else None,
            "stable_rank_mean": 5.5 if fitted else None, "stable_rank_utilization": 0.2,
            "log_spectral_norm_mean": 0.42 if fitted else None,
            "layers_analyzed": len(fitted), "layers_skipped": 0, "layers_failed": len(layers) - len(fitted),
            "layers_trusted": len(fitted), "alpha_min_trusted": min(fitted) if fitted else None,
            "health": alpha_verdict(alpha),
            "dead_neurons": {"method": "weight", "count": dead, "total": total, "ratio": ratio,
                             "status": dead_neuron_status(ratio), "fallback_reason": None, "layers": []},
        },
        "layers": layers,
    }


def checkpoint_result(path: str, step: int | None, **networks: dict[str, Any]) -> dict[str, Any]:
    return {"path": path, "step": step, "format": "torch_zip", "networks": networks, "issues": []}


def fill_ledger(ledger: Ledger, run: str = "sac") -> None:
    """Three analyzed checkpoints, one failed twice (transient) then done, one refused."""
    for step, actor in ((100, 3.4), (200, 2.6), (300, 2.2)):
        path = f"/ckpt/{run}/step_{step}.pt"
        ledger.record_seen(run, path, size=step, mtime_ns=step, inode=step, step=step)
        row = ledger.claim_next()
        assert row is not None
        if step == 200:
            ledger.retry_seconds, wait = 0.0, ledger.retry_seconds  # retry at once
            assert ledger.mark_failed(row.id, "timeout", "slow", 7.5) == "pending"
            ledger.retry_seconds = wait
            row = ledger.claim_next()
            assert row is not None
        ledger.mark_done(row.id, checkpoint_result(
            path, step, actor=network_result(actor, [actor - 0.3, actor + 0.3]),
            critic=network_result(None, [None, None], dead=0)), 0.2 * step / 100)
    ledger.record_seen(run, f"/ckpt/{run}/evil.pt", size=1, mtime_ns=1, inode=1, step=None)
    ledger.mark_failed(ledger.claim_next().id, "unsafe_pickle", "refused", 0.05)  # type: ignore[union-attr]


def scrape(collector: LedgerCollector) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger(tmp_path / "ledger.sqlite3") as led:
        fill_ledger(led)
        yield led


def test_network_gauges_show_the_newest_checkpoint(ledger: Ledger) -> None:
    s = scrape(LedgerCollector(ledger, runs=["sac"]))
    assert value(s, "alphawatch_alpha", run="sac", network="actor") == 2.2
    assert value(s, "alphawatch_alpha_min", run="sac", network="actor") == pytest.approx(1.9)
    assert value(s, "alphawatch_alpha_max", run="sac", network="actor") == pytest.approx(2.5)
    assert value(s, "alphawatch_stable_rank_mean", run="sac", network="actor") == 5.5
    assert value(s, "alphawatch_log_spectral_norm_mean", run="sac", network="actor") == 0.42
    assert value(s, "alphawatch_layers_analyzed", run="sac", network="actor") == 2
    assert value(s, "alphawatch_layers_trusted", run="sac", network="actor") == 2
    assert value(s, "alphawatch_alpha_min_trusted", run="sac", network="actor") == pytest.approx(1.9)
    assert value(s, "alphawatch_network_info", run="sac", network="actor", role="policy") == 1
    assert value(s, "alphawatch_network_info", run="sac", network="critic", role="critic") == 1
    assert value(s, "alphawatch_dead_neurons", run="sac", network="actor") == 3
    assert value(s, "alphawatch_neurons", run="sac", network="actor") == 64
    assert value(s, "alphawatch_dead_neuron_ratio", run="sac", network="actor") == 3 / 64
    assert value(s, "alphawatch_checkpoint_step", run="sac") == 300
    assert value(s, "alphawatch_last_analysis_timestamp_seconds", run="sac") == pytest.approx(
        ledger.latest_done("sac").finished_at)  # type: ignore[union-attr]


def test_null_alphas_are_omitted_never_nan(ledger: Ledger) -> None:
    s = scrape(LedgerCollector(ledger, runs=["sac"]))
    assert value(s, "alphawatch_alpha", run="sac", network="critic") is None
    assert value(s, "alphawatch_alpha_min", run="sac", network="critic") is None
    assert value(s, "alphawatch_layers_analyzed", run="sac", network="critic") == 0
    assert all(v == v for samples in s.values() for _, v in samples)  # no NaN anywhere


def test_health_is_one_hot(ledger: Ledger) -> None:
    s = scrape(LedgerCollector(ledger, runs=["sac"]))
    actor = {lab["status"]: v for lab, v in s["alphawatch_health"] if lab["network"] == "actor"}
    assert set(actor) == set(HEALTH_STATES) and sum(actor.values()) == 1
    assert actor[alpha_verdict(2.2)] == 1
    critic = {lab["status"]: v for lab, v in s["alphawatch_health"] if lab["network"] == "critic"}
    assert critic["unknown"] == 1


def test_ledger_counts_failures_durations(ledger: Ledger) -> None:
    s = scrape(LedgerCollector(ledger, runs=["sac"]))
    assert value(s, "alphawatch_checkpoints", run="sac", status="done") == 3
    assert value(s, "alphawatch_checkpoints", run="sac", status="failed") == 1
    assert value(s, "alphawatch_checkpoints", run="sac", status="pending") == 0
    assert value(s, "alphawatch_checkpoint_failures_total", run="sac", reason="timeout") == 1
    assert value(s, "alphawatch_checkpoint_failures_total", run="sac", reason="unsafe_pickle") == 1
    zero_reasons = [lab["reason"] for lab, v in s["alphawatch_checkpoint_failures_total"] if v == 0]
    assert set(zero_reasons) == set(REASONS) - {"timeout", "unsafe_pickle"}  # initialised at 0
    durations = ledger.durations("sac")
    assert value(s, "alphawatch_analysis_duration_seconds_count", run="sac") == len(durations) == 5
    assert value(s, "alphawatch_analysis_duration_seconds_sum", run="sac") == pytest.approx(sum(durations))
    assert value(s, "alphawatch_analysis_duration_seconds_bucket", run="sac", le="0.5") == 3
    assert value(s, "alphawatch_analysis_duration_seconds_bucket", run="sac", le="10.0") == 5
    assert value(s, "alphawatch_analysis_duration_seconds_bucket", run="sac", le="+Inf") == 5
    assert value(s, "alphawatch_stop_signal", run="sac") == 0
    ledger.record_stop("sac", "/signals/stop.json", {"stop": True})
    assert value(scrape(LedgerCollector(ledger)), "alphawatch_stop_signal", run="sac") == 1


def test_histogram_buckets_are_cumulative() -> None:
    buckets = histogram_buckets([0.05, 0.1, 0.3, 2000.0])
    assert buckets[0] == ("0.1", 2.0)  # le is inclusive
    assert buckets[-2] == ("1800.0", 3.0) and buckets[-1] == ("+Inf", 4.0)
    assert len(buckets) == len(DURATION_BUCKETS) + 1
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)


def test_configured_run_without_rows_exports_zero_counts(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as empty:
        s = scrape(LedgerCollector(empty, runs=["fresh"]))
    assert value(s, "alphawatch_checkpoints", run="fresh", status="done") == 0
    assert value(s, "alphawatch_analysis_duration_seconds_count", run="fresh") == 0
    assert "alphawatch_alpha" not in s


def test_per_layer_only_when_enabled_and_capped(ledger: Ledger) -> None:
    assert "alphawatch_layer_alpha" not in scrape(LedgerCollector(ledger))
    s = scrape(LedgerCollector(ledger, per_layer=True))
    layers = {lab["layer"]: v for lab, v in s["alphawatch_layer_alpha"]}
    assert layers == {"0.weight": pytest.approx(1.9), "2.weight": pytest.approx(2.5)}  # failed: omitted
    s = scrape(LedgerCollector(ledger, per_layer=True, per_layer_limit=1))
    assert len(s["alphawatch_layer_alpha"]) == 1


def test_restart_restores_every_value(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        fill_ledger(ledger)
        before = scrape(LedgerCollector(ledger, runs=["sac"]))
    with Ledger(path) as reopened:  # a new process: nothing but the file
        after = scrape(LedgerCollector(reopened, runs=["sac"]))
    strip = {"alphawatch_scrape_collector_duration_seconds"}
    assert {k: v for k, v in before.items() if k not in strip} == {
        k: v for k, v in after.items() if k not in strip}


def test_several_runs_are_labelled_apart(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        fill_ledger(ledger, "a")
        fill_ledger(ledger, "b")
        s = scrape(LedgerCollector(ledger))
    assert {lab["run"] for lab, _ in s["alphawatch_alpha"]} == {"a", "b"}


def test_broken_ledger_is_reported_by_the_collector_itself(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        fill_ledger(ledger)
        with sqlite3.connect(tmp_path / "l.db") as conn:  # someone breaks the schema
            conn.execute("DROP TABLE checkpoints")
        s = scrape(LedgerCollector(ledger, runs=["sac"]))
    assert value(s, "alphawatch_scrape_collector_success", collector="ledger") == 0
    assert value(s, "alphawatch_scrape_collector_duration_seconds", collector="ledger") is not None
    assert value(s, "alphawatch_build_info", version=__import__("alphawatch").__version__) == 1
    assert "alphawatch_alpha" not in s


def test_healthy_scrape_reports_success(ledger: Ledger) -> None:
    s = scrape(LedgerCollector(ledger))
    assert value(s, "alphawatch_scrape_collector_success", collector="ledger") == 1


def test_every_documented_name_is_in_the_docs() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    for name, (kind, _, _) in METRICS.items():
        exposed = f"{name}_total" if kind == "counter" else name
        assert f"`{exposed}" in docs, exposed


@pytest.mark.skipif(__import__("shutil").which("promtool") is None, reason="promtool not installed")
def test_documented_promql_examples_parse(tmp_path: Path) -> None:
    import re
    import subprocess

    docs = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    block = re.search(r"```promql\n(.*?)```", docs, re.S).group(1)  # type: ignore[union-attr]
    exprs, current = [], ""
    for line in block.splitlines() + [""]:
        if line.startswith("#") or not line.strip():
            if current:
                exprs.append(current)
            current = ""
        else:
            current += " " + line.strip()
    assert len(exprs) >= 8
    rules = "groups:\n  - name: docs\n    rules:\n" + "".join(
        f"      - record: docs:example_{i}\n        expr: {json.dumps(e.strip())}\n"
        for i, e in enumerate(exprs))
    (tmp_path / "rules.yml").write_text(rules)
    check = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_only_configured_runs_are_exported(ledger: Ledger) -> None:
    # The config used to watch run "old" and now watches only "sac": the ledger keeps
    # old's rows, but its frozen gauges must not be scraped forever (they would keep
    # AlphawatchNoNewCheckpoints firing for a run nobody trains any more).
    fill_ledger(ledger, run="old")
    s = scrape(LedgerCollector(ledger, runs=["sac"]))
    runs = {lab.get("run") for samples in s.values() for lab, _ in samples if "run" in lab}
    assert runs == {"sac"}
    assert value(s, "alphawatch_alpha", run="sac", network="actor") == pytest.approx(2.2)
    everything = scrape(LedgerCollector(ledger))  # no config: every run in the ledger
    assert value(everything, "alphawatch_checkpoints", run="old", status="done") == 3


def test_a_result_stored_by_an_older_version_still_scrapes(tmp_path: Path) -> None:
    # alphawatch 0.1 stored summaries without layers_trusted / alpha_min_trusted
    with Ledger(tmp_path / "l.db") as ledger:
        ledger.record_seen("sac", "/c/step_1.pt", size=1, mtime_ns=1, inode=1, step=1)
        old = network_result(2.5, [2.2, 2.8])
        del old["summary"]["layers_trusted"], old["summary"]["alpha_min_trusted"]
        ledger.mark_done(ledger.claim_next().id, checkpoint_result("/c/step_1.pt", 1, actor=old), 0.1)  # type: ignore[union-attr]
        s = scrape(LedgerCollector(ledger, runs=["sac"]))
    assert value(s, "alphawatch_scrape_collector_success", collector="ledger") == 1
    assert value(s, "alphawatch_alpha", run="sac", network="actor") == 2.5
    assert value(s, "alphawatch_layers_trusted", run="sac", network="actor") is None


def test_families_are_rebuilt_only_when_the_ledger_changed(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        fill_ledger(ledger)
        collector = LedgerCollector(ledger, runs=["sac"])
        scrape(collector)
        built = collector._cache
        ledger.is_writable()  # a readiness probe, and a claim that finds nothing: no change
        assert ledger.claim_next() is None
        scrape(collector)
        assert collector._cache is built
        ledger.record_seen("sac", "/ckpt/sac/step_400.pt", size=1, mtime_ns=400, inode=400, step=400)
        assert value(scrape(collector), "alphawatch_checkpoints", run="sac", status="pending") == 1
        with sqlite3.connect(tmp_path / "l.db") as other:  # another process (signal clear, an operator)
            other.execute("DELETE FROM checkpoints WHERE path = '/ckpt/sac/step_400.pt'")
        assert value(scrape(collector), "alphawatch_checkpoints", run="sac", status="pending") == 0


def test_the_exposition_renders_the_ledger_part_once_per_change(tmp_path: Path) -> None:
    from alphawatch.config import load_config
    from alphawatch.service.metrics import build_registry

    with Ledger(tmp_path / "l.db") as ledger:
        fill_ledger(ledger)
        config = load_config(None, env={}, overrides={"runs.watch": str(tmp_path), "runs.name": "sac"})
        exposition = build_registry(ledger, config)
        text, content_type = exposition.render("")
        cached = exposition._rendered
        again, _ = exposition.render("")
        assert exposition._rendered is cached and b"process_cpu_seconds_total" in again
        ledger.record_seen("sac", "/ckpt/sac/step_400.pt", size=1, mtime_ns=400, inode=400, step=400)
        changed, _ = exposition.render("")
        assert exposition._rendered is not cached
        assert b'alphawatch_checkpoints{run="sac",status="pending"} 1.0' in changed
        open_metrics, kind = exposition.render("application/openmetrics-text; version=1.0.0")
        assert kind.startswith("application/openmetrics-text")
        assert open_metrics.count(b"# EOF\n") == 1 and open_metrics.endswith(b"# EOF\n")
