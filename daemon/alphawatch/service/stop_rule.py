"""The stop rule: should training stop, given the analyzed checkpoints of one run? (pure)

    evaluate(results, rule, run, now=None) -> payload dict | None

`results` are CheckpointResult dicts in training-step order (`Ledger.done_rows(run)`,
each row's `.result`); copies of one checkpoint (same step, same alphas) count once
(`distinct_checkpoints`). The rule (`StopConfig`) fires when

- at least `rule.min_checkpoints` checkpoints have been analyzed, and
- for ANY selected network (`rule.networks`; empty = every network seen in `results`),
  the last `rule.patience` checkpoints all have an alpha for it strictly below
  `rule.threshold`. A checkpoint where that network has no alpha (missing, or every
  fit failed) breaks the streak: unknown is not "below".

When several networks fire at once, the one with the lowest current alpha is reported
(then the name, for determinism). The payload follows docs/CONTRACTS.md "Stop signal";
`recommended_checkpoint` is `alphawatch.analysis.trend`'s recommendation computed on the
triggering network's alphas alone (the checkpoint whose alpha was closest to the
threshold from above before it first fell below) -- the same rule `alphawatch analyze`
uses, but not confused by other networks the rule does not select. If trend is
unavailable, the last checkpoint before the streak with alpha >= threshold. Pure: no I/O, the clock is a
parameter, so the daemon can re-evaluate after every analyzed checkpoint and after a
restart and get the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alphawatch import __version__
from alphawatch.config import StopConfig

SIGNAL_FORMAT_VERSION = 1


def network_alpha(result: dict[str, Any], network: str) -> float | None:
    """The network's mean alpha in one CheckpointResult, or None when it has none."""
    summary = ((result.get("networks") or {}).get(network) or {}).get("summary") or {}
    alpha = summary.get("alpha")
    return float(alpha) if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else None


def selected_networks(results: Sequence[dict[str, Any]], rule: StopConfig) -> list[str]:
    """The rule's networks, or every network seen in `results` (first-seen order)."""
    if rule.networks:
        return list(rule.networks)
    names: list[str] = []
    for result in results:
        names.extend(n for n in (result.get("networks") or {}) if n not in names)
    return names


def distinct_checkpoints(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`results` without copies: a result with the same training step and the same alpha for
    every network as an earlier one is the same checkpoint saved twice (`best_model.pt`
    next to `generation_N.pt`, a copied `last.ckpt`); only the first is kept.

    Why: otherwise one over-fitted checkpoint and its copy make "2 consecutive
    checkpoints" (`patience: 2`) and count twice towards `min_checkpoints`.
    """
    kept: list[dict[str, Any]] = []
    seen: dict[object, list[dict[str, float | None]]] = {}
    for result in results:
        step = result.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            kept.append(result)
            continue
        alphas = {str(n): network_alpha(result, str(n)) for n in (result.get("networks") or {})}
        if alphas in seen.setdefault(step, []):
            continue
        seen[step].append(alphas)
        kept.append(result)
    return kept


def _recommended(results: Sequence[dict[str, Any]], network: str, threshold: float,
                 patience: int) -> str | None:
    """The checkpoint to go back to, judged on the triggering network alone."""
    only = [{"path": r.get("path"), "step": r.get("step"),
             "networks": {network: {"summary": {"alpha": network_alpha(r, network)}}}} for r in results]
    try:  # the same recommendation `alphawatch analyze` prints, for this network
        from alphawatch.analysis.trend import trend

        recommended = trend(only, threshold)["recommended_checkpoint"]
        return str(recommended) if recommended else None
    except Exception:  # missing or broken: a bug there must not block the stop signal
        pass
    for result in reversed(results[: len(results) - patience]):
        alpha = network_alpha(result, network)
        if alpha is not None and alpha >= threshold:
            return str(result.get("path"))
    return None


def evaluate(
    results: Sequence[dict[str, Any]], rule: StopConfig, run: str, now: datetime | None = None,
) -> dict[str, Any] | None:
    """The stop-signal payload when the rule fires on the newest checkpoint, else None."""
    results = distinct_checkpoints(results)
    if not rule.enabled or not results or len(results) < rule.min_checkpoints:
        return None
    window = results[-rule.patience:]
    if len(window) < rule.patience:
        return None
    firing: list[tuple[float, str]] = []
    for network in selected_networks(results, rule):
        alphas = [network_alpha(r, network) for r in window]
        if all(a is not None and a < rule.threshold for a in alphas):
            firing.append((alphas[-1], network))  # type: ignore[arg-type]
    if not firing:
        return None
    value, network = min(firing)
    newest = results[-1]
    streak = (f"for {rule.patience} consecutive checkpoints" if rule.patience > 1
              else "at the newest checkpoint")
    step = newest.get("step")
    created = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "stop": True,
        "reason": (f"alpha of {network} is {value:.3f}, below the threshold {rule.threshold:g} {streak}"
                   f"{f' (step {step})' if step is not None else ''}: the network is over-fitting"),
        "run": run,
        "network": network,
        "metric": "alpha",
        "value": value,
        "threshold": rule.threshold,
        "checkpoint": newest.get("path"),
        "step": step,
        "recommended_checkpoint": _recommended(results, network, rule.threshold, rule.patience),
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": SIGNAL_FORMAT_VERSION,
        "alphawatch_version": __version__,
        "patience": rule.patience,
        "checkpoints_analyzed": len(results),
    }
