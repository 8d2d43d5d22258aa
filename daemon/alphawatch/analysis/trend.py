"""Alpha over training: the pattern and the checkpoint to keep (pure; no torch).

`trend(results)` takes CheckpointResults already in training order
(`alphawatch.ordering.training_order`; the ledger returns rows in that order): it never
re-sorts, so the CLI, the daemon's stop file and the reports agree on which checkpoint
came before which.

The series judged is, per checkpoint, the *minimum* alpha over its analysed networks: the
network that reaches the threshold first is the one that matters, exactly as the stop rule
fires on the first network below it. `network` in the Trend names the network that gave
the deciding value (the lowest alpha overall), so a reader knows which one the pattern is
about. Checkpoints without any alpha are left out of the judgement (but keep their place,
as null, in `alpha`).

Patterns, checked in this order on that series s (at least 2 values needed):

- insufficient_data: fewer than 2 checkpoints with an alpha.
- overtraining: some s < threshold.
- unstable: at least 2 reversals of direction between large moves (|step change| >= 1.0).
  One xmin flip moves alpha by up to ~0.8 on small layers, so smaller wiggles are noise.
- not_learning: every s > 6 (severely undertrained throughout), or the whole range of s is
  under 0.1 (the weights hardly change), or alpha rose and ended above 5.
- healthy_progression: otherwise (alpha falling toward 2-5, or staying within 2-5, never < threshold).

Recommendation (`recommend`, also what the stop file names): the checkpoint whose alpha is
closest to the threshold from above (the smallest s >= threshold; the later one on ties),
searched among the checkpoints before the first one that fell below; when none fell below,
among all of them. None when no checkpoint qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence

from alphawatch.results import CheckpointResult, Trend, network_alpha, network_names

UNSTABLE_STEP = 1.0
UNSTABLE_REVERSALS = 2
FLAT_RANGE = 0.1
SEVERE_ALPHA = 6.0
GOOD_CEILING = 5.0


def _lowest(result: CheckpointResult) -> tuple[float, str] | None:
    """(alpha, network) of the checkpoint's lowest network alpha, or None."""
    best: tuple[float, str] | None = None
    for name, net in result["networks"].items():
        alpha = net["summary"]["alpha"]
        if alpha is not None and (best is None or (alpha, name) < best):
            best = (alpha, name)
    return best


def _reversals(values: list[float]) -> int:
    moves = [b - a for a, b in zip(values, values[1:], strict=False) if abs(b - a) >= UNSTABLE_STEP]
    return sum(1 for a, b in zip(moves, moves[1:], strict=False) if (a > 0) != (b > 0))


def pattern(scores: list[float], threshold: float) -> tuple[str, str]:
    """(pattern, one-sentence description) for a series of per-checkpoint alphas."""
    if len(scores) < 2:
        return (
            "insufficient_data",
            f"{len(scores)} checkpoint(s) with an alpha; at least 2 are needed for a trend.",
        )
    first, last, low, high = scores[0], scores[-1], min(scores), max(scores)
    if low < threshold:
        return (
            "overtraining",
            f"alpha fell below {threshold:g} (lowest {low:.2f}): the model is over-fitting.",
        )
    flips = _reversals(scores)
    if flips >= UNSTABLE_REVERSALS:
        return (
            "unstable",
            f"alpha swings up and down ({flips} reversals of >= {UNSTABLE_STEP:g}) between checkpoints.",
        )
    if low > SEVERE_ALPHA:
        return (
            "not_learning",
            f"alpha stays above {SEVERE_ALPHA:g} (lowest {low:.2f}): the layers are not learning structure.",
        )
    if high - low < FLAT_RANGE:
        return "not_learning", f"alpha hardly changes ({low:.2f} to {high:.2f}): the weights barely move."
    if last > first and last > GOOD_CEILING:
        return "not_learning", f"alpha rose from {first:.2f} to {last:.2f}, away from the well-trained range."
    return "healthy_progression", f"alpha went from {first:.2f} to {last:.2f} and stayed >= {threshold:g}."


def recommend(paths: list[str], scores: list[float | None], threshold: float) -> str | None:
    """Path of the checkpoint closest to the threshold from above, before alpha first fell below it."""
    best: tuple[float, str] | None = None
    for path, s in zip(paths, scores, strict=True):
        if s is None:
            continue
        if s < threshold:
            break
        if best is None or s <= best[0]:
            best = (s, path)
    return None if best is None else best[1]


def trend(results: Sequence[CheckpointResult], threshold: float = 2.0) -> Trend:
    """The Trend object of docs/CONTRACTS.md for CheckpointResults in training order."""
    rows = list(results)
    alpha = {n: [network_alpha(r, n) for r in rows] for n in network_names(rows)}
    paths = [r["path"] for r in rows]
    lowest = [_lowest(r) for r in rows]
    scores = [low[0] if low else None for low in lowest]
    kind, description = pattern([s for s in scores if s is not None], threshold)
    deciding = min((low for low in lowest if low is not None), default=None)
    return {
        "order": paths,
        "steps": [r["step"] for r in rows],
        "alpha": alpha,
        "pattern": kind,
        "network": deciding[1] if deciding else None,
        "recommended_checkpoint": recommend(paths, scores, threshold),
        "description": description,
    }

