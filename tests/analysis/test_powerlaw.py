"""powerlaw.fit_tail chooses WeightWatcher's xmin, alpha and D bit for bit, on many spectra.

The reference is WeightWatcher's own WWFit (its Python loop over every xmin), run on the
same sorted data: not a re-implementation.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from alphawatch.analysis import powerlaw, spectral


def _wwfit(data: np.ndarray) -> object:
    spectral._weightwatcher()
    from weightwatcher.WW_powerlaw import WWFit

    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        return WWFit(data)


def _spectrum(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    if kind == 0:  # Marchenko-Pastur bulk (random init)
        rows = int(size * rng.uniform(1, 4))
        x = rng.standard_normal((rows, size)) / np.sqrt(rows)
        values = np.linalg.eigvalsh(x.T @ x)
    elif kind == 1:  # heavy tail
        values = rng.pareto(rng.uniform(0.5, 4), size) + 1
    elif kind == 2:  # log-normal
        values = np.exp(rng.normal(0, 2, size))
    elif kind == 3:  # many exact ties
        values = np.round(rng.pareto(2, size) + 1, 1)
    else:  # bulk plus a few spikes
        values = np.concatenate([rng.uniform(0.5, 1.5, size - 5), rng.uniform(10, 100, 5)])
    data = np.sort(values[values > spectral.EVALS_THRESH]).astype(np.float64)
    return data


def test_small_n_cutoff_is_weightwatchers() -> None:
    spectral._weightwatcher()
    from weightwatcher import WW_powerlaw

    assert powerlaw.SMALL_N_CUTOFF == WW_powerlaw.SMALL_N_CUTOFF


def test_evals_thresh_is_weightwatchers() -> None:
    spectral._weightwatcher()
    from weightwatcher import constants

    assert spectral.EVALS_THRESH == constants.EVALS_THRESH


@pytest.mark.parametrize("kind", range(5))
def test_same_choice_as_weightwatcher_bit_for_bit(kind: int) -> None:
    rng = np.random.default_rng(100 + kind)
    checked = 0
    for _ in range(25):
        data = _spectrum(kind, int(rng.integers(20, 700)), rng)
        if data.size < powerlaw.SMALL_N_CUTOFF:
            continue
        ours = powerlaw.fit_tail(data)
        assert ours is not None
        ref = _wwfit(data)
        assert (ours.xmin, ours.alpha, ours.D) == (ref.xmin, ref.alpha, ref.D)  # type: ignore[attr-defined]
        checked += 1
    assert checked >= 18


def test_fit_powerlaw_equals_weightwatchers_fit_powerlaw_including_spikes() -> None:
    rng = np.random.default_rng(7)
    for kind in range(5):
        evals = np.concatenate([np.zeros(3), _spectrum(kind, 600, rng)])  # zeros under the floor
        assert spectral.fit_powerlaw(evals) == spectral.ww_fit_powerlaw(evals)


def test_flat_spectrum_is_handed_to_weightwatcher() -> None:
    """alpha ~1e9: rounding decides D there, so the shortcut declines and WW's own fitter answers."""
    data = np.sort(2.0 + np.random.default_rng(0).normal(0, 1e-9, 300))
    assert powerlaw.fit_tail(data) is None
    assert spectral.fit_powerlaw(data) == spectral.ww_fit_powerlaw(data)


def test_too_few_points_is_an_error() -> None:
    with pytest.raises(ValueError):
        powerlaw.fit_tail(np.arange(1.0, 10.0))
