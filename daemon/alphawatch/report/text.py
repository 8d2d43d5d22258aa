"""The console summary, also written as `network_health_report.txt`.

It mirrors the report of the original `analyze_network_health.py` script, so people who
know that script can read it at a glance: per network the overall alpha and its verdict,
dead neurons, alpha range / mean +/- std, log spectral norm, stable rank (also as a share of
full rank), layer counts and the potential issues; for several checkpoints a table of alpha
per network in training-step order, the detected pattern and the recommended checkpoint.

Pure: a report document (the `analyze --json` shape) in, a string out. ASCII only, so it
prints on any terminal encoding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alphawatch.results import CheckpointResult, DeadNeurons, Document, Failure, Issue, NetworkResult, Trend

REPORT_FILENAME = "network_health_report.txt"
WIDTH = 80

# The guide's alpha bands; the words a reader of the original script expects.
VERDICTS: dict[str, str] = {
    "overfit": "OVERFIT - alpha < 2: over-trained, stop here or roll back",
    "optimal": "OPTIMAL - alpha 2 to 2.5: well trained",
    "good": "GOOD - alpha 2.5 to 5: healthy",
    "undertrained": "UNDERTRAINED - alpha 5 to 6: keep training",
    "severely_undertrained": "SEVERELY UNDERTRAINED - alpha > 6: barely learned",
    "unknown": "UNKNOWN - no layer could be fitted",
}

DEAD_NEURON_WORDS: dict[str, str] = {
    "good": "GOOD (< 5%)",
    "moderate": "MODERATE (5-15%)",
    "high": "HIGH (15-30%)",
    "critical": "CRITICAL (> 30%)",
    "unknown": "UNKNOWN",
}

PATTERN_WORDS: dict[str, str] = {
    "healthy_progression": "healthy progression",
    "overtraining": "overtraining",
    "not_learning": "not learning",
    "unstable": "unstable",
    "insufficient_data": "insufficient data",
}


def fmt(value: Any, digits: int = 3) -> str:
    """A number for people: fixed digits, `n/a` for a missing value."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_shape(shape: Sequence[int] | None) -> str:
    """`[256, 17]` -> `256x17` (how people write matrix sizes)."""
    if not shape:
        return "-"
    return "x".join(str(int(d)) for d in shape)


def checkpoint_label(path: str) -> str:
    """The short name used in tables: the file (or folder) name."""
    return os.path.basename(os.path.normpath(path)) or path


def _rule(char: str = "-") -> str:
    return char * WIDTH


def _line(label: str, value: str) -> str:
    return f"  {label:<26}{value}"


def format_dead_neurons(dead: DeadNeurons) -> str:
    """`3/512 (0.59%) -> GOOD (< 5%) [activation]` plus a fallback note when there was one."""
    count, total, ratio = dead["count"], dead["total"], dead["ratio"]
    status = DEAD_NEURON_WORDS.get(dead["status"], dead["status"].upper())
    pct = "n/a" if ratio is None else f"{ratio * 100:.2f}%"
    counted = f"n/a of {fmt(total)}" if count is None else f"{fmt(count)}/{fmt(total)}"
    method = dead["method"]
    text = f"{counted} ({pct}) -> {status} [{method}]"
    if dead["fallback_reason"]:  # weight-based fallback, or a failed factory replaced by a rebuild
        text += f"\n{'':28}({method}-based: {dead['fallback_reason']})"
    return text


def format_network(name: str, net: NetworkResult, issues: Sequence[Issue] = ()) -> str:
    """One network's block: the verdict first, then the numbers behind it."""
    s = net["summary"]
    health = s["health"]
    util = s["stable_rank_utilization"]
    util_text = "" if util is None else f" ({util * 100:.1f}% of full rank)"
    lines = [
        _rule(),
        f"NETWORK: {name}",
        _rule(),
        _line("Overall alpha:", f"{fmt(s['alpha'])}  -> {VERDICTS.get(health, health.upper())}"),
        _line("Dead neurons:", format_dead_neurons(s["dead_neurons"])),
        _line("Alpha range:", f"{fmt(s['alpha_min'])} to {fmt(s['alpha_max'])}"),
        _line("Alpha mean +/- std:", f"{fmt(s['alpha'])} +/- {fmt(s['alpha_std'])}"),
        _line("Log spectral norm mean:", fmt(s["log_spectral_norm_mean"])),
        _line("Stable rank mean:", f"{fmt(s['stable_rank_mean'], 2)}{util_text}"),
        _line(
            "Layers:",
            f"{fmt(s['layers_analyzed'])} analyzed ({fmt(s['layers_trusted'])} trusted), "
            f"{fmt(s['layers_skipped'])} skipped, {fmt(s['layers_failed'])} failed",
        ),
    ]
    for layer in net["layers"]:
        if layer["status"] in ("skipped", "failed"):
            lines.append(
                f"    {layer['status']}: {layer['name']} ({fmt_shape(layer['shape'])})"
                f" - {layer['reason'] or 'no reason given'}"
            )
    own = [i["message"] for i in issues if i["network"] == name]
    lines.append("  Potential issues:" + ("" if own else " none detected"))
    lines.extend(f"    - {i}" for i in own)
    return "\n".join(lines)


def format_checkpoint(result: CheckpointResult) -> str:
    """The block for one checkpoint: header, one section per network, shared issues."""
    networks = result["networks"]
    issues = result["issues"]
    parts = [
        _rule("="),
        f"CHECKPOINT: {result['path']}",
        f"  step: {fmt(result['step'])}    format: {result['format']}    networks: {len(networks)}",
    ]
    for name, net in networks.items():
        parts.append(format_network(name, net, issues))
    shared = [i["message"] for i in issues if i["network"] not in networks]
    if shared:
        parts.append(_rule())
        parts.append("Checkpoint-wide issues:")
        parts.extend(f"  - {i}" for i in shared)
    return "\n".join(parts)


def format_comparison(trend: Trend, threshold: float = 2.0) -> str:
    """Alpha per network per checkpoint in training order, the pattern, the recommendation."""
    order = trend["order"]
    steps = trend["steps"]
    alphas = trend["alpha"]
    recommended = trend["recommended_checkpoint"]
    names = [checkpoint_label(p) for p in order]
    name_w = min(max([len("checkpoint"), *(len(n) for n in names)]), 36)
    nets = list(alphas)
    col_w = max([10, *(len(n) + 2 for n in nets)])
    header = f"{'step':>10}  {'checkpoint':<{name_w}}" + "".join(f"{n:>{col_w}}" for n in nets)
    lines = [
        _rule("="),
        f"ALPHA OVER TRAINING ({len(order)} checkpoints, in training order)",
        _rule("="),
        header,
        "-" * len(header),
    ]
    for i, path in enumerate(order):
        name = names[i] if len(names[i]) <= name_w else "..." + names[i][-(name_w - 3):]
        step = steps[i] if i < len(steps) else None
        row = f"{fmt(step):>10}  {name:<{name_w}}"
        for net in nets:
            value = alphas[net][i] if i < len(alphas[net]) else None
            mark = "!" if value is not None and value < threshold else " "
            row += f"{fmt(value):>{col_w - 1}}{mark}"
        if path == recommended:
            row += "  <- recommended"
        lines.append(row.rstrip())
    lines.append(f"  (! = alpha below {threshold:g}: over-trained)")
    pattern = trend["pattern"]
    network = trend.get("network")
    about = f" (decided by {network}, the lowest alpha)" if network and len(alphas) > 1 else ""
    lines.append(f"Pattern: {PATTERN_WORDS.get(pattern, pattern)}{about}")
    if trend["description"]:
        lines.append(f"  {trend['description']}")
    if recommended:
        idx = list(order).index(recommended) if recommended in order else -1
        step_text = f" (step {fmt(steps[idx])})" if 0 <= idx < len(steps) else ""
        lines.append(f"Recommended checkpoint: {recommended}{step_text}")
    else:
        lines.append("Recommended checkpoint: none (no checkpoint qualifies)")
    return "\n".join(lines)


def format_failures(failures: Sequence[Failure]) -> str:
    """Files that were refused or failed, one line each with the reason code."""
    lines = [_rule("="), f"NOT ANALYZED ({len(failures)})"]
    for f in failures:
        path, message = f["path"], f["message"]
        text = message if path in message else f"{path}: {message}"
        lines.append(f"  {text} [{f['reason']}]")
    return "\n".join(lines)


def render(document: Document, threshold: float = 2.0) -> str:
    """The whole report for an `analyze` document: every checkpoint, then the comparison."""
    checkpoints = document["checkpoints"]
    failures = document["failures"]
    parts = ["NETWORK HEALTH REPORT (alphawatch)"]
    parts.extend(format_checkpoint(c) for c in checkpoints)
    if len(checkpoints) > 1:
        parts.append(format_comparison(document["trend"], threshold))
    if failures:
        parts.append(format_failures(failures))
    if not checkpoints and not failures:
        parts.append("No checkpoints analyzed.")
    parts.append(_rule("="))
    return "\n".join(parts) + "\n"


def write(document: Document, output_dir: Path, threshold: float = 2.0) -> Path:
    """Write `network_health_report.txt` (UTF-8) and return its path."""
    path = Path(output_dir) / REPORT_FILENAME
    path.write_text(render(document, threshold), encoding="utf-8")
    return path
