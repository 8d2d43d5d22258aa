"""WeightWatcher's default power-law fit, vectorised, choosing the same xmin bit for bit.

WeightWatcher 0.7.7 (`WW_powerlaw.WWFit.fit_power_law_standard`) tries every eigenvalue as
`xmin` in a Python loop: for candidate i it fits alpha by maximum likelihood on the tail
`data[i:]` and computes the KS distance D over that tail, then keeps the smallest D
(`np.argmin`, so the first one on a tie). That is N Python iterations of O(N) numpy work.

Here the same selection is made with far less work:

1. alpha of every candidate at once, from suffix sums of the logs (O(N)).
2. A lower bound on every candidate's D: the same KS expression on a few points of its
   tail (a maximum over some points can only be smaller than over all of them).
3. The full D only for candidates whose bound is within reach of the best D found so far
   (branch and bound); every other candidate provably loses.
4. The finalists (every candidate whose D is within `TIE_EPS` of the best) are recomputed
   with WeightWatcher's exact expressions (`np.sum` on the tail slice, the same power), and
   the first minimum wins as `np.argmin` does there.

Our D differs from WeightWatcher's by rounding only (suffix sums instead of `np.sum` per
slice: ~1e-13), orders of magnitude below `TIE_EPS`, so no candidate outside the finalists
can be WeightWatcher's choice, and the winner's alpha, D and xmin are computed by
WeightWatcher's own arithmetic. `fit_tail` checks that assumption on every call and returns
None (the caller then runs WeightWatcher's own fitter) if it ever fails.

Spectra with fewer than `SMALL_N_CUTOFF` eigenvalues above the floor take a different fitter
in WeightWatcher (bias-corrected alpha, a different objective); they are cheap, and the
caller hands them to WeightWatcher as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# WW_powerlaw.SMALL_N_CUTOFF (checked against WeightWatcher in tests).
SMALL_N_CUTOFF = 20
# Candidates whose D is within this of the best are recomputed exactly. Rounding differences
# between our D and WeightWatcher's are ~1e-13; this leaves six orders of magnitude to spare.
TIE_EPS = 1e-7
# Points of each tail used for the lower bound: the first few (where the KS distance of a
# power law fitted at xmin usually peaks) and an even spread over the rest.
_HEAD_POINTS = 16
_SPREAD_POINTS = 48
# Rows of the candidate x tail matrix evaluated at once (bounds the temporary to ~8 MB).
_BLOCK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class TailFit:
    """The winning candidate: its index in the sorted data, xmin, alpha and KS distance."""

    index: int
    xmin: float
    alpha: float
    D: float


def _alphas(data: np.ndarray, logs: np.ndarray) -> np.ndarray:
    """MLE alpha for every candidate i < N-1: 1 + n / sum(log(data[i:] / data[i]))."""
    size = data.size
    n = (size - np.arange(size - 1)).astype(np.float64)
    shifted = logs - logs[0]  # smaller magnitudes: the suffix sums lose less to rounding
    suffix = np.cumsum(shifted[::-1])[::-1]
    with np.errstate(all="ignore"):
        return 1.0 + n / (suffix[:-1] - n * shifted[:-1])


def _ks_terms(data: np.ndarray, rows: np.ndarray, cols: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """|theoretical CDF - empirical CDF| at tail points `cols` (absolute indices) of candidates `rows`.

    The same elementwise expression as WeightWatcher: 1 - (x / xmin) ** (1 - alpha) - k / n.
    Entries with cols < rows (not in that candidate's tail) are 0.
    """
    size = data.size
    i = rows[:, None]
    n = (size - i).astype(np.float64)
    with np.errstate(all="ignore"):
        ratio = data[cols] / data[i]
        terms = np.abs(1 - ratio ** (-alphas[i] + 1) - (cols - i) / n)
    return np.where(cols >= i, terms, 0.0)


def _lower_bounds(data: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """A lower bound on every candidate's D from a few points of its own tail."""
    size = data.size
    cands = size - 1
    rows = np.arange(cands)
    last = size - 1
    head = np.minimum(rows[:, None] + np.arange(_HEAD_POINTS)[None, :], last)
    frac = np.linspace(0.0, 1.0, _SPREAD_POINTS)[None, :]
    spread = rows[:, None] + np.round(frac * (last - rows[:, None])).astype(np.int64)
    cols = np.concatenate([head, spread], axis=1)
    bounds = np.empty(cands)
    step = max(1, _BLOCK_ELEMENTS // cols.shape[1])
    for start in range(0, cands, step):
        sl = slice(start, start + step)
        bounds[sl] = _ks_terms(data, rows[sl], cols[sl], alphas).max(axis=1)
    return bounds


def _full_distances(data: np.ndarray, rows: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Our D (max over the whole tail) for candidates `rows`, in blocks."""
    out = np.empty(rows.size)
    if rows.size == 0:
        return out
    first = int(rows.min())
    cols = np.arange(first, data.size)[None, :]
    step = max(1, _BLOCK_ELEMENTS // cols.shape[1])
    for start in range(0, rows.size, step):
        block = rows[start : start + step]
        out[start : start + step] = _ks_terms(data, block, cols, alphas).max(axis=1)
    return out


def ww_candidate(data: np.ndarray, logs: np.ndarray, i: int) -> tuple[float, float]:
    """(alpha, D) of candidate i with WeightWatcher's exact expressions (fit_power_law_standard)."""
    n = float(data.size - i)
    with np.errstate(all="ignore"):
        alpha = 1 + n / (np.sum(logs[i:]) - n * logs[i])
        if not alpha > 1:
            return float(alpha), 1.0
        xmin = data[i]
        d = np.max(np.abs(1 - (data[i:] / xmin) ** (-alpha + 1) - np.arange(n) / n))
    return float(alpha), float(d)


def fit_tail(data: np.ndarray) -> TailFit | None:
    """WeightWatcher's xmin/alpha/D for sorted positive float64 `data` (N >= SMALL_N_CUTOFF).

    None when the rounding assumption behind the shortcut does not hold for this spectrum;
    the caller must then run WeightWatcher's own fitter.
    """
    if data.size < SMALL_N_CUTOFF:
        raise ValueError(f"fit_tail needs at least {SMALL_N_CUTOFF} points, got {data.size}")
    logs = np.log(data, dtype=np.float64)
    alphas = _alphas(data, logs)
    valid = alphas > 1  # WeightWatcher leaves D = 1 where alpha <= 1 (or NaN)
    bounds = np.where(valid, _lower_bounds(data, alphas), 1.0)
    dist = np.full(alphas.size, np.inf)
    dist[~valid] = 1.0
    best = float(dist.min())
    order = np.argsort(bounds, kind="stable")
    step = 64
    for start in range(0, order.size, step):
        if bounds[order[start]] > best + TIE_EPS:
            break  # every candidate from here on has D >= its bound > best
        chunk = order[start : start + step]
        chunk = chunk[valid[chunk]]
        dist[chunk] = _full_distances(data, chunk, alphas)
        if chunk.size:
            best = min(best, float(dist[chunk].min()))
    if not np.isfinite(best):
        return None
    finalists = np.flatnonzero(dist <= best + TIE_EPS)
    exact = [ww_candidate(data, logs, int(i)) for i in finalists]
    if any(abs(d - float(dist[i])) > TIE_EPS / 4 for i, (_a, d) in zip(finalists, exact, strict=True)):
        return None
    win = int(np.argmin([d for _a, d in exact]))  # first minimum, as np.argmin over all of them
    index = int(finalists[win])
    alpha, d = exact[win]
    return TailFit(index=index, xmin=float(data[index]), alpha=alpha, D=d)
