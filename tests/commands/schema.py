"""A checker for the `analyze --json` document (docs/CONTRACTS.md "Result schema").

Plain asserts, so a failure names the path of the offending field. Used by the CLI tests
on real output; it checks shapes and types, never particular figures.
"""

from __future__ import annotations

import math
from typing import Any

HEALTH_STATES = {"overfit", "optimal", "good", "undertrained", "severely_undertrained", "unknown"}
DEAD_STATES = {"good", "moderate", "high", "critical", "unknown"}
PATTERNS = {"healthy_progression", "overtraining", "not_learning", "unstable", "insufficient_data"}
LAYER_FIELDS = {"name", "key", "shape", "kind", "alpha", "stable_rank", "log_spectral_norm",
                "D", "xmin", "num_pl_spikes", "num_evals", "status", "reason"}
SUMMARY_FIELDS = {"alpha", "alpha_std", "alpha_min", "alpha_max", "stable_rank_mean",
                  "stable_rank_utilization", "log_spectral_norm_mean", "layers_analyzed",
                  "layers_skipped", "layers_failed", "layers_trusted", "alpha_min_trusted", "health",
                  "dead_neurons"}
NUMBER_OR_NULL = ("alpha", "stable_rank", "log_spectral_norm", "D", "xmin")


def _num(value: Any, where: str) -> None:
    assert value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)), where
    assert value is None or math.isfinite(value), where


def check_layer(layer: dict[str, Any], network: str, where: str) -> None:
    missing = LAYER_FIELDS - set(layer)
    assert not missing, f"{where}: missing {sorted(missing)}"
    assert isinstance(layer["name"], str) and layer["name"], where
    assert isinstance(layer["key"], str) and layer["key"], f"{where}: every layer needs its key"
    assert isinstance(layer["shape"], list) and all(isinstance(d, int) for d in layer["shape"]), where
    assert layer["status"] in {"ok", "skipped", "failed"}, where
    for field in NUMBER_OR_NULL:
        _num(layer[field], f"{where}.{field}")
    if layer["status"] == "ok":
        assert layer["alpha"] is not None and layer["reason"] is None, where
    else:
        assert layer["alpha"] is None and isinstance(layer["reason"], str) and layer["reason"], where


def check_network(net: dict[str, Any], name: str, where: str) -> None:
    s = net["summary"]
    missing = SUMMARY_FIELDS - set(s)
    assert not missing, f"{where}.summary: missing {sorted(missing)}"
    assert s["health"] in HEALTH_STATES, where
    for field in ("alpha", "alpha_std", "alpha_min", "alpha_max", "stable_rank_mean",
                  "stable_rank_utilization", "log_spectral_norm_mean"):
        _num(s[field], f"{where}.summary.{field}")
    layers = net["layers"]
    assert s["layers_analyzed"] == sum(x["status"] == "ok" for x in layers), where
    assert s["layers_skipped"] == sum(x["status"] == "skipped" for x in layers), where
    assert s["layers_failed"] == sum(x["status"] == "failed" for x in layers), where
    trusted = [x["alpha"] for x in layers
               if x["status"] == "ok" and (x["num_pl_spikes"] or 0) >= 10 and (x["D"] or 1.0) <= 0.075]
    assert s["layers_trusted"] == len(trusted), where
    assert s["alpha_min_trusted"] == (min(trusted) if trusted else None), where
    dead = s["dead_neurons"]
    assert dead["method"] in {"activation", "weight"} and dead["status"] in DEAD_STATES, where
    assert isinstance(dead["count"], int) and isinstance(dead["total"], int), where
    assert 0 <= dead["count"] <= dead["total"], where
    for i, layer in enumerate(layers):
        check_layer(layer, name, f"{where}.layers[{i}]")


def check_document(doc: dict[str, Any]) -> None:
    """Assert `doc` follows the analyze --json schema."""
    assert set(doc) == {"checkpoints", "failures", "trend"}
    for i, ckpt in enumerate(doc["checkpoints"]):
        where = f"checkpoints[{i}]"
        assert {"path", "step", "format", "networks", "issues"} <= set(ckpt), where
        assert ckpt["step"] is None or isinstance(ckpt["step"], int), where
        assert isinstance(ckpt["issues"], list), where
        for issue in ckpt["issues"]:
            assert set(issue) == {"network", "code", "message"}, where
            assert issue["network"] is None or issue["network"] in ckpt["networks"], where
            assert isinstance(issue["code"], str) and isinstance(issue["message"], str), where
        for name, net in ckpt["networks"].items():
            check_network(net, name, f"{where}.networks.{name}")
    for i, failure in enumerate(doc["failures"]):
        assert set(failure) >= {"path", "reason", "message"}, f"failures[{i}]"
    trend = doc["trend"]
    fields = {"order", "steps", "alpha", "pattern", "network", "recommended_checkpoint", "description"}
    assert fields <= set(trend)
    assert trend["network"] is None or trend["network"] in trend["alpha"]
    assert trend["order"] == [c["path"] for c in doc["checkpoints"]], "checkpoints are in trend order"
    assert trend["pattern"] in PATTERNS
    assert trend["recommended_checkpoint"] is None or trend["recommended_checkpoint"] in trend["order"]
    for series in trend["alpha"].values():
        assert len(series) == len(trend["order"])
