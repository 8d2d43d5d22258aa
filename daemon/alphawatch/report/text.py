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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


def _network_issues(name: str, issues: Sequence[str]) -> list[str]:
    """Issues that name this network (`"actor: ..."`), with the prefix dropped."""
    prefix = f"{name}:"
    return [i[len(prefix):].strip() for i in issues if i.startswith(prefix)]


def _shared_issues(networks: Sequence[str], issues: Sequence[str]) -> list[str]:
    """Issues that belong to no single network (e.g. actor vs critic mismatch)."""
    prefixes = tuple(f"{n}:" for n in networks)
    return [i for i in issues if not i.startswith(prefixes)]


def format_dead_neurons(dead: Mapping[str, Any] | None) -> str:
    """`3/512 (0.59%) -> GOOD (< 5%) [activation]` plus a fallback note when there was one."""
    if not dead:
        return "n/a"
    count, total, ratio = dead.get("count"), dead.get("total"), dead.get("ratio")
    status = DEAD_NEURON_WORDS.get(str(dead.get("status")), str(dead.get("status", "unknown")).upper())
    pct = "n/a" if ratio is None else f"{ratio * 100:.2f}%"
    counted = f"n/a of {fmt(total)}" if count is None else f"{fmt(count)}/{fmt(total)}"
    method = dead.get("method", "?")
    text = f"{counted} ({pct}) -> {status} [{method}]"
    if dead.get("fallback_reason"):  # weight-based fallback, or a failed factory replaced by a rebuild
        text += f"\n{'':28}({method}-based: {dead['fallback_reason']})"
    return text


def format_network(name: str, net: Mapping[str, Any], issues: Sequence[str] = ()) -> str:
    """One network's block: the verdict first, then the numbers behind it."""
    s = net.get("summary", {})
    health = str(s.get("health", "unknown"))
    util = s.get("stable_rank_utilization")
    util_text = "" if util is None else f" ({util * 100:.1f}% of full rank)"
    lines = [
        _rule(),
        f"NETWORK: {name}",
        _rule(),
        _line("Overall alpha:", f"{fmt(s.get('alpha'))}  -> {VERDICTS.get(health, health.upper())}"),
        _line("Dead neurons:", format_dead_neurons(s.get("dead_neurons"))),
        _line("Alpha range:", f"{fmt(s.get('alpha_min'))} to {fmt(s.get('alpha_max'))}"),
        _line("Alpha mean +/- std:", f"{fmt(s.get('alpha'))} +/- {fmt(s.get('alpha_std'))}"),
        _line("Log spectral norm mean:", fmt(s.get("log_spectral_norm_mean"))),
        _line("Stable rank mean:", f"{fmt(s.get('stable_rank_mean'), 2)}{util_text}"),
        _line(
            "Layers:",
            f"{fmt(s.get('layers_analyzed'))} analyzed, {fmt(s.get('layers_skipped'))} skipped, "
            f"{fmt(s.get('layers_failed', 0))} failed",
        ),
    ]
    for layer in net.get("layers", []):
        if layer.get("status") in ("skipped", "failed"):
            lines.append(
                f"    {layer.get('status')}: {layer.get('name')} ({fmt_shape(layer.get('shape'))})"
                f" - {layer.get('reason') or 'no reason given'}"
            )
    own = _network_issues(name, issues)
    lines.append("  Potential issues:" + ("" if own else " none detected"))
    lines.extend(f"    - {i}" for i in own)
    return "\n".join(lines)


def format_checkpoint(result: Mapping[str, Any]) -> str:
    """The block for one checkpoint: header, one section per network, shared issues."""
    networks: Mapping[str, Any] = result.get("networks", {})
    issues: Sequence[str] = result.get("issues", [])
    parts = [
        _rule("="),
        f"CHECKPOINT: {result.get('path')}",
        f"  step: {fmt(result.get('step'))}    format: {result.get('format', '?')}    "
        f"networks: {len(networks)}",
    ]
    for name, net in networks.items():
        parts.append(format_network(name, net, issues))
    shared = _shared_issues(list(networks), issues)
    if shared:
        parts.append(_rule())
        parts.append("Checkpoint-wide issues:")
        parts.extend(f"  - {i}" for i in shared)
    return "\n".join(parts)


def format_comparison(trend: Mapping[str, Any], threshold: float = 2.0) -> str:
    """Alpha per network per checkpoint in step order, the pattern, the recommendation."""
    order: Sequence[str] = trend.get("order", [])
    steps: Sequence[int | None] = trend.get("steps", [])
    alphas: Mapping[str, Sequence[float | None]] = trend.get("alpha", {})
    recommended = trend.get("recommended_checkpoint")
    names = [checkpoint_label(p) for p in order]
    name_w = min(max([len("checkpoint"), *(len(n) for n in names)]), 36)
    nets = list(alphas)
    col_w = max([10, *(len(n) + 2 for n in nets)])
    header = f"{'step':>10}  {'checkpoint':<{name_w}}" + "".join(f"{n:>{col_w}}" for n in nets)
    lines = [
        _rule("="),
        f"ALPHA OVER TRAINING ({len(order)} checkpoints, in step order)",
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
    pattern = str(trend.get("pattern", "insufficient_data"))
    lines.append(f"Pattern: {PATTERN_WORDS.get(pattern, pattern)}")
    if trend.get("description"):
        lines.append(f"  {trend['description']}")
    if recommended:
        idx = list(order).index(recommended) if recommended in order else -1
        step_text = f" (step {fmt(steps[idx])})" if 0 <= idx < len(steps) else ""
        lines.append(f"Recommended checkpoint: {recommended}{step_text}")
    else:
        lines.append("Recommended checkpoint: none (no checkpoint qualifies)")
    return "\n".join(lines)


def format_failures(failures: Sequence[Mapping[str, Any]]) -> str:
    """Files that were refused or failed, one line each with the reason code."""
    lines = [_rule("="), f"NOT ANALYZED ({len(failures)})"]
    for f in failures:
        path, message = str(f.get("path")), str(f.get("message"))
        text = message if path in message else f"{path}: {message}"
        lines.append(f"  {text} [{f.get('reason')}]")
    return "\n".join(lines)


def render(document: Mapping[str, Any], threshold: float = 2.0) -> str:
    """The whole report for an `analyze` document: every checkpoint, then the comparison."""
    checkpoints: Sequence[Mapping[str, Any]] = document.get("checkpoints", [])
    failures: Sequence[Mapping[str, Any]] = document.get("failures", [])
    parts = ["NETWORK HEALTH REPORT (alphawatch)"]
    parts.extend(format_checkpoint(c) for c in checkpoints)
    trend = document.get("trend") or {}
    if len(checkpoints) > 1 and trend:
        parts.append(format_comparison(trend, threshold))
    if failures:
        parts.append(format_failures(failures))
    if not checkpoints and not failures:
        parts.append("No checkpoints analyzed.")
    parts.append(_rule("="))
    return "\n".join(parts) + "\n"


def write(document: Mapping[str, Any], output_dir: Path, threshold: float = 2.0) -> Path:
    """Write `network_health_report.txt` (UTF-8) and return its path."""
    path = Path(output_dir) / REPORT_FILENAME
    path.write_text(render(document, threshold), encoding="utf-8")
    return path
