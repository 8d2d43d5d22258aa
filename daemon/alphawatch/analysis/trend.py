"""Alpha over training: the pattern and the checkpoint to keep (pure; no torch).

The series judged is, per checkpoint, the *minimum* alpha over its analysed networks: the
network that reaches the threshold first is the one that matters, exactly as the stop rule
fires on the first network below it. Checkpoints without any alpha are left out of the
judgement (but keep their place, as null, in `alpha`).

Patterns, checked in this order on that series s (at least 2 values needed):

- insufficient_data: fewer than 2 checkpoints with an alpha.
- overtraining: some s < threshold.
- unstable: at least 2 reversals of direction between large moves (|step change| >= 1.0).
  One xmin flip moves alpha by up to ~0.8 on small layers, so smaller wiggles are noise.
- not_learning: every s > 6 (severely undertrained throughout), or the whole range of s is
  under 0.1 (the weights hardly change), or alpha rose and ended above 5.
- healthy_progression: otherwise (alpha falling toward 2-5, or staying within 2-5, never < threshold).

Recommendation: the checkpoint whose alpha is closest to the threshold from above (the
smallest s >= threshold; the later one on ties), searched among the checkpoints before the
first one that fell below; when none fell below, among all of them. None when no
checkpoint qualifies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

UNSTABLE_STEP = 1.0
UNSTABLE_REVERSALS = 2
FLAT_RANGE = 0.1
SEVERE_ALPHA = 6.0
GOOD_CEILING = 5.0


def ordered(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """By training step; checkpoints without a step last; the given order breaks ties."""
    indexed = list(enumerate(results))
    indexed.sort(key=lambda p: (p[1].get("step") is None, p[1].get("step") or 0, p[0]))
    return [r for _, r in indexed]


def _score(result: dict[str, Any]) -> float | None:
    alphas = [
        n["summary"]["alpha"]
        for n in result.get("networks", {}).values()
        if n["summary"]["alpha"] is not None
    ]
    return min(alphas) if alphas else None


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


def trend(results: Sequence[dict[str, Any]], threshold: float = 2.0) -> dict[str, Any]:
    """The Trend object of docs/CONTRACTS.md for a set of CheckpointResults."""
    rows = ordered(results)
    names: list[str] = []
    for r in rows:
        names.extend(n for n in r.get("networks", {}) if n not in names)
    alpha = {
        n: [r.get("networks", {}).get(n, {}).get("summary", {}).get("alpha") for r in rows] for n in names
    }
    paths = [str(r["path"]) for r in rows]
    scores = [_score(r) for r in rows]
    kind, description = pattern([s for s in scores if s is not None], threshold)
    return {
        "order": paths,
        "steps": [r.get("step") for r in rows],
        "alpha": alpha,
        "pattern": kind,
        "recommended_checkpoint": recommend(paths, scores, threshold),
        "description": description,
    }
